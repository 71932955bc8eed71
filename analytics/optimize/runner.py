"""Running a search (docs/optimization.md): every candidate config is a full backtest of the live rules
(`analytics.backtest.run_backtest`), spread over the cores with a process pool.

The pool's processes start from a fork server (a clean process, not a fork of the celery worker with its
threads and connections) and receive the problem (candles, alerts, rules) once, when they start; a job is
then only (candidate number, window).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from analytics.backtest import CONTRACT_METRICS, BacktestRequest, CandleSeries, Signal, run_backtest
from exchanges.fillmodel import DEFAULT_COMMISSION_RATE
from exchanges.precision import MarketRules

from .search import TimeWindow, apply_values, monte_carlo_drawdown, objective_value

# A candidate's row keeps the contract's metrics (the run's own timing aside).
KEPT = tuple(key for key in CONTRACT_METRICS if key != "seconds")


@dataclass(frozen=True)
class Problem:
    """One symbol's candles and alerts, the config the candidates change, the market's rules."""

    symbol: str
    timeframe: str
    candles: CandleSeries
    signals: Sequence[Signal]
    base_config: Mapping[str, Any]
    market_rules: MarketRules
    fee_rate: Decimal = DEFAULT_COMMISSION_RATE
    candidates: Sequence[Mapping[str, Any]] = field(default_factory=list)


_PROBLEM: Problem | None = None  # a pool process's problem, set once when it starts (`_init`)


def _init(problem: bytes) -> None:
    """A pool process's start: the problem, pickled once by the parent for all its processes."""
    global _PROBLEM
    _PROBLEM = pickle.loads(problem)


def _series_between(series: CandleSeries, start_ms: int | None, end_ms: int | None) -> CandleSeries:
    low = 0 if start_ms is None else int(np.searchsorted(series.open_ms, start_ms, side="left"))
    high = len(series) if end_ms is None else int(np.searchsorted(series.open_ms, end_ms, side="left"))
    return CandleSeries(
        open_ms=series.open_ms[low:high],
        open=series.open[low:high],
        high=series.high[low:high],
        low=series.low[low:high],
        close=series.close[low:high],
        volume=series.volume[low:high],
        rows=series.rows[low:high],
    )


def request_for(problem: Problem, values: Mapping[str, Any], window: tuple[int, int] | None = None) -> BacktestRequest:
    """The backtest of one candidate over the whole period or [start, end) of a window."""
    start, end = window if window else (None, None)
    candles = _series_between(problem.candles, start, end)
    signals = [
        signal
        for signal in problem.signals
        if (start is None or signal.time_ms >= start) and (end is None or signal.time_ms < end)
    ]
    return BacktestRequest(
        candles={problem.symbol: candles},
        timeframe=problem.timeframe,
        signals=signals,
        config=apply_values(problem.base_config, values),
        market_rules={problem.symbol: problem.market_rules},
        fee_rate=problem.fee_rate,
    )


def evaluate(problem: Problem, values: Mapping[str, Any], window: tuple[int, int] | None = None) -> dict[str, Any]:
    """One candidate's metrics (KEPT), or `{"error": ...}` when its config is refused."""
    try:
        result = run_backtest(request_for(problem, values, window))
    except ValueError as exc:  # BacktestError / ConfigError: this combination is not a valid config
        return {"error": str(exc)}
    return {key: result.metrics.get(key) for key in KEPT}


def _job(index: int, window: tuple[int, int] | None) -> tuple[int, tuple[int, int] | None, dict[str, Any]]:
    assert _PROBLEM is not None
    return index, window, evaluate(_PROBLEM, _PROBLEM.candidates[index], window)


def _workers(requested: int | None) -> int:
    return max(1, requested or os.cpu_count() or 1)


