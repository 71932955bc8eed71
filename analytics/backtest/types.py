"""What a backtest reads and what it returns (docs/backtests.md): plain data, no Django."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from exchanges.candles.rules import CandleRow
from exchanges.fillmodel import DEFAULT_COMMISSION_RATE
from exchanges.precision import MarketRules, decimal_to_str

# The metrics `manage.py backtest` prints (CONTRACT §4) and the optimizer keeps for every candidate.
CONTRACT_METRICS = (
    "candles",
    "seconds",
    "deals",
    "trades",
    "total_return_pct",
    "cagr_pct",
    "win_rate",
    "max_drawdown_pct",
    "max_floating_drawdown_pct",
    "max_safety_orders_used",
    "sharpe",
    "sortino",
    "calmar",
    "profit_factor",
    "realized_pnl",
    "fees",
    "exposure_pct",
)
ENTRY = "entry"
EXIT = "exit"
ACTIONS = (ENTRY, EXIT)


def _money(value: Decimal) -> str:
    """A quote amount for a CSV: 8 decimals, no exponent."""
    return decimal_to_str(value.quantize(Decimal("1e-8")))


class BacktestError(ValueError):
    """Bad input: `errors` maps the field (or `signals.row 12`, `candles.BTC/USDT`) to its reasons.

    The API turns it into a 400 naming the field; the command prints it."""

    def __init__(self, errors: Mapping[str, Sequence[str]]):
        self.errors = {key: list(reasons) for key, reasons in errors.items()}
        super().__init__("; ".join(f"{key}: {', '.join(reasons)}" for key, reasons in self.errors.items()))


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """One symbol's candles of one timeframe, in time order: float columns for scanning (numpy) and the
    Decimal rows for every price that trades (`rows[i]` is candle i)."""

    open_ms: np.ndarray  # int64
    open: np.ndarray  # float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    rows: Sequence[CandleRow]

    @classmethod
    def from_rows(cls, rows: Sequence[CandleRow]) -> CandleSeries:
        array = np.array([r[1:] for r in rows], dtype=float).reshape(-1, 5)
        return cls(
            open_ms=np.fromiter((r.open_ms for r in rows), dtype=np.int64, count=len(rows)),
            open=array[:, 0].copy(),
            high=array[:, 1].copy(),
            low=array[:, 2].copy(),
            close=array[:, 3].copy(),
            volume=array[:, 4].copy(),
            rows=rows,
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled with the rows' prices as one text (an optimizer sends the series to each pool process).

        A hundred thousand rows of Decimals pickle one object at a time (0.9 s for a year of 5m, 0.45 s to
        load); as text, where `str` keeps each Decimal's digits and exponent exactly, it is a few times
        less both ways."""
        text = " ".join(str(value) for row in self.rows for value in row[1:])
        columns = (self.open_ms, self.open, self.high, self.low, self.close, self.volume)
        return _series_from_text, (*columns, text)


