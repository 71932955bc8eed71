"""The `optimize` background task (docs/optimization.md): a backtest request plus a search space,
validated at submit, run on the heavy worker over all its cores, the report stored as the task's result.

`POST /api/tasks/optimize` takes the backtest's fields (docs/tasks.md#backtest) and `space` (`{key:
[values]}`), `objective` (return, sharpe, calmar, return_drawdown), `method` (grid or random, with `samples`),
`seed`, `walk_forward` (`{train_days, test_days}`, optional) and `monte_carlo_runs`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import User
from exchanges.candles.rules import TIMEFRAME_MS
from positions.config import ConfigError, parse_engine_config

from . import tasks_framework
from .backtest import CandleSeries
from .backtest_task import backtest_validate, market_rules_for, request_signals, stored_candles
from .optimize.runner import Problem, optimize
from .optimize.search import (
    METHODS,
    OBJECTIVES,
    SearchError,
    apply_values,
    candidates,
    space_check,
    walk_forward,
)
from .tasks_framework import TaskContext, TaskInputError

KIND = "optimize"
OWN_FIELDS = ("space", "objective", "method", "samples", "seed", "walk_forward", "monte_carlo_runs")


def _whole(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = data.get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise TaskInputError({name: [f"a whole number from {low} to {high}"]})
    return raw


def optimize_validate(owner: User, data: dict[str, Any]) -> dict[str, Any]:
    params = backtest_validate(owner, {k: v for k, v in data.items() if k not in OWN_FIELDS})
    if params.get("ml_filter"):
        raise TaskInputError({"ml_filter": ["not available in an optimization; backtest the chosen config with it"]})
    if params.get("detail_timeframe"):
        raise TaskInputError({"detail_timeframe": ["not available in an optimization"]})
    objective = data.get("objective", "return")
    if objective not in OBJECTIVES:
        raise TaskInputError({"objective": [f"one of {', '.join(OBJECTIVES)}"]})
    method = data.get("method", "grid")
    if method not in METHODS:
        raise TaskInputError({"method": [f"one of {', '.join(METHODS)}"]})
    seed = _whole(data, "seed", 0, 0, 2**31 - 1)
    runs = _whole(data, "monte_carlo_runs", 1000, 0, 100_000)
    samples = _whole(data, "samples", 50, 1, 10**6) if method == "random" else None
    try:
        space = space_check(data.get("space"))
        picked = candidates(space, method=method, samples=samples, seed=seed)
        for values in picked[:1]:  # the base config with a candidate's values must be a valid config
            try:
                parse_engine_config(apply_values(params["config"], values))
            except ConfigError as exc:
                raise TaskInputError({f"space.{k}": v for k, v in exc.errors.items()}) from None
        wf = data.get("walk_forward")
        windows: dict[str, int] | None = None
        if wf is not None:
            if not isinstance(wf, dict):
                raise TaskInputError({"walk_forward": ["an object {train_days, test_days}"]})
            windows = {
                "train_days": _whole(wf, "train_days", 0, 1, 3650),
                "test_days": _whole(wf, "test_days", 0, 1, 3650),
            }
    except SearchError as exc:
        raise TaskInputError(exc.errors) from None
    params.update(
        space=space, objective=objective, method=method, samples=samples, seed=seed, walk_forward=windows,
        monte_carlo_runs=runs, candidates=picked,
    )  # fmt: skip
    return params


def optimize_run(context: TaskContext) -> dict[str, Any]:
    params = context.params
    symbol = params["symbol"]
    candles = stored_candles(params, params["timeframe"])
    if not candles:
        raise TaskInputError({"start": ["the period's candles are gone"]})
    signals = request_signals(params, candles)
    rules = market_rules_for(params["exchange"], symbol)
    context.progress(2)
    series = CandleSeries.from_rows(candles)
    windows = []
    if params.get("walk_forward"):
        end = int(series.open_ms[-1]) + TIMEFRAME_MS[params["timeframe"]]
        try:
            windows = walk_forward(int(series.open_ms[0]), end, **params["walk_forward"])
        except SearchError as exc:
            raise TaskInputError(exc.errors) from None
    problem = Problem(
        symbol=params["symbol"],
        timeframe=params["timeframe"],
        candles=series,
        signals=signals,
        base_config=params["config"],
        market_rules=rules,
        candidates=params["candidates"],
    )
    return optimize(
        problem,
        space=params["space"],
        objective=params["objective"],
        windows=windows,
        workers=getattr(settings, "OPTIMIZE_WORKERS", None),
        seed=params["seed"],
        monte_carlo_runs=params["monte_carlo_runs"],
        progress=lambda percent: context.progress(2 + int(percent * 0.97)),
    )


def optimize_store(context: TaskContext, outcome: dict[str, Any]) -> dict[str, Any]:
    return outcome


tasks_framework.task_kind_register(KIND, validate=optimize_validate, run=optimize_run, store=optimize_store)
