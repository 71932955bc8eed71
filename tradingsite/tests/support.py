"""Helpers for tests that start the project's own processes (web, worker) against the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """The test database as a URL for a child process (the socket directory may be HOST or an option)."""
    from django.db import connection

    db = connection.settings_dict
    host = str(db.get("HOST") or "")
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{db['PORT']}" if db.get("PORT") else ""
    user = quote(str(db.get("USER") or ""), safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db.get("PASSWORD") else ""
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str | int)}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}{query}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@contextlib.contextmanager
def web_processes(logs: Path, count: int = 1) -> Iterator[tuple[str, list[int]]]:
    """`count` daphne processes as `make run` starts them, each on its own SO_REUSEPORT socket of one
    port, on the test database; yields (base URL, pids) once the first answers. Logs go to `logs`."""
    from tradingsite.stack import listening_sockets, web_argv

    sockets = listening_sockets("127.0.0.1", 0, count)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradingsite.settings.test", "DATABASE_URL": test_database_url()}
    processes = [
        subprocess.Popen(
            web_argv(sock.fileno(), access_log=False),
            cwd=ROOT,
            env=env,
            pass_fds=(sock.fileno(),),
            stdout=(logs / f"web-{index}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for index, sock in enumerate(sockets)
    ]
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/api/health", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (logs / "web-0.log").read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        if count > 1:
            time.sleep(1)  # the others may still be importing
        yield base, [process.pid for process in processes]
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(20)
        for sock in sockets:
            sock.close()