def _series_from_text(
    open_ms: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    text: str,
) -> CandleSeries:
    """`CandleSeries.__reduce__`'s way back: each row's Decimals from the text, in row order.

    The cyclic garbage collector is paused meanwhile: building a hundred thousand tuples would otherwise
    start a collection every 700 of them, each walking what was built so far (half the time)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        values = iter(map(Decimal, text.split(" ")) if text else ())
        rows = list(map(CandleRow._make, zip(open_ms.tolist(), values, values, values, values, values, strict=True)))
    finally:
        if paused:
            gc.enable()
    return CandleSeries(open_ms, open_, high, low, close, volume, rows)


@dataclass(frozen=True, slots=True)
class Signal:
    """An alert of the replayed stream: `entry` or `exit` for `symbol` at `time_ms` (it acts at the close
    of the candle holding that time), with its price (None: that candle's close). `source` names where
    it came from (a CSV row, a TradingView trade) for error messages."""

    time_ms: int
    symbol: str
    action: str
    price: Decimal | None = None
    source: str = ""


type EntryFilter = Callable[[int, str], bool]


@dataclass(frozen=True)
class BacktestRequest:
    """One backtest: candles per symbol (all of `timeframe`), the alerts, the engine config as a user
    would store it (validated with its defaults by `positions.config.parse_engine_config`), the market
    rules per symbol, the fee rate charged on each fill. Optional: detail candles per symbol (a lower
    timeframe walked instead of each candle's four points), an entry filter `(time_ms, symbol) -> bool`
    asked before each entry (False drops it), the starting equity (default: every pyramid's capital of
    one group per symbol, up to `max_open_groups`)."""

    candles: Mapping[str, CandleSeries | Sequence[CandleRow]]
    timeframe: str
    signals: Sequence[Signal]
    config: Mapping[str, Any] = field(default_factory=dict)
    market_rules: Mapping[str, MarketRules] = field(default_factory=dict)
    fee_rate: Decimal = DEFAULT_COMMISSION_RATE
    detail_candles: Mapping[str, CandleSeries | Sequence[CandleRow]] | None = None
    entry_filter: EntryFilter | None = None
    initial_capital: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FillRow:
    """One execution, as `--fills-out` writes it (plus the symbol and the deal it belongs to)."""

    time_ms: int
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    kind: str  # entry, dca, tp, exit, stop, risk
    symbol: str = ""
    deal: int = 0

    CSV_HEADER = ("time_ms", "side", "price", "quantity", "fee", "fee_asset", "kind")

    def csv_row(self) -> tuple[str, ...]:
        return (
            str(self.time_ms),
            self.side,
            str(self.price),
            str(self.quantity),
            str(self.fee),
            self.fee_asset,
            self.kind,
        )


@dataclass(frozen=True, slots=True)
class LegRecord:
    """An entry leg of a deal: where the grid put it and, when it filled, how."""

    pyramid: int
    level: int
    price: Decimal  # the leg's limit price (the grid's level)
    quantity: Decimal
    filled_at_ms: int | None
    fill_price: Decimal | None
    fee: Decimal


@dataclass(frozen=True, slots=True)
class Deal:
    """One position group from its first entry to its close (`closed_ms` None: still open at the end)."""

    id: int
    symbol: str
    opened_ms: int
    closed_ms: int | None
    close_reason: str  # the exit's purpose (tp_leg, tp_aggregate, exit_signal, stop_loss, ...) or "open"
    pyramids: int
    safety_orders_used: int  # the deepest level filled in any pyramid (0: only the entries)
    invested: Decimal  # the most quote the deal had in its position at once (fees included)
    realized_pnl: Decimal
    fees: Decimal  # valued in quote
    return_pct: float | None  # realized PnL / invested
    max_floating_drawdown_pct: float  # the worst unrealized loss at a candle's low, in % of the cost then
    legs: tuple[LegRecord, ...]

    CSV_HEADER = (
        "deal",
        "symbol",
        "opened_ms",
        "closed_ms",
        "close_reason",
        "pyramids",
        "safety_orders_used",
        "invested",
        "realized_pnl",
        "fees",
        "return_pct",
        "max_floating_drawdown_pct",
    )

    def csv_row(self) -> tuple[str, ...]:
        return (
            str(self.id),
            self.symbol,
            str(self.opened_ms),
            "" if self.closed_ms is None else str(self.closed_ms),
            self.close_reason,
            str(self.pyramids),
            str(self.safety_orders_used),
            _money(self.invested),
            _money(self.realized_pnl),
            _money(self.fees),
            "" if self.return_pct is None else f"{self.return_pct:.6f}",
            f"{self.max_floating_drawdown_pct:.6f}",
        )


@dataclass
class BacktestResult:
    """The metrics (CONTRACT's keys and more), every deal with its legs, every fill, the equity curve
    (one point per candle of the run: realized and marked to market) and what became of the signals."""

    metrics: dict[str, Any]
    deals: list[Deal]
    fills: list[FillRow]
    equity_times: np.ndarray
    equity_realized: np.ndarray
    equity_marked: np.ndarray
    signal_outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def equity(self) -> list[tuple[int, float, float]]:
        """(time_ms, realized equity, marked-to-market equity) per candle, at its close."""
        return list(
            zip(self.equity_times.tolist(), self.equity_realized.tolist(), self.equity_marked.tolist(), strict=True)
        )
