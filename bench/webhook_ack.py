"""webhook_ack: how fast the web process answers TradingView webhooks (bench/README.md).

Real HTTP against daphne on loopback, 50 requests in flight, every body a valid signal with its own
trade_id. 50 traders each send 16 identities (symbol × timeframe) over three candles, so the mix has
new entries (the first 10 identities: the default pool of 10 open groups), queued signals (the other
6) and pyramids (later candles of open groups). No worker runs: the tasks only queue, and are purged.
A response other than 200/202, an exception or a timeout is an error. Latency is measured in this
process from just before the request is sent until its body has been read.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from exchanges.simulator import BUILT_IN_PRICES

from . import http
from .harness import Harness, cpu_seconds, load_average, say
from .stats import ms, percentile
from .traders import TV_TIMEFRAMES, Trader, signal_body, traders_create

REQUESTS = 2000
CONCURRENCY = 50
TRADERS = 50
IDENTITIES_PER_TRADER = 16
WARMUP_PER_TRADER = 2
TIMEOUT_S = 30
PRICES = BUILT_IN_PRICES
SYMBOLS = list(PRICES)
POOL = 10  # the default max_open_groups: identities 0-9 open groups, 10-15 queue


def _request(trader: Trader, trader_index: int, n: int) -> tuple[str, bytes]:
    """The n-th signal of a trader: identity n % 16, candle n // 16."""
    identity = n % IDENTITIES_PER_TRADER
    symbol = SYMBOLS[identity % len(SYMBOLS)]
    timeframe = TV_TIMEFRAMES[(trader_index + (identity // len(SYMBOLS)) * 5) % len(TV_TIMEFRAMES)]
    body = signal_body(
        trader,
        symbol=symbol,
        timeframe=timeframe,
        price=PRICES[symbol],
        trade_id=f"wa-{trader_index}-{n}",
        candle=n // IDENTITIES_PER_TRADER,
    )
    return trader.webhook_path, body


def _pool_overfilled() -> int:
    """Traders holding more open groups than the pool allows (must be 0).

    The exact mix may differ from the plan's by a few: a trader's alerts 50 apart in the plan can be in
    flight at once, and which of two new identities gets the pool's last slot is then a matter of which
    takes the trader's lock first, as with real concurrent alerts.
    """
    from django.db.models import Count

    # Django is set up by Harness (on the bench database) after this module is imported
    from positions.models import PositionGroup

    counts = PositionGroup.objects.values("user").annotate(n=Count("id")).values_list("n", flat=True)
    return sum(1 for n in counts if n > POOL)


def _plan(traders: list[Trader]) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """Warm-up and measured requests, round-robin over traders (as independent alerts would arrive)."""
    per_trader = WARMUP_PER_TRADER + -(-REQUESTS // len(traders))
    ordered = [_request(t, i, n) for n in range(per_trader) for i, t in enumerate(traders)]
    warmup = ordered[: WARMUP_PER_TRADER * len(traders)]
    return warmup, ordered[len(warmup) : len(warmup) + REQUESTS]


async def _fire(
    base_url: str, requests: list[tuple[str, bytes]], concurrency: int
) -> tuple[list[float], Counter[str], int, list[str], float]:
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    errors = 0
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    pending = iter([http.request_bytes(address.netloc, path, body) for path, body in requests])

    async def lane() -> None:
        nonlocal errors
        connection = await http.Connection.open(host, port)
        try:
            for raw in pending:
                started = time.perf_counter()
                try:
                    status, content = await connection.request(raw, TIMEOUT_S)
                    payload: Any = json.loads(content)
                except (http.HTTPError, OSError, TimeoutError, ValueError) as exc:
                    errors += 1
                    problems.append(f"{type(exc).__name__}: {exc}")
                    connection.close()  # its state is unknown: a new one for the next request
                    connection = await http.Connection.open(host, port)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if status in (200, 202):
                    outcomes[payload.get("classification") or payload.get("status") or str(status)] += 1
                else:
                    errors += 1
                    problems.append(f"HTTP {status}: {str(payload)[:200]}")
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return latencies, outcomes, errors, problems, wall


def run(harness: Harness) -> dict[str, Any]:
    # Django is set up by Harness (on the bench database) after this module is imported
    from exchanges.services import market_rules_refresh

    sim = harness.start_simulator()
    for symbol, price in PRICES.items():
        sim.set_price(symbol, price)
    base_url = harness.start_web()
    market_rules_refresh(exchange_name="simulator")
    traders = traders_create(sim, count=TRADERS, prefix="wa", balances={"USDT": "100000"})
    warmup, measured = _plan(traders)
    harness.purge_queue()

    _, _, warm_errors, warm_problems, _ = asyncio.run(_fire(base_url, warmup, CONCURRENCY))
    if warm_errors:
        say(f"warm-up: {warm_errors} error(s), e.g. {warm_problems[:3]}")
    load = load_average()
    # This process has Django and the test tooling loaded: a full collection of its heap would stall
    # the client for ~100 ms and show up as server latency. Frozen objects are not scanned.
    gc.collect()
    gc.freeze()
    cpu_before = sum(cpu_seconds(pid) for pid in harness.web_pids)
    latencies, outcomes, errors, problems, wall = asyncio.run(_fire(base_url, measured, CONCURRENCY))
    web_cpu = sum(cpu_seconds(pid) for pid in harness.web_pids) - cpu_before
    harness.check_alive()
    overfilled = _pool_overfilled()
    if overfilled:
        say(f"webhook_ack: {overfilled} trader(s) hold more than {POOL} open groups")
    if problems:
        say(f"webhook_ack: {errors} error(s), e.g. {problems[:5]}")
    harness.purge_queue()
    return {
        "bench": "webhook_ack",
        "requests": len(measured),
        "concurrency": CONCURRENCY,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "errors": errors,
        "max_ms": ms(max(latencies, default=float("nan"))),
        "rps": round(len(measured) / wall, 1),
        "web_cpu_ms_per_request": round(web_cpu * 1000 / len(measured), 1),
        "traders": len(traders),
        "mix": dict(sorted(outcomes.items())),
        "pool_overfilled": overfilled,
        "loadavg_1m": load,
    }
