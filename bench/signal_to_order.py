"""signal_to_order: webhook sent → the group's entry order acknowledged by the simulator (bench/README.md).

200 new-entry signals, each a distinct identity (40 traders × 5 symbols, one timeframe each), sent by 4
lanes. A lane sends its next signal once the previous one's entry order is acknowledged, so this
measures latency at a steady load of at most 4 signals in flight, not the length of a backlog. The
clock starts just before the POST (this process, `time.time()`) and stops at the simulator's own
`time` of the entry order (level 0 of pyramid 0 of the group in the 202 response), matched by the
client order id stored in `DCAOrder`; both clocks are this machine's.

The worker starts before the traders exist, so its start-up reconciliation has nothing to do, and a
separate warm-up trader sends a few signals first (not counted). The breakdown fields split the
median into the HTTP answer, the wait until the worker starts sending (queue + grid), and the send
itself (from `DCAOrder.submitted_at` to the simulator's time).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from exchanges.simulator import BUILT_IN_PRICES

from .harness import Harness, load_average, say, tree_cpu_seconds
from .stats import ms, percentile
from .traders import TV_TIMEFRAMES, Trader, signal_body, traders_create

SIGNALS = 200
LANES = 4
TRADERS = 40
WARMUP_SIGNALS = 8
ACK_TIMEOUT_S = 30.0
POLL_S = 0.005
PRICES = {s: BUILT_IN_PRICES[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")}
# BENCH_CHANNELS=dead: every trader's Discord and Slack channels point at a server that accepts
# connections and never answers, so each fill's messages time out; =live: at one that answers 204 at
# once, the baseline for the same notification work (docs/processes.md#notifications).
CHANNELS = os.environ.get("BENCH_CHANNELS", "")
# BENCH_HEAVY=1: a heavy worker (as `make run` starts it) runs backtests of BTC/USDT 5m one after another
# during the whole measurement, so the p50 shows whether trading waits behind heavy work
# (docs/processes.md#heavy-worker).
HEAVY = os.environ.get("BENCH_HEAVY", "") == "1"
HEAVY_CANDLES = "candles/binance_BTC_USDT_5m.csv.gz"
SYMBOLS = list(PRICES)


@dataclass
class Sample:
    trader: Trader
    body: bytes
    sent_at: float = 0.0  # time.time() just before the POST
    answered_at: float = 0.0
    group_id: str = ""
    client_order_id: str = ""
    submitted_at: float = 0.0
    error: str = ""


def _signals(traders: list[Trader], count: int, tag: str) -> list[Sample]:
    samples = []
    for i in range(count):
        trader_index, round_ = i % len(traders), i // len(traders)
        symbol = SYMBOLS[round_ % len(SYMBOLS)]
        timeframe = TV_TIMEFRAMES[(trader_index + round_ * 3) % len(TV_TIMEFRAMES)]
        body = signal_body(
            traders[trader_index],
            symbol=symbol,
            timeframe=timeframe,
            price=PRICES[symbol],
            trade_id=f"{tag}-{i}",
        )
        samples.append(Sample(trader=traders[trader_index], body=body))
    return samples


class _Answering(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        return


def _channels(traders: list[Trader], mode: str) -> Callable[[], None]:
    """Every trader's Discord and Slack channels aimed at a local server: `dead` (accepts, never answers)
    or `live` (204 at once). Returns what stops the server."""
    # Django is set up by Harness (on the bench database) after this module is imported
    from exchanges.crypto import encrypt
    from notifications.models import NotificationChannel

    if mode == "dead":
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead.listen(4096)
        port, stop = dead.getsockname()[1], dead.close
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]

        def stop() -> None:
            server.shutdown()
            server.server_close()

    url = f"http://127.0.0.1:{port}/api/webhooks/{mode}"
    for trader in traders:
        for kind in ("discord", "slack"):
            # Stored directly: the settings service accepts only the services' own hosts.
            channel = NotificationChannel.objects.create(user_id=trader.user_id, kind=kind, enabled=True)
            channel.secret_encrypted = encrypt(url, context=channel.encryption_context())
            channel.save(update_fields=["secret_encrypted"])
    return stop


class HeavyLoad:
    """Keeps backtest tasks queued on the heavy worker (two at a time) until stopped."""

    def __init__(self, harness: Harness) -> None:
        # Django is set up by Harness (on the bench database) after this module is imported
        from django.conf import settings

        # our models too: the app registry is ready only once Harness set Django up
        from accounts.models import User
        from analytics.backtest.files import read_candles
        from exchanges.candles.services import candles_store

        self.worker = harness.start_heavy_worker()
        path = settings.SHARED_DATA_DIR / HEAVY_CANDLES
        rows = read_candles(path, timeframe="5m")
        candles_store(exchange_name="binance", symbol="BTC/USDT", timeframe="5m", rows=rows)
        self.candles = len(rows)
        self.owner = User.objects.create_user(email="heavy@bench.local", username="heavy-bench", password=None)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._feed, name="heavy-feed", daemon=True)
        self.cpu_before = 0.0
        self.done_before = 0

    def _active(self) -> int:
        # Django is set up by Harness (on the bench database) after this module is imported
        from analytics.choices import ACTIVE_STATUSES
        from analytics.models import BackgroundTask

        return BackgroundTask.objects.filter(owner=self.owner, status__in=ACTIVE_STATUSES).count()

    def _feed(self) -> None:
        # Django is set up by Harness (on the bench database) after this module is imported
        from django.db import connection

        # our services too: the app registry is ready only once Harness set Django up
        from analytics.tasks_framework import task_submit

        body = {"strategy": "rsi", "symbol": "BTC/USDT", "timeframe": "5m", "exchange": "binance"}
        try:
            while not self.stop_event.is_set():
                if self._active() < 2:
                    task_submit(owner=self.owner, kind="backtest", data=body)
                self.stop_event.wait(0.2)
        finally:
            connection.close()

    def done(self) -> int:
        # Django is set up by Harness (on the bench database) after this module is imported
        from analytics.models import BackgroundTask

        return BackgroundTask.objects.filter(owner=self.owner, status="SUCCESS").count()

    def start(self) -> None:
        """Feed tasks and return once a backtest is running."""
        # Django is set up by Harness (on the bench database) after this module is imported
        from analytics.models import BackgroundTask

        self.thread.start()
        deadline = time.monotonic() + 60
        while not BackgroundTask.objects.filter(owner=self.owner, status__in=("STARTED", "PROGRESS")).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("no backtest started on the heavy worker within 60 s")
            time.sleep(0.1)
        self.cpu_before = tree_cpu_seconds(self.worker.process.pid)
        self.done_before = self.done()

    def stop(self) -> dict[str, Any]:
        """What the heavy worker did during the measurement."""
        cpu = tree_cpu_seconds(self.worker.process.pid) - self.cpu_before
        finished = self.done() - self.done_before
        running = self._active()
        self.stop_event.set()
        self.thread.join(timeout=10)
        # Django is set up by Harness (on the bench database) after this module is imported
        from analytics.models import BackgroundTask

        failed = BackgroundTask.objects.filter(owner=self.owner, status="FAILURE").values_list("error", flat=True)
        if failed:
            say(f"signal_to_order: {len(failed)} backtest(s) failed, e.g. {failed[0][:200]}")
        return {
            "heavy_backtests_done": finished,
            "heavy_running_at_end": running,
            "heavy_cpu_s": round(cpu, 1),
            "heavy_candles": self.candles,
        }


def _wait_for_entry_ack(sample: Sample, stop: threading.Event) -> None:
    # Django is set up by Harness (on the bench database) after this module is imported
    from positions.models import DCAOrder

    group_id = uuid.UUID(sample.group_id)  # the intake answered it, so it is one
    deadline = time.monotonic() + ACK_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        row = (
            DCAOrder.objects.filter(group_id=group_id, pyramid_level=0, dca_level=0)
            .values_list("client_order_id", "status", "acknowledged_at", "submitted_at")
            .first()
        )
        if row is not None:
            client_order_id, status, acknowledged_at, submitted_at = row
            if acknowledged_at is not None:
                sample.client_order_id = client_order_id
                sample.submitted_at = submitted_at.timestamp() if submitted_at else 0.0
                return
            if status in ("rejected", "canceled"):
                sample.error = f"entry order {status}"
                return
        time.sleep(POLL_S)
    sample.error = f"entry order not acknowledged within {ACK_TIMEOUT_S:.0f} s"


def _send_all(base_url: str, samples: list[Sample], lanes: int) -> float:
    """Closed loop: each lane sends, waits for the entry order's ack, sends the next."""
    from django.db import connection

    pending = iter(samples)
    lock = threading.Lock()
    stop = threading.Event()  # set on Ctrl-C so that the lanes end at once

    def lane() -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                while True:
                    with lock:
                        sample = next(pending, None)
                    if sample is None or stop.is_set():
                        return
                    sample.sent_at = time.time()
                    try:
                        response = client.post(
                            sample.trader.webhook_path,
                            content=sample.body,
                            headers={"Content-Type": "application/json"},
                        )
                    except httpx.HTTPError as exc:
                        sample.error = f"{type(exc).__name__}: {exc}"
                        continue
                    sample.answered_at = time.time()
                    payload = response.json()
                    if response.status_code != 202 or payload.get("classification") != "new_entry":
                        sample.error = f"HTTP {response.status_code}: {str(payload)[:200]}"
                        continue
                    sample.group_id = payload["group_id"]
                    _wait_for_entry_ack(sample, stop)
        finally:
            connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        futures = [pool.submit(lane) for _ in range(lanes)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()
            raise
    return time.monotonic() - started


def run(harness: Harness) -> dict[str, Any]:
    # Django is set up by Harness (on the bench database) after this module is imported
    from exchanges.services import market_rules_refresh

    sim = harness.start_simulator()
    for symbol, price in PRICES.items():
        sim.set_price(symbol, price)
    base_url = harness.start_web()
    market_rules_refresh(exchange_name="simulator")
    harness.start_worker()
    time.sleep(2)  # let the worker's start-up reconciliation (nothing to do yet) finish
    balances = {"USDT": "100000"}
    warm_trader = traders_create(sim, count=1, prefix="sw", balances=balances)
    traders = traders_create(sim, count=TRADERS, prefix="so", balances=balances)

    stop_channels = _channels(warm_trader + traders, CHANNELS) if CHANNELS in ("dead", "live") else None
    heavy = HeavyLoad(harness) if HEAVY else None
    warmup = _signals(warm_trader * 5, WARMUP_SIGNALS, "sow")
    _send_all(base_url, warmup, LANES)
    measured = _signals(traders, SIGNALS, "so")
    if heavy is not None:
        heavy.start()
    load = load_average()
    wall = _send_all(base_url, measured, LANES)
    heavy_report = heavy.stop() if heavy is not None else {}
    harness.check_alive()
    if stop_channels is not None:
        stop_channels()

    acked_at = {o["clientOrderId"]: o["time"] / 1000 for o in sim.orders()}
    latencies, http, queue, place = [], [], [], []
    errors = [s for s in measured if s.error or s.client_order_id not in acked_at]
    for sample in measured:
        if sample in errors:
            continue
        ack = acked_at[sample.client_order_id]
        latencies.append((ack - sample.sent_at) * 1000)
        http.append((sample.answered_at - sample.sent_at) * 1000)
        queue.append((sample.submitted_at - sample.answered_at) * 1000)
        place.append((ack - sample.submitted_at) * 1000)
    if errors:
        say(f"signal_to_order: {len(errors)} error(s), e.g. {[s.error or 'no ack' for s in errors[:5]]}")
    return {
        "bench": "signal_to_order",
        "signals": len(measured),
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "errors": len(errors),
        "max_ms": ms(max(latencies, default=float("nan"))),
        "lanes": LANES,
        "signals_per_s": round(len(measured) / wall, 1),
        "http_p50_ms": ms(percentile(http, 50)),
        "queue_p50_ms": ms(percentile(queue, 50)),
        "place_p50_ms": ms(percentile(place, 50)),
        "queue_max_ms": ms(max(queue, default=float("nan"))),
        "place_max_ms": ms(max(place, default=float("nan"))),
        "traders": len(traders),
        "loadavg_1m": load,
        "channels": CHANNELS or "none",
        "heavy": HEAVY,
        **heavy_report,
    }
