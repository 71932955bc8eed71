"""strategy_tick: one candle close evaluated for every enabled strategy instance (bench/README.md).

Setup, in this process on the bench database: one trader with a paper `binance` config, five instances
(RSI, MACD, Bollinger, Volume, Stochastic) each on 50 symbols × 3 timeframes (5m, 15m, 1h), and 600
candles of history per series (a seeded random walk, stored through `exchanges.candles.services`).
A first tick at an hour's close evaluates everything once (cold: the process's candle windows are
empty and filled from the store). Then the next candle of every series closes (the next hour, where
5m, 15m and 1h all close at once) and is stored, and one `strategies_tick` is timed: `tick_ms`. That
tick reads only the new candle of each series (one statement for all 150), evaluates 750 instance ×
series pairs on their warm-up windows, sends the signals through the intake and checks health. No
exchange is called (`sync=False`: the candles are already stored, as the live sync would leave them).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from .harness import Harness, load_average, say
from .traders import BENCH_CONFIG

SYMBOLS = 50
TIMEFRAMES = {"5m": 300_000, "15m": 900_000, "1h": 3_600_000}
HISTORY = 600
KINDS = ["rsi", "macd", "bollinger", "volume", "stochastic"]
START_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


def _walk(rng: np.random.Generator, count: int, price: float) -> list[tuple[float, float, float, float, float]]:
    closes = price * np.exp(np.cumsum(rng.normal(0, 0.004, count)))
    opens = np.concatenate(([price], closes[:-1]))
    spread = np.abs(rng.normal(0, 0.002, count)) * closes
    highs = np.maximum(opens, closes) + spread
    lows = np.minimum(opens, closes) - spread
    volumes = rng.lognormal(3, 0.6, count)
    return list(zip(opens, highs, lows, closes, volumes, strict=True))


def _rows(start_ms: int, interval: int, values: list[tuple[float, float, float, float, float]]) -> list[Any]:
    # Imported here, not at the top: `python -m bench` sets Django up after importing the benches.
    from exchanges.candles.rules import CandleRow

    def dec(value: float) -> Decimal:
        return Decimal(f"{value:.6f}")

    return [
        CandleRow(start_ms + i * interval, dec(o), dec(h), dec(low), dec(c), dec(v))
        for i, (o, h, low, c, v) in enumerate(values)
    ]


def run(harness: Harness) -> dict[str, Any]:
    # Imported here, not at the top: `python -m bench` sets Django up after importing the benches.
    from accounts.models import User
    from exchanges.candles.services import candles_store
    from exchanges.models import ExchangeConfig
    from exchanges.precision import MarketRules
    from exchanges.rules import market_rules_store
    from positions.services.configs import config_set
    from strategies import services
    from strategies.services import live

    user = User.objects.create_user(
        email=f"strategies-{uuid.uuid4().hex[:8]}@bench.local",
        username="strategies",
        password="Bench-12345",
        role="trader",
    )
    config = ExchangeConfig(user=user, exchange_name="binance", mode="paper", is_enabled=True)
    config.set_credentials(api_key="bench-key-0001", api_secret="bench-secret-0001-xxxxxxxxxxxxxx", password=None)
    config.save()
    # The tick runs at historic closes and its signals carry that time: the stale-alert guard would ignore
    # every one of them, so it is off, as for the other benches' traders (bench/traders.py BENCH_CONFIG).
    config_set(user=user, data=BENCH_CONFIG, partial=True)
    symbols = [f"S{i:02d}/USDT" for i in range(SYMBOLS)]
    # The exchange's market rules are cached, as a refresh leaves them: the intake resolves symbols
    # from memory, as it does live.
    market_rules_store(
        exchange_name="binance",
        rules=[
            MarketRules(
                symbol=symbol,
                exchange_symbol=symbol.replace("/", ""),
                base=symbol.split("/")[0],
                quote="USDT",
                tick_size=Decimal("0.000001"),
                step_size=Decimal("0.001"),
                min_qty=Decimal("0.001"),
                min_notional=Decimal("5"),
            )
            for symbol in symbols
        ],
    )
    for kind in KINDS:
        services.strategy_create(
            user=user, data={"kind": kind, "symbols": symbols, "timeframes": list(TIMEFRAMES), "exchange": "binance"}
        )
    # Every series ends on the candle that closes at `close_ms`; one more candle then closes at +1 h.
    close_ms = START_MS + HISTORY * TIMEFRAMES["1h"]
    rng = np.random.default_rng(7)
    extra: dict[tuple[str, str], list[Any]] = {}
    stored = 0
    started = time.monotonic()
    for symbol in symbols:
        for timeframe, interval in TIMEFRAMES.items():
            per_hour = TIMEFRAMES["1h"] // interval
            values = _walk(rng, HISTORY + per_hour, float(rng.uniform(1, 1000)))
            rows = _rows(close_ms - HISTORY * interval, interval, values)
            stored += candles_store(exchange_name="binance", symbol=symbol, timeframe=timeframe, rows=rows[:HISTORY])
            extra[(symbol, timeframe)] = rows[HISTORY:]
    say(f"stored {stored} candles in {time.monotonic() - started:.1f} s")

    def moment(ms: int) -> datetime:
        return datetime.fromtimestamp((ms + 1000) / 1000, tz=UTC)

    cold = live.strategies_tick(now=moment(close_ms), sync=False)
    say(f"cold tick: {cold.evaluated} evaluations, {len(cold.signals)} signals, {cold.ms:.0f} ms")
    for (symbol, timeframe), rows in extra.items():
        candles_store(exchange_name="binance", symbol=symbol, timeframe=timeframe, rows=rows)
    load = load_average()
    tick = live.strategies_tick(now=moment(close_ms + TIMEFRAMES["1h"]), sync=False)
    say(f"tick: {tick.evaluated} evaluations, {len(tick.signals)} signals, {tick.ms:.0f} ms")
    return {
        "bench": "strategy_tick",
        "instances": len(KINDS),
        "symbols": SYMBOLS,
        "timeframes": len(TIMEFRAMES),
        "tick_ms": round(tick.ms, 1),
        "evaluations": tick.evaluated,
        "signals": len(tick.signals),
        "cold_tick_ms": round(cold.ms, 1),
        "loadavg_1m": load,
    }
