"""The ML background task kinds (docs/ml.md#tasks): `train` and `bulk-analysis`, on the heavy queue
through `analytics.tasks_framework`.

`POST /api/tasks/train` `{symbol, timeframe, horizon, exchange?, start?, end?, params?}`: walk-forward
training on the stored candles, progress per fold; the model is stored when the task succeeds (in the
transaction that marks it so), deployed only if it beats the deployed one (`analytics.ml.services`).

`POST /api/tasks/bulk-analysis` `{symbols, timeframe}`: each symbol's deployed model scores its newest
candle now, against the owner's `ml_filter_threshold`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accounts.models import User
from exchanges.candles import selectors as candle_selectors
from exchanges.candles import services as candle_services
from exchanges.candles.services import CandleInputError
from positions.config import engine_setting
from positions.services.configs import config_get

from .. import tasks_framework
from ..backtest_task import symbol_resolve, time_ms_parse
from ..choices import TaskKind
from ..tasks_framework import TaskContext, TaskInputError
from . import selectors, services
from .params import MIN_ROWS, SCORE_CANDLES, WARMUP, MLInputError, horizon_validate, name_checked, params_validate

if TYPE_CHECKING:
    from .training import TrainResult

TRAIN_FIELDS = {"symbol", "timeframe", "horizon", "exchange", "start", "end", "params"}
BULK_FIELDS = {"symbols", "timeframe", "exchange"}
MAX_BULK_SYMBOLS = 100


def _bad(field: str, reason: str) -> TaskInputError:
    return TaskInputError({field: [reason]})


def _unknown(data: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise TaskInputError({name: ["unknown field"] for name in unknown})


def _series(data: dict[str, Any]) -> tuple[str, str]:
    try:
        exchange = candle_services.candle_exchange_check(str(data.get("exchange") or "").strip() or "binance")
        timeframe = candle_services.candle_timeframe_check(str(data.get("timeframe") or "").strip())
    except CandleInputError as exc:
        raise _bad(exc.field_name or "request", str(exc)) from None
    return exchange, timeframe


def train_validate(owner: User, data: dict[str, Any]) -> dict[str, Any]:
    """The stored parameters of a training request; `TaskInputError` naming the first bad field, too few
    stored candles included."""
    _unknown(data, TRAIN_FIELDS)
    exchange, timeframe = _series(data)
    symbol = symbol_resolve(exchange, data.get("symbol"))
    if data.get("params") is not None and not isinstance(data.get("params"), dict):
        raise _bad("params", "must be a JSON object")
    try:
        horizon = horizon_validate(data.get("horizon"))
        params = params_validate(data.get("params") or {})
    except MLInputError as exc:
        raise _bad(exc.field_name, str(exc)) from None
    start, end = time_ms_parse(data.get("start"), "start"), time_ms_parse(data.get("end"), "end")
    if start is not None and end is not None and end <= start:
        raise _bad("end", "must be after start")
    needed = WARMUP + MIN_ROWS + horizon
    found = candle_selectors.candles_range(
        exchange_name=exchange, symbol=symbol, timeframe=timeframe, start_ms=start, end_ms=end, limit=needed
    )
    if len(found) < needed:
        field = "start" if start is not None or end is not None else "symbol"
        raise _bad(
            field,
            f"too few candles to train: {len(found)} stored {timeframe} candles of {symbol} on {exchange}"
            f" in this period, need at least {needed} ({WARMUP} for the indicators' warm-up, {MIN_ROWS} to train"
            " and validate on, the horizon)",
        )
    return {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "horizon": horizon,
        "start": start,
        "end": end,
        "params": params,
    }


def train_run(context: TaskContext) -> TrainResult:
    """Load the candles and train, reporting 5 % once loaded and then each fold."""
    params = context.params
    context.progress(1)
    try:
        return services.model_fit(
            exchange_name=params["exchange"],
            symbol=params["symbol"],
            timeframe=params["timeframe"],
            horizon=params["horizon"],
            params=params["params"],
            start_ms=params.get("start"),
            end_ms=params.get("end"),
            progress=lambda percent: context.progress(5 + percent * 0.95),
        )
    except MLInputError as exc:
        raise _bad(exc.field_name, str(exc)) from None


def train_store(context: TaskContext, outcome: TrainResult) -> dict[str, Any]:
    """Store the model (deployed if better) in the transaction that marks the task SUCCESS."""
    params = context.params
    model = services.model_store(
        result=outcome,
        exchange_name=params["exchange"],
        symbol=params["symbol"],
        timeframe=params["timeframe"],
        created_by_id=context.owner_id,
    )
    return {
        "model_id": str(model.pk),
        "deployed": model.status == "deployed",
        "status": model.status,
        "reason": model.status_reason,
        "score": model.score,
        "holdout": model.holdout,
        "folds": model.folds,
        "training_seconds": model.training_seconds,
        "device": model.device,
    }


def bulk_validate(owner: User, data: dict[str, Any]) -> dict[str, Any]:
    _unknown(data, BULK_FIELDS)
    exchange, timeframe = _series(data)
    raw = data.get("symbols")
    if not isinstance(raw, list) or not raw:
        raise _bad("symbols", "a non-empty list of symbols")
    if len(raw) > MAX_BULK_SYMBOLS:
        raise _bad("symbols", f"at most {MAX_BULK_SYMBOLS} symbols per request, not {len(raw)}")
    symbols = []
    for index, item in enumerate(raw):
        try:
            name_checked(item, field_name=f"symbols.{index}", max_length=32)
        except MLInputError as exc:
            raise _bad(exc.field_name, "must be a symbol such as BTC/USDT") from None
        # BTCUSDT is resolved as the backtests resolve it (market rules or stored candles of `exchange`);
        # a symbol without a deployed model is reported in the result, not refused.
        text = item.strip().upper()
        symbols.append(text if "/" in text else symbol_resolve(exchange, text))
    return {"symbols": symbols, "timeframe": timeframe}


def bulk_run(context: TaskContext) -> dict[str, Any]:
    """Score each symbol's newest candle with its deployed model."""
    # Imported here: pandas and xgboost load in the worker that scores, not in every web process that
    # registers this kind.
    from strategies.library import candles_frame

    from .filter import bulk_scores  # xgboost: likewise loaded only here

    params = context.params
    timeframe = params["timeframe"]
    work = []
    for symbol in params["symbols"]:
        model = selectors.model_deployed(symbol=symbol, timeframe=timeframe)
        rows = (
            candle_selectors.candles_range(
                exchange_name=model.exchange_name, symbol=symbol, timeframe=timeframe, limit=SCORE_CANDLES
            )
            if model is not None
            else []
        )
        frame = candles_frame([(row.open_ms, *(float(value) for value in row[1:])) for row in rows])
        work.append((symbol, model, frame))
    threshold = float(engine_setting(config_get(user=context.owner_id), "ml_filter_threshold"))
    scores = bulk_scores(work, progress=context.progress)
    for entry in scores:
        if entry.get("score") is not None:
            entry["passes"] = entry["score"] >= threshold
    return {"timeframe": timeframe, "threshold": threshold, "scores": scores}


tasks_framework.task_kind_register(TaskKind.TRAIN.value, validate=train_validate, run=train_run, store=train_store)
tasks_framework.task_kind_register(TaskKind.BULK_ANALYSIS.value, validate=bulk_validate, run=bulk_run)
