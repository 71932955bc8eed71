"""The `backtest` background task (docs/tasks.md#backtest): validate the request, load stored candles,
run the backtester, store one `BacktestRun`.

Validation happens when the task is submitted, so a bad request is a 400 naming its field and never a
task: the signal source (exactly one of a built-in strategy, a signals CSV, a TradingView trades CSV, each
CSV at most `TASK_UPLOAD_MAX_BYTES`), the exchange, the symbol (`BTCUSDT` or `BTC/USDT`), the timeframe, the
period (it must hold stored candles), the engine config (the user's stored one when none is given; the
same validation as `PUT /api/config`) and the detail timeframe.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from accounts.models import User
from exchanges import selectors as exchange_selectors
from exchanges.candles import selectors as candle_selectors
from exchanges.candles import services as candle_services
from exchanges.candles.rules import TIMEFRAME_MS, CandleRow
from exchanges.candles.services import CandleInputError
from exchanges.precision import MarketRules
from positions.config import ConfigError, parse_engine_config
from positions.services.configs import config_get
from strategies.params import StrategyParamError, params_validate

from . import tasks_framework
from .backtest import BacktestError, BacktestRequest, BacktestResult, Signal, run_backtest
from .backtest.files import load_market_rules
from .ml import backtest as ml_backtest
from .models import BacktestRun
from .tasks_framework import TaskContext, TaskInputError

KIND = "backtest"
SOURCES = ("strategy", "signals_csv", "tv_trades_csv")
EQUITY_POINTS = 5000  # the stored equity curve's points at most (the chart's resolution)
FIELDS = {
    *SOURCES,
    "strategy_params",
    "symbol",
    "timeframe",
    "exchange",
    "start",
    "end",
    "config",
    "detail_timeframe",
    "ml_filter",  # the ML entry filter, run with and without (analytics.ml.backtest)
}


def _bad(field: str, reason: str) -> TaskInputError:
    return TaskInputError({field: [reason]})


def time_ms_parse(raw: Any, field: str) -> int | None:
    """Epoch milliseconds, or an ISO 8601 time (UTC when it names no zone)."""
    if raw in (None, ""):
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(field, "not a time: epoch milliseconds or ISO 8601") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _text(raw: Any, field: str) -> str:
    """A CSV given as text or as an uploaded file, within the size limit."""
    limit = int(settings.TASK_UPLOAD_MAX_BYTES)
    if isinstance(raw, UploadedFile):
        if (raw.size or 0) > limit:
            raise _bad(field, f"the upload is {raw.size} bytes, over the {limit} byte limit")
        data = raw.read()
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _bad(field, "not UTF-8 text") from None
    if not isinstance(raw, str) or not raw.strip():
        raise _bad(field, "must be the CSV's text (or an uploaded file)")
    if len(raw.encode()) > limit:
        raise _bad(field, f"the upload is {len(raw.encode())} bytes, over the {limit} byte limit")
    return raw


def _strategy(data: dict[str, Any]) -> dict[str, Any]:
    """`strategy` as a name (`"rsi"`, params in `strategy_params`) or `{"kind", "params"}`."""
    raw = data["strategy"]
    params: Any = data.get("strategy_params") or {}
    if isinstance(raw, dict):
        kind, params = raw.get("kind"), raw.get("params", params)
    else:
        kind = raw
    if not isinstance(kind, str) or not kind.strip():
        raise _bad("strategy", "a strategy name (rsi, macd, bollinger, volume, stochastic) or {kind, params}")
    try:
        values = params_validate(kind.strip().lower(), params)
    except StrategyParamError as exc:
        raise TaskInputError({f"strategy.{name}": reasons for name, reasons in exc.fields.items()}) from None
    return {"kind": kind.strip().lower(), "params": values}


def symbol_resolve(exchange: str, raw: Any) -> str:
    """The unified symbol of `BTCUSDT` or `BTC/USDT`: through market rules when held, else the stored
    candles' symbol written without its slash."""
    if not isinstance(raw, str) or not raw.strip():
        raise _bad("symbol", "is required")
    try:
        return candle_services.candle_symbol_resolve(exchange_name=exchange, raw=raw)
    except CandleInputError as exc:
        wanted = raw.strip().upper().replace("/", "").replace("-", "")
        for stored in candle_selectors.candles_stored_symbols(exchange_name=exchange):
            if stored.replace("/", "") == wanted:
                return stored
        raise _bad("symbol", str(exc)) from None


