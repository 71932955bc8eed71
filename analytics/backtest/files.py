"""Reading a backtest's files and writing its CSVs (the `backtest` command; the API reads uploads the same way).

Candle files in the `shared/data/candles` format or TradingView's chart export, gzip or not
(`exchanges.candles.rules.candles_parse`); market rules from a Binance `exchangeInfo` JSON (default: the
simulator's built-in set, which the paper and simulator exchanges serve).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from exchanges.candles.rules import CandleFileError, CandleRow, candles_parse
from exchanges.precision import MarketRules, MarketRulesError, market_rules_from_exchange_info

from .types import BacktestError, BacktestResult, Deal, FillRow

BUILT_IN_EXCHANGE_INFO = Path(__file__).resolve().parents[2] / "exchanges" / "simulator" / "default_exchange_info.json"


def _open_text(path: Path) -> TextIO:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_text(path: str | Path, *, field: str) -> str:
    try:
        with _open_text(Path(path)) as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise BacktestError({field: [f"cannot read {path}: {exc}"]}) from None


def read_candles(path: str | Path, *, timeframe: str, field: str = "candles") -> tuple[CandleRow, ...]:
    """A candle file's rows (quarantined candles are refused: a backtest never trades on them)."""
    try:
        with _open_text(Path(path)) as handle:
            parsed = candles_parse(handle, timeframe=timeframe)
    except OSError as exc:
        raise BacktestError({field: [f"cannot read {path}: {exc}"]}) from None
    except CandleFileError as exc:
        raise BacktestError({field: [str(exc)]}) from None
    except ValueError as exc:  # an unknown timeframe
        raise BacktestError({"timeframe": [str(exc)]}) from None
    if parsed.report.flagged:
        flag = parsed.report.flagged[0]
        count = len(parsed.report.flagged)
        raise BacktestError({field: [f"{count} candle(s) fail the checks, first at {flag.open_ms}: {flag.detail}"]})
    if not parsed.rows:
        raise BacktestError({field: ["no candles in the file"]})
    return parsed.rows


def load_market_rules(path: str | Path | None, symbol: str, *, field: str = "exchange_info") -> MarketRules:
    source = Path(path) if path else BUILT_IN_EXCHANGE_INFO
    try:
        data: Any = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BacktestError({field: [f"cannot read {source}: {exc}"]}) from None
    if not isinstance(data, dict):
        raise BacktestError({field: ["expected a Binance exchangeInfo object"]})
    try:
        rules = market_rules_from_exchange_info(data, symbol)
    except MarketRulesError as exc:
        raise BacktestError({field: [str(exc)]}) from None
    if rules is None:
        raise BacktestError({"symbol": [f"unknown symbol {symbol!r}: not in {source.name}"]})
    return rules


def _write(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_fills(path: str | Path, result: BacktestResult) -> None:
    """`time_ms,side,price,quantity,fee,fee_asset,kind`, one row per fill, in order."""
    _write(path, FillRow.CSV_HEADER, (fill.csv_row() for fill in result.fills))


def write_trades(path: str | Path, result: BacktestResult) -> None:
    """One row per deal (`Deal.CSV_HEADER`)."""
    _write(path, Deal.CSV_HEADER, (deal.csv_row() for deal in result.deals))


def write_equity(path: str | Path, result: BacktestResult) -> None:
    """`time_ms,realized_equity,marked_equity`, one row per candle at its close."""
    rows = (
        (str(t), f"{r:.8f}", f"{m:.8f}")
        for t, r, m in zip(
            result.equity_times.tolist(), result.equity_realized.tolist(), result.equity_marked.tolist(), strict=True
        )
    )
    _write(path, ("time_ms", "realized_equity", "marked_equity"), rows)
