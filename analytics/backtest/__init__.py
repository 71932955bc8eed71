"""The backtester: the live engine's pure rules replayed over candles (docs/backtests.md).

`run_backtest(request, progress=None) -> BacktestResult` is the entry point for the command, the API's
background task and the optimizer; `signals` builds the alert streams and `files` reads and writes files.
"""

from .engine import run_backtest
from .types import (
    CONTRACT_METRICS,
    BacktestError,
    BacktestRequest,
    BacktestResult,
    CandleSeries,
    Deal,
    FillRow,
    LegRecord,
    Signal,
)

__all__ = [
    "CONTRACT_METRICS",
    "BacktestError",
    "BacktestRequest",
    "BacktestResult",
    "CandleSeries",
    "Deal",
    "FillRow",
    "LegRecord",
    "Signal",
    "run_backtest",
]