def _has_candles(*, exchange: str, symbol: str, timeframe: str, start: int | None, end: int | None) -> bool:
    rows = candle_selectors.candles_range(
        exchange_name=exchange, symbol=symbol, timeframe=timeframe, start_ms=start, end_ms=end, limit=1
    )
    return bool(rows)


def backtest_validate(owner: User, data: dict[str, Any]) -> dict[str, Any]:
    """The stored parameters of a backtest request; `TaskInputError` naming the first bad field."""
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise TaskInputError({name: ["unknown field"] for name in unknown})
    given = [name for name in SOURCES if data.get(name) not in (None, "")]
    if len(given) != 1:
        reason = "give exactly one of strategy, signals_csv, tv_trades_csv"
        raise TaskInputError({name: [reason] for name in (given or ["strategy"])})
    source = given[0]
    params: dict[str, Any] = {"source": source}
    if source == "strategy":
        params["strategy"] = _strategy(data)
    else:
        params[source] = _text(data[source], source)
    try:
        exchange = candle_services.candle_exchange_check(str(data.get("exchange") or "").strip() or "binance")
        timeframe = candle_services.candle_timeframe_check(str(data.get("timeframe") or "").strip())
    except CandleInputError as exc:
        raise _bad(exc.field_name or "request", str(exc)) from None
    symbol = symbol_resolve(exchange, data.get("symbol"))
    start, end = time_ms_parse(data.get("start"), "start"), time_ms_parse(data.get("end"), "end")
    if start is not None and end is not None and end <= start:
        raise _bad("end", "must be after start")
    if not _has_candles(exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end):
        field = "start" if start is not None or end is not None else "symbol"
        raise _bad(field, f"no stored {timeframe} candles of {symbol} on {exchange} in this period")
    detail = str(data.get("detail_timeframe") or "").strip() or None
    if detail is not None:
        if detail not in TIMEFRAME_MS:
            raise _bad("detail_timeframe", f"unknown timeframe {detail!r}")
        if TIMEFRAME_MS[detail] >= TIMEFRAME_MS[timeframe] or TIMEFRAME_MS[timeframe] % TIMEFRAME_MS[detail]:
            raise _bad("detail_timeframe", f"must be a lower timeframe that divides {timeframe}")
        if not _has_candles(exchange=exchange, symbol=symbol, timeframe=detail, start=start, end=end):
            raise _bad("detail_timeframe", f"no stored {detail} candles of {symbol} in this period")
    market_rules_for(exchange, symbol)
    if source != "strategy":
        uploaded_signals(params, symbol)
    config = data.get("config")
    if config is None:
        config = config_get(user=owner)
    if not isinstance(config, dict):
        raise _bad("config", "must be a JSON object")
    try:
        parse_engine_config(config)
    except ConfigError as exc:
        raise TaskInputError({f"config.{name}": reasons for name, reasons in exc.errors.items()}) from None
    params.update(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        start=start,
        end=end,
        detail_timeframe=detail,
        config=_jsonable(config),
        ml_filter=ml_backtest.ml_filter_params(
            data.get("ml_filter"), symbol=symbol, timeframe=timeframe, config=config
        ),
    )
    return params


def market_rules_for(exchange: str, symbol: str) -> MarketRules:
    """The exchange's rules for `symbol` as the engine holds them, else an operator's fallback, else the
    built-in Binance rules (what `manage.py backtest` uses without `--exchange-info`)."""
    rules = exchange_selectors.market_rule_resolve(
        exchange_name=exchange, raw=symbol
    ) or exchange_selectors.market_rules_fallback(exchange_name=exchange, raw=symbol)
    if rules is not None:
        return rules
    try:
        return load_market_rules(None, symbol)
    except BacktestError:
        raise _bad("symbol", f"no market rules for {symbol} on {exchange}") from None


