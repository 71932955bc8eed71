"""Bodies over the cap are refused before they are read, in a real web process (docs/security.md#body-limits):
daphne would otherwise read a whole body into memory before the application sees the request."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from positions.models import WebhookSignal
from tradingsite.tests.support import web_processes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture
def web(tmp_path):
    """One daphne process as `make run` starts it; yields (base URL, pid)."""
    with web_processes(tmp_path, 1) as (base, pids):
        yield base, pids[0]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _send_huge(base: str, path: str, *, chunked: bool) -> tuple[int, float]:
    """POST 100 MB to `path` over a raw socket, streaming it from a thread; the status line and how long
    it took to arrive."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {HUNDRED_MB}\r\n".encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n".encode() + framing + b"\r\n"
    )
    started = time.monotonic()

    def stream() -> None:
        block = b"[" * (1024 * 1024)
        try:
            for _ in range(100):
                sock.sendall(b"100000\r\n" + block + b"\r\n" if chunked else block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: the rest is never read

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    status_line = b""
    while b"\r\n" not in status_line:
        data = sock.recv(4096)
        if not data:
            break
        status_line += data
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(30)
    return int(status_line.split(b" ")[1]), elapsed


def test_huge_bodies_are_refused_without_growing_the_web_process(web, trader):
    base, pid = web
    httpx.post(f"{base}/api/webhook/{trader.pk}", content=b"{}", timeout=20)  # warm up the route
    httpx.get(f"{base}/api/account", timeout=20)
    before = _rss_kib(pid)
    answers = [
        _send_huge(base, f"/api/webhook/{trader.pk}", chunked=False),
        _send_huge(base, f"/api/webhook/{trader.pk}", chunked=True),
        _send_huge(base, "/api/config", chunked=False),
        _send_huge(base, "/api/auth/login", chunked=True),
    ]
    time.sleep(0.5)
    grown_mib = (_rss_kib(pid) - before) / 1024
    assert [status for status, _ in answers] == [413, 413, 413, 413], answers
    assert all(elapsed < 5 for _, elapsed in answers), answers
    assert grown_mib < 30, f"a web process grew by {grown_mib:.0f} MiB for 400 MB of refused bodies"
    # The webhook's refusals are stored like any other (docs/webhook.md#errors).
    assert WebhookSignal.objects.filter(http_status=413).count() == 2
    # The process still serves.
    assert httpx.get(f"{base}/api/health", timeout=20).status_code in (200, 503)
