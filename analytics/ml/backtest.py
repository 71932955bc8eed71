"""The ML filter in backtests (docs/ml.md#backtests): the `ml_filter` option of `POST /api/tasks/backtest`.

`"ml_filter": true` filters the run's entries with the deployed model of its symbol and timeframe at the
config's `ml_filter_threshold`; `{"model_id"?, "threshold"?}` names a stored model (any status) and a
threshold. The run is replayed twice, with and without the filter, and its metrics carry both
(`metrics.ml_filter`), so the filter's effect reads off one result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from exchanges.candles.rules import CandleRow
from positions.config import engine_setting

from ..backtest import BacktestRequest, BacktestResult, run_backtest
from ..tasks_framework import TaskInputError
from . import selectors
from .models import FilterModel

COMPARED = ("total_return_pct", "deals", "trades", "win_rate", "max_drawdown_pct", "sharpe", "profit_factor")


def _bad(reason: str, field: str = "ml_filter") -> TaskInputError:
    return TaskInputError({field: [reason]})


def ml_filter_params(raw: Any, *, symbol: str, timeframe: str, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored form of a backtest's `ml_filter` (None: no filter); `TaskInputError` naming the field."""
    if raw in (None, False):
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict) or set(raw) - {"model_id", "threshold"}:
        raise _bad("true, or {model_id?, threshold?}")
    if raw.get("model_id"):
        model = selectors.model_get(model_id=str(raw["model_id"]))
        if model is None:
            raise _bad(f"no stored model {raw['model_id']!r}", "ml_filter.model_id")
        if (model.symbol, model.timeframe) != (symbol, timeframe):
            raise _bad(f"model {model.pk} is for {model.symbol} {model.timeframe}", "ml_filter.model_id")
    else:
        model = selectors.model_deployed(symbol=symbol, timeframe=timeframe)
        if model is None:
            raise _bad(f"no deployed model for {symbol} {timeframe}: train one first (POST /api/tasks/train)")
    threshold = raw.get("threshold")
    if threshold is None:
        threshold = engine_setting(config, "ml_filter_threshold")
    try:
        value = Decimal(str(threshold))
    except InvalidOperation:
        value = Decimal(-1)
    if isinstance(threshold, bool) or not value.is_finite() or not 0 < value < 1:
        raise _bad("must be a probability between 0 and 1 (exclusive)", "ml_filter.threshold")
    return {"model_id": str(model.pk), "threshold": float(value)}


def ml_entry_filter(ml_filter: Mapping[str, Any], candles: Sequence[CandleRow]) -> Callable[[int, str], bool]:
    """The backtester's `entry_filter` for a stored `ml_filter` over the run's candles."""
    # Imported here: pandas and xgboost load where a backtest runs, not in the web process that checks
    # the request.
    from strategies.library import candles_frame

    from .filter import backtest_entry_filter  # xgboost: likewise loaded only here

    model = FilterModel.objects.get(pk=ml_filter["model_id"])
    frame = candles_frame([(row.open_ms, *(float(value) for value in row[1:])) for row in candles])
    return backtest_entry_filter(model, frame, threshold=float(ml_filter["threshold"]))


def ml_filter_report(
    ml_filter: Mapping[str, Any], *, filtered: Mapping[str, Any], unfiltered: Mapping[str, Any], blocked: int
) -> dict[str, Any]:
    """`metrics.ml_filter`: the model, the threshold, the entries it refused, and the headline metrics
    with and without it."""
    return {
        **ml_filter,
        "entries_filtered": blocked,
        "with": {key: filtered.get(key) for key in COMPARED},
        "without": {key: unfiltered.get(key) for key in COMPARED},
    }


def ml_filter_replay(
    request: BacktestRequest,
    ml_filter: Mapping[str, Any],
    candles: Sequence[CandleRow],
    *,
    progress: Callable[[float], None] | None = None,
) -> BacktestResult:
    """The backtest with the filter (the result) and without it (for `metrics.ml_filter`): progress 0-50 %
    the run without, 50-100 % the run with."""
    allow = ml_entry_filter(ml_filter, candles)
    blocked = 0

    def entry_filter(time_ms: int, symbol: str) -> bool:
        nonlocal blocked
        allowed = allow(time_ms, symbol)
        blocked += not allowed
        return allowed

    def half(offset: float) -> Callable[[float], None] | None:
        if progress is None:
            return None
        report = progress
        return lambda percent: report(offset + percent / 2)

    unfiltered = run_backtest(dataclasses.replace(request, entry_filter=None), half(0))
    filtered = run_backtest(dataclasses.replace(request, entry_filter=entry_filter), half(50))
    filtered.metrics["ml_filter"] = ml_filter_report(
        ml_filter, filtered=filtered.metrics, unfiltered=unfiltered.metrics, blocked=blocked
    )
    return filtered