def uploaded_signals(params: dict[str, Any], symbol: str) -> list[Signal]:
    """The alerts of an uploaded CSV; `TaskInputError` naming the field and row of the first bad one."""
    # Imported here: the parsers load pandas (for the strategies' signals), which web processes only need
    # once a CSV backtest is submitted.
    from .backtest.signals import signals_from_csv, signals_from_tradingview

    source = params["source"]
    parse = signals_from_csv if source == "signals_csv" else signals_from_tradingview
    try:
        return parse(params[source], symbol=symbol, field=source)
    except BacktestError as exc:
        raise TaskInputError(exc.errors) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # a numpy number
        return _jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable({item.name: getattr(value, item.name) for item in dataclasses.fields(value)})
    return value


def stored_candles(params: dict[str, Any], timeframe: str) -> list[CandleRow]:
    return candle_selectors.candles_range(
        exchange_name=params["exchange"],
        symbol=params["symbol"],
        timeframe=timeframe,
        start_ms=params.get("start"),
        end_ms=params.get("end"),
    )


def backtest_run(context: TaskContext) -> BacktestResult:
    """Load the candles and run the backtester; progress 0-5 % loading, 5-100 % the replay."""
    params = context.params
    candles = stored_candles(params, params["timeframe"])
    detail = stored_candles(params, params["detail_timeframe"]) if params.get("detail_timeframe") else None
    if not candles:
        raise TaskInputError({"start": ["the period's candles are gone"]})
    context.progress(5)
    return _replay(params=params, candles=candles, detail=detail, context=context)


def request_signals(params: dict[str, Any], candles: list[CandleRow]) -> list[Signal]:
    """The alerts of a stored request: its strategy's on `candles`, or its uploaded CSV's (also the
    optimizer's)."""
    if params["source"] != "strategy":
        return uploaded_signals(params, params["symbol"])
    # Imported here: strategies' signals need pandas, loaded only where a backtest runs.
    from .backtest.signals import strategy_signals

    strategy = params["strategy"]
    return strategy_signals(strategy["kind"], strategy["params"], candles, symbol=params["symbol"])


def _replay(
    *, params: dict[str, Any], candles: list[CandleRow], detail: list[CandleRow] | None, context: TaskContext
) -> BacktestResult:
    symbol = params["symbol"]
    signals = request_signals(params, candles)
    request = BacktestRequest(
        candles={symbol: candles},
        timeframe=params["timeframe"],
        signals=signals,
        config=params["config"],
        market_rules={symbol: market_rules_for(params["exchange"], symbol)},
        detail_candles={symbol: detail} if detail else None,
    )
    try:
        if params.get("ml_filter"):
            return ml_backtest.ml_filter_replay(request, params["ml_filter"], candles, progress=context)
        return run_backtest(request, context)
    except BacktestError as exc:
        raise TaskInputError(exc.errors) from None


def _thin(points: list[tuple[int, float, float]], limit: int = EQUITY_POINTS) -> list[tuple[int, float, float]]:
    """At most `limit` points of the equity curve for the chart: of each stretch, the point of lowest marked
    equity (drawdowns stay visible), and always the last point."""
    if len(points) <= limit:
        return points
    size = math.ceil(len(points) / limit)
    kept = [min(points[start : start + size], key=lambda point: point[2]) for start in range(0, len(points), size)]
    kept[-1] = points[-1]
    return kept


def backtest_store(context: TaskContext, outcome: BacktestResult) -> dict[str, Any]:
    """One `BacktestRun` in the transaction that marks the task SUCCESS; the task's result names it."""
    params = context.params
    run = BacktestRun.objects.create(
        owner_id=context.owner_id,
        task_id=context.task_id,
        symbol=params["symbol"],
        timeframe=params["timeframe"],
        exchange_name=params["exchange"],
        params=params,
        metrics=_jsonable(outcome.metrics),
        deals=_jsonable(outcome.deals),
        equity=_jsonable(_thin(outcome.equity)),
        fills=_jsonable(outcome.fills),
    )
    return {"backtest_id": str(run.pk), "metrics": run.metrics}


tasks_framework.task_kind_register(KIND, validate=backtest_validate, run=backtest_run, store=backtest_store)