def run_jobs(
    problem: Problem,
    jobs: Sequence[tuple[int, tuple[int, int] | None]],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[tuple[int, tuple[int, int] | None], dict[str, Any]]:
    """Evaluate (candidate number, window) jobs on `workers` processes (1: in this process)."""
    count = _workers(workers)
    results: dict[tuple[int, tuple[int, int] | None], dict[str, Any]] = {}
    if count == 1 or len(jobs) <= 1:
        for done, (index, window) in enumerate(jobs, start=1):
            results[(index, window)] = evaluate(problem, problem.candidates[index], window)
            if progress:
                progress(done, len(jobs))
        return results
    process = multiprocessing.current_process()
    daemonic = process.daemon
    # A celery prefork child is daemonic, and multiprocessing refuses children to daemons. The pool's
    # processes end with this call (the executor is joined below), so the flag is lifted only meanwhile.
    if daemonic:
        process.daemon = False
    try:
        context = multiprocessing.get_context("forkserver")
        # The fork server imports the backtester once and every pool process starts from it with it loaded,
        # instead of each importing it at its first job (~0.6 s a search on 2 cores). It only applies when
        # this process starts its fork server: the first search does; later ones reuse it.
        context.set_forkserver_preload([__name__])
        workers_count = min(count, len(jobs))
        # Pickled here once: handed to each process as bytes, not pickled again for every one of them.
        shared = pickle.dumps(problem, protocol=pickle.HIGHEST_PROTOCOL)
        with ProcessPoolExecutor(workers_count, mp_context=context, initializer=_init, initargs=(shared,)) as pool:
            futures = [pool.submit(_job, index, window) for index, window in jobs]
            for done, future in enumerate(as_completed(futures), start=1):
                index, window, row = future.result()
                results[(index, window)] = row
                if progress:
                    progress(done, len(jobs))
    finally:
        if daemonic:
            process.daemon = True
    return results


def _rank(
    candidates: Sequence[Mapping[str, Any]], rows: Sequence[dict[str, Any]], objective: str
) -> list[dict[str, Any]]:
    ranked: list[dict[str, Any]] = [
        {
            "values": dict(values),
            "objective": objective_value(objective, row) if "error" not in row else -math.inf,
            "metrics": row,
        }
        for values, row in zip(candidates, rows, strict=True)
    ]
    ranked.sort(key=lambda item: item["objective"], reverse=True)  # stable: ties keep the search's order
    for rank, item in enumerate(ranked, start=1):
        item["rank"] = rank
        if not math.isfinite(item["objective"]):
            item["objective"] = None
    return ranked


def _heatmap(space: Mapping[str, Sequence[Any]], ranked: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The best objective for each value pair of the first two keys (other keys at their best)."""
    keys = list(space)
    if len(keys) < 2:
        return None
    x_key, y_key = keys[0], keys[1]
    xs, ys = list(space[x_key]), list(space[y_key])
    cells: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for item in ranked:
        if item["objective"] is None:
            continue
        x, y = xs.index(item["values"][x_key]), ys.index(item["values"][y_key])
        current = cells[y][x]
        if current is None or item["objective"] > current:
            cells[y][x] = item["objective"]
    return {"x_key": x_key, "y_key": y_key, "x_values": xs, "y_values": ys, "z": cells}


def optimize(
    problem: Problem,
    *,
    space: Mapping[str, Sequence[Any]],
    objective: str,
    windows: Sequence[TimeWindow] = (),
    workers: int | None = None,
    seed: int = 0,
    monte_carlo_runs: int = 1000,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Every candidate over the whole period (ranked by `objective`), then, with `windows`, the
    walk-forward: per window the best candidate on its training part, scored on its test part (the
    out-of-sample report), and Monte Carlo of the best candidate's deal order."""
    started = time.monotonic()
    candidates = list(problem.candidates)
    jobs: list[tuple[int, tuple[int, int] | None]] = [(i, None) for i in range(len(candidates))]
    jobs += [(i, (w.train_start, w.train_end)) for w in windows for i in range(len(candidates))]
    total = len(jobs) + len(windows)

    def report(done: int, _: int) -> None:
        if progress:
            progress(100.0 * done / max(1, total))

    rows = run_jobs(problem, jobs, workers=workers, progress=report)
    ranked = _rank(candidates, [rows[(i, None)] for i in range(len(candidates))], objective)
    walk: list[dict[str, Any]] = []
    test_jobs: list[tuple[int, tuple[int, int] | None]] = []
    for window in windows:
        train = _rank(
            candidates, [rows[(i, (window.train_start, window.train_end))] for i in range(len(candidates))], objective
        )
        best = next((candidates.index(item["values"]) for item in train if item["objective"] is not None), 0)
        walk.append(
            {
                "window": window.as_json(),
                "best_values": dict(candidates[best]),
                "train_objective": train[0]["objective"],
            }
        )
        test_jobs.append((best, (window.test_start, window.test_end)))
    tested = run_jobs(problem, test_jobs, workers=workers, progress=lambda d, _: report(len(jobs) + d, total))
    for step, job in zip(walk, test_jobs, strict=True):
        step["test_metrics"] = tested[job]
        step["test_objective"] = objective_value(objective, tested[job]) if "error" not in tested[job] else None
    monte_carlo = None
    if monte_carlo_runs > 0:
        best_run = run_backtest(request_for(problem, ranked[0]["values"]))
        monte_carlo = monte_carlo_drawdown(
            [float(deal.realized_pnl) for deal in best_run.deals if deal.closed_ms is not None],
            float(best_run.metrics.get("initial_equity") or 0),
            runs=monte_carlo_runs,
            seed=seed,
        )
    seconds = time.monotonic() - started
    evaluations = len(jobs) + len(test_jobs)
    return {
        "objective": objective,
        "candidates": len(candidates),
        "evaluations": evaluations,
        "seconds": round(seconds, 3),
        "evaluations_per_s": round(evaluations / seconds, 3) if seconds else None,
        "workers": _workers(workers),
        "seed": seed,
        "results": ranked,
        "heatmap": _heatmap(space, ranked),
        "walk_forward": _walk_summary(walk) if windows else None,
        "monte_carlo": monte_carlo,
    }


def _walk_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The out-of-sample report: each window's test, and their returns compounded."""
    growth = 1.0
    deals = 0
    for step in steps:
        test = step["test_metrics"]
        if "error" in test:
            continue
        growth *= 1 + (test.get("total_return_pct") or 0.0) / 100
        deals += int(test.get("deals") or 0)
    worst = max((step["test_metrics"].get("max_drawdown_pct") or 0.0 for step in steps), default=0.0)
    return {
        "windows": steps,
        "out_of_sample": {"total_return_pct": (growth - 1) * 100, "deals": deals, "worst_window_drawdown_pct": worst},
    }
