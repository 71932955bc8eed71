"""The backtest's alert streams (docs/backtests.md#signals): a built-in strategy, a signals CSV, or
TradingView's strategy-tester "List of trades" export. Each becomes `Signal`s; a bad file raises
`BacktestError` naming the field or the row.

- A strategy's signals come from the same `signals()` the live tick calls (`strategies.library`): an
  entry or exit flag on a candle is an alert at that candle's close, at its close price.
- A signals CSV has the header `timestamp,action,price` (`price` optional, as a column or per row):
  `timestamp` in ISO-8601 (UTC when no offset is given) or epoch milliseconds, `action` `entry` or `exit`.
- TradingView's "List of trades" (Strategy Tester → List of trades → Export): one row per entry and per
  exit, with the columns `Trade #`, `Type` (`Entry long` / `Exit long`, any case), `Date/Time` (or
  `Date and time`) and the price column named after the currency (`Price USDT`); the others (`Signal`,
  `Contracts`, `Profit USDT`, ...) are read past. Rows come newest first in TradingView's export and are
  put in time order; spot trades only long, so a short trade is refused with its row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from exchanges.candles.rules import CandleRow
from strategies.library import COLUMNS, strategy_for
from strategies.params import StrategyParamError

from .types import ACTIONS, ENTRY, EXIT, BacktestError, CandleSeries, Signal

MAX_ROWS = 1_000_000


def strategy_signals(
    kind: str, params: Mapping[str, Any] | None, candles: CandleSeries | Sequence[CandleRow], *, symbol: str
) -> list[Signal]:
    """The alerts strategy `kind` raises on `candles`, one per flagged candle, at its close."""
    try:
        strategy = strategy_for(kind, params)
    except StrategyParamError as exc:
        errors = exc.fields or {"strategy": [str(exc)]}
        raise BacktestError({k if k == "strategy" else f"params.{k}": v for k, v in errors.items()}) from None
    series = candles if isinstance(candles, CandleSeries) else CandleSeries.from_rows(candles)
    frame = pd.DataFrame(
        {"open": series.open, "high": series.high, "low": series.low, "close": series.close, "volume": series.volume},
        index=pd.Index(series.open_ms, name="open_ms"),
        columns=COLUMNS,
    )
    flags = strategy.signals(frame)
    entries = flags["entry"].to_numpy(dtype=bool)
    exits = flags["exit"].to_numpy(dtype=bool)
    out: list[Signal] = []
    for index in np.flatnonzero(entries | exits):
        time_ms = int(series.open_ms[index])
        if exits[index]:
            out.append(Signal(time_ms, symbol, EXIT, None, f"{kind} exit"))
        if entries[index]:
            out.append(Signal(time_ms, symbol, ENTRY, None, f"{kind} entry"))
    return out


def _time_ms(text: str) -> int:
    raw = text.strip()
    if raw.isdigit():
        return int(raw)
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _price(text: str) -> Decimal | None:
    raw = text.strip().replace(",", "")
    if not raw:
        return None
    value = Decimal(raw)
    if not value.is_finite() or value <= 0:
        raise InvalidOperation
    return value


def _rows(text: str, field: str) -> tuple[list[str], Iterable[tuple[int, list[str]]]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise BacktestError({field: ["the file is empty"]})
    rows = ((number, record) for number, record in enumerate(reader, start=2) if any(cell.strip() for cell in record))
    return [name.strip() for name in header], rows


def signals_from_csv(text: str, *, symbol: str, field: str = "signals") -> list[Signal]:
    """Alerts from a `timestamp,action,price` CSV (see the module's docstring)."""
    header, rows = _rows(text, field)
    names = [name.lower() for name in header]
    if names[:2] != ["timestamp", "action"] or (len(names) > 2 and names[2] != "price") or len(names) > 3:
        expected = "expected 'timestamp,action,price' (price optional)"
        raise BacktestError({field: [f"row 1: unexpected columns {','.join(header)!r}; {expected}"]})
    signals: list[Signal] = []
    for number, record in rows:
        if len(signals) >= MAX_ROWS:
            raise BacktestError({field: [f"more than {MAX_ROWS} rows"]})
        where = f"row {number}"
        if len(record) < 2:
            raise BacktestError({field: [f"{where}: expected timestamp and action"]})
        try:
            moment = _time_ms(record[0])
        except ValueError:
            raise BacktestError({field: [f"{where}, field 'timestamp': not a time: {record[0][:40]!r}"]}) from None
        action = record[1].strip().lower()
        if action not in ACTIONS:
            raise BacktestError({field: [f"{where}, field 'action': {record[1][:20]!r}; expected entry or exit"]})
        price = None
        if len(record) > 2:
            try:
                price = _price(record[2])
            except (InvalidOperation, ValueError):
                reason = f"{where}, field 'price': not a positive number: {record[2][:40]!r}"
                raise BacktestError({field: [reason]}) from None
        signals.append(Signal(moment, symbol, action, price, f"{field} {where}"))
    if not signals:
        raise BacktestError({field: ["no signal rows"]})
    return sorted(signals, key=lambda s: s.time_ms)


TV_TIME_COLUMNS = ("date/time", "date and time", "date & time")


def signals_from_tradingview(text: str, *, symbol: str, field: str = "tv_trades") -> list[Signal]:
    """Alerts from TradingView's "List of trades" export (see the module's docstring)."""
    header, rows = _rows(text, field)
    names = [name.lower() for name in header]
    missing = [name for name in ("trade #", "type") if name not in names]
    time_column = next((names.index(n) for n in TV_TIME_COLUMNS if n in names), None)
    price_column = next((i for i, n in enumerate(names) if n.startswith("price")), None)
    if time_column is None:
        missing.append("Date/Time")
    if price_column is None:
        missing.append("Price <currency>")
    if missing:
        raise BacktestError(
            {field: [f"row 1: missing column(s) {', '.join(missing)}; expected TradingView's List of trades export"]}
        )
    assert time_column is not None and price_column is not None
    trade_column, type_column = names.index("trade #"), names.index("type")
    keyed: list[tuple[int, int, int, Signal]] = []
    for number, record in rows:
        where = f"row {number}"
        if len(record) < len(names):
            raise BacktestError({field: [f"{where}: expected {len(names)} fields, found {len(record)}"]})
        kind = " ".join(record[type_column].lower().split())
        if kind in ("entry long", "exit long"):
            action = ENTRY if kind.startswith("entry") else EXIT
        elif kind.endswith("short"):
            raise BacktestError({field: [f"{where}, field 'Type': {record[type_column]!r}: spot trades long only"]})
        else:
            raise BacktestError(
                {field: [f"{where}, field 'Type': {record[type_column][:20]!r}; expected Entry long or Exit long"]}
            )
        try:
            trade = int(record[trade_column].strip())
        except ValueError:
            raise BacktestError({field: [f"{where}, field 'Trade #': not a number"]}) from None
        try:
            moment = _time_ms(record[time_column])
        except ValueError:
            raise BacktestError(
                {field: [f"{where}, field '{header[time_column]}': not a time: {record[time_column][:40]!r}"]}
            ) from None
        try:
            price = _price(record[price_column])
        except (InvalidOperation, ValueError):
            reason = f"{where}, field '{header[price_column]}': not a positive number: {record[price_column][:40]!r}"
            raise BacktestError({field: [reason]}) from None
        signal = Signal(moment, symbol, action, price, f"{field} {where}")
        keyed.append((moment, trade, 0 if action == ENTRY else 1, signal))
    if not keyed:
        raise BacktestError({field: ["no trade rows"]})
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]
