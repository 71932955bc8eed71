"""optimize: configurations evaluated per second over a year of BTC/USDT 5m with all cores (bench/README.md).

The RSI strategy's alerts on ../shared/data/candles/binance_BTC_USDT_5m.csv.gz, the default config, a grid
of 4 take-profit percents × 4 stop-loss percents (16 full-year backtests of every rule), run by
`analytics.optimize.runner.optimize` on a process pool of one process per core: the figure is the
whole search (pool start, signals excluded) divided into its configurations. `one_config_s` is one
configuration evaluated in the bench's own process (after a warm-up run): what a configuration costs a core.
"""

from __future__ import annotations

import os
import time
from typing import Any

from analytics.backtest import CandleSeries
from analytics.backtest.files import load_market_rules, read_candles
from analytics.backtest.signals import strategy_signals
from analytics.optimize.runner import Problem, evaluate, optimize
from analytics.optimize.search import candidates, space_check

from .backtest import CANDLES, SYMBOL
from .harness import Harness, load_average, say

SPACE = {"tp_aggregate_percent": ["1", "1.5", "2", "3"], "stop_loss_percent": ["5", "10", "15", "20"]}


def run(harness: Harness) -> dict[str, Any]:
    if not CANDLES.is_file():
        return {"bench": "optimize", "skipped": f"{CANDLES} not found"}
    rows = read_candles(CANDLES, timeframe="5m")
    series = CandleSeries.from_rows(rows)
    space = space_check(SPACE)
    problem = Problem(
        symbol=SYMBOL,
        timeframe="5m",
        candles=series,
        signals=strategy_signals("rsi", None, series, symbol=SYMBOL),
        base_config={"tp_mode": "aggregate"},
        market_rules=load_market_rules(None, SYMBOL),
        candidates=candidates(space, method="grid"),
    )
    workers = os.cpu_count() or 1
    # One candidate in this process first (its imports and caches warm): what a configuration costs a core.
    evaluate(problem, problem.candidates[0])
    started = time.perf_counter()
    evaluate(problem, problem.candidates[0])
    one = time.perf_counter() - started
    load = load_average()
    started = time.perf_counter()
    report = optimize(problem, space=space, objective="return", workers=workers, monte_carlo_runs=0)
    seconds = time.perf_counter() - started
    configs = report["candidates"]
    say(f"{configs} configurations of {len(rows)} candles in {seconds:.1f} s on {workers} processes")
    best = report["results"][0]
    return {
        "bench": "optimize",
        "candles": len(rows),
        "configurations": configs,
        "workers": workers,
        "seconds": round(seconds, 2),
        "configs_per_s": round(configs / seconds, 2),
        "one_config_s": round(one, 3),
        "best": {"values": best["values"], "total_return_pct": best["metrics"].get("total_return_pct")},
        "loadavg_1m": load,
    }
