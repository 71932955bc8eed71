"""monitor_cycle: one fill-monitoring pass over 500 open groups × 5 resting legs (bench/README.md).

Setup, through the real webhook and worker: a simulator serving 20 USDT markets (a temporary
exchangeInfo file in the built-in file's format), 2 traders with `max_open_groups` 250, and 250 grid
entries each over 20 symbols × 13 timeframes, priced 10 % below the market so that all 2,500 limit
legs rest. Signals are paced to the engine's own order budget (`exchanges.ratelimit`: 50 orders per
10 s per account on Binance), which makes the setup take about 4.5 minutes; sending them faster only
makes tasks back off and retry. Once every leg is acknowledged the worker is stopped.

Measured in this process: one `monitor_fills()` call (`cycle_ms`, wall clock) and the request weight
the simulator counted during it (`exchange_weight`, `GET /_sim/stats` before and after). It is the
first call of this process, so it includes the one-time market load of each account's ccxt client; a
second, identical call is reported as `cycle_ms_warm`. Then the price of 4 symbols moves down to the
entry level so that those 100 entry legs fill, and a third call is `cycle_ms_with_fills`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import aiohttp

from .harness import Harness, load_average, say
from .stats import ms
from .traders import Trader, signal_body, traders_create

BUILT_IN_INFO = Path(__file__).resolve().parent.parent / "exchanges" / "simulator" / "default_exchange_info.json"
BASES = [
    "BTC",
    "ETH",
    "SOL",
    "BNB",
    "XRP",
    "ADA",
    "DOGE",
    "TRX",
    "DOT",
    "LINK",
    "AVAX",
    "LTC",
    "BCH",
    "ATOM",
    "UNI",
    "XLM",
    "NEAR",
    "APT",
    "FIL",
    "ARB",
]
PRICES = [
    "65000",
    "3500",
    "150",
    "600",
    "0.6",
    "0.45",
    "0.15",
    "0.12",
    "7",
    "15",
    "35",
    "85",
    "450",
    "9",
    "8",
    "0.11",
    "5",
    "9.5",
    "5.5",
    "1.1",
]
SYMBOLS = [base + "USDT" for base in BASES]
TIMEFRAMES = ["1", "3", "5", "15", "30", "45", "60", "120", "180", "240", "360", "D", "W"]
TRADERS = 2
GROUPS_PER_TRADER = 250
LEGS = 5
ENTRY_BELOW_MARKET = Decimal("0.9")
SEND_INTERVAL_S = 0.55  # 2 accounts: ~9 groups (45 orders) per account per 10 s window
SETUP_TIMEOUT_S = 900
FILL_SYMBOLS = 4


def _tick(price: Decimal) -> Decimal:
    return Decimal(1).scaleb(math.floor(math.log10(price)) - 6)


def _step(price: Decimal) -> Decimal:
    return Decimal(1).scaleb(math.floor(math.log10(Decimal(40) / price)) - 3)


def _exchange_info(path: Path) -> None:
    """20 USDT markets in the format of the built-in exchangeInfo, with ticks and steps fitting each price."""
    info = json.loads(BUILT_IN_INFO.read_text())
    template = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    symbols = []
    for base, price_text in zip(BASES, PRICES, strict=True):
        price = Decimal(price_text)
        tick, step = _tick(price), _step(price)
        item = copy.deepcopy(template)
        item["symbol"], item["baseAsset"] = base + "USDT", base
        for rule in item["filters"]:
            if rule["filterType"] == "PRICE_FILTER":
                rule.update(minPrice=f"{tick:.8f}", maxPrice=f"{price * 1000:.8f}", tickSize=f"{tick:.8f}")
            elif rule["filterType"] in ("LOT_SIZE", "MARKET_LOT_SIZE"):
                rule.update(minQty=f"{step:.8f}", maxQty="90000000.00000000", stepSize=f"{step:.8f}")
        symbols.append(item)
    info["symbols"] = symbols
    path.write_text(json.dumps(info, indent=1))


def _entry_price(index: int) -> str:
    price = Decimal(PRICES[index])
    return str((price * ENTRY_BELOW_MARKET).quantize(_tick(price), rounding=ROUND_DOWN))


def _plan(traders: list[Trader]) -> list[tuple[str, bytes]]:
    plan = []
    for k in range(GROUPS_PER_TRADER):
        symbol_index, timeframe = k % len(SYMBOLS), TIMEFRAMES[k // len(SYMBOLS)]
        for t, trader in enumerate(traders):
            body = signal_body(
                trader,
                symbol=SYMBOLS[symbol_index],
                timeframe=timeframe,
                price=_entry_price(symbol_index),
                trade_id=f"mc-{t}-{k}",
            )
            plan.append((trader.webhook_path, body))
    return plan


async def _send_paced(base_url: str, plan: list[tuple[str, bytes]]) -> list[str]:
    problems: list[str] = []
    async with aiohttp.ClientSession(base_url, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def send(path: str, body: bytes) -> None:
            try:
                async with session.post(path, data=body, headers={"Content-Type": "application/json"}) as response:
                    payload = await response.json(content_type=None)
                    if response.status != 202 or payload.get("classification") != "new_entry":
                        problems.append(f"HTTP {response.status}: {str(payload)[:200]}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")

        started = time.monotonic()
        tasks = []
        for n, (path, body) in enumerate(plan):
            await asyncio.sleep(max(0.0, started + n * SEND_INTERVAL_S - time.monotonic()))
            tasks.append(asyncio.create_task(send(path, body)))
        await asyncio.gather(*tasks)
    return problems


def _wait_until_resting(harness: Harness, expected: int) -> None:
    # Django is set up by Harness (on the bench database) after this module is imported
    from positions.models import DCAOrder, PositionGroup

    deadline = time.monotonic() + SETUP_TIMEOUT_S
    next_note = 0.0
    while time.monotonic() < deadline:
        harness.check_alive()
        resting = DCAOrder.objects.filter(status="open").count()
        if resting >= expected:
            return
        failed = PositionGroup.objects.filter(status="failed").count()
        if failed:
            raise RuntimeError(f"{failed} group(s) failed during setup")
        if time.monotonic() >= next_note:
            say(f"monitor_cycle setup: {resting} of {expected} legs resting")
            next_note = time.monotonic() + 30
        time.sleep(2)
    raise RuntimeError(f"only {DCAOrder.objects.filter(status='open').count()} of {expected} legs rested in time")


def _timed_cycle(sim: Any) -> tuple[float, int, dict[str, int], dict[str, Any]]:
    """Wall time of one `monitor_fills()`, the weight and the requests (by endpoint) the simulator counted."""
    # Django is set up by Harness (on the bench database) after this module is imported
    from positions.services.monitor import monitor_fills

    before = sim.stats()
    started = time.perf_counter()
    report = monitor_fills()
    elapsed = (time.perf_counter() - started) * 1000
    after = sim.stats()
    requests = {
        route: count - before["requests_by_endpoint"].get(route, 0)
        for route, count in after["requests_by_endpoint"].items()
        if count > before["requests_by_endpoint"].get(route, 0)
    }
    return elapsed, after["weight_total"] - before["weight_total"], requests, report.as_dict()


def run(harness: Harness) -> dict[str, Any]:
    # Django is set up by Harness (on the bench database) after this module is imported
    from exchanges.services import market_rules_refresh
    from positions.models import DCAOrder, PositionGroup

    info_path = harness.tmp / "exchange_info_20_usdt.json"
    _exchange_info(info_path)
    sim = harness.start_simulator(info_path)
    for symbol, price in zip(SYMBOLS, PRICES, strict=True):
        sim.set_price(symbol, price)
    base_url = harness.start_web()
    market_rules_refresh(exchange_name="simulator")
    harness.start_worker()
    time.sleep(2)  # the worker's start-up reconciliation runs before any trader exists
    traders = traders_create(
        sim,
        count=TRADERS,
        prefix="mc",
        balances={"USDT": "1000000"},
        engine_config={"max_open_groups": GROUPS_PER_TRADER},
    )
    plan = _plan(traders)
    expected = len(plan) * LEGS
    say(f"monitor_cycle setup: {len(plan)} signals, one every {SEND_INTERVAL_S} s")
    started = time.monotonic()
    problems = asyncio.run(_send_paced(base_url, plan))
    if problems:
        raise RuntimeError(f"{len(problems)} signal(s) not accepted as new entries, e.g. {problems[:3]}")
    _wait_until_resting(harness, expected)
    say(f"monitor_cycle setup: {expected} legs resting after {time.monotonic() - started:.0f} s")
    harness.stop_worker()
    harness.purge_queue()
    open_groups = PositionGroup.objects.filter(status="live").count()
    open_orders = DCAOrder.objects.filter(status="open").count()

    load = load_average()
    cycle, weight, requests, report = _timed_cycle(sim)
    if report["orders_checked"] != open_orders or report["errors"]:
        raise RuntimeError(f"the cycle did not see every order: {report}")
    warm_cycle, warm_weight, _, _ = _timed_cycle(sim)

    filled = 0
    for index in range(FILL_SYMBOLS):
        filled += len(sim.set_price(SYMBOLS[index], _entry_price(index))["traded_order_ids"])
    fill_cycle, fill_weight, fill_requests, fill_report = _timed_cycle(sim)
    harness.purge_queue()  # the take-profit orders the fills queued
    return {
        "bench": "monitor_cycle",
        "open_groups": open_groups,
        "open_orders": open_orders,
        "cycle_ms": ms(cycle),
        "exchange_weight": weight,
        "exchange_requests": sum(requests.values()),
        "cycle_ms_warm": ms(warm_cycle),
        "exchange_weight_warm": warm_weight,
        "filled_legs": filled,
        "cycle_ms_with_fills": ms(fill_cycle),
        "exchange_weight_with_fills": fill_weight,
        "exchange_requests_with_fills": fill_requests,
        "orders_updated_with_fills": fill_report["orders_updated"],
        "symbols": len(SYMBOLS),
        "accounts": len(traders),
        "loadavg_1m": load,
    }
