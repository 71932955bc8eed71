"""From a finished run to its result: the equity curve per candle and the metrics (`analytics.metrics`).

The book changes only at the candles where something filled; between them the cash and the base held
stay as they were, so the curve is those snapshots carried forward and valued at each candle's close
with numpy (docs/backtests.md#results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from analytics import metrics

from .types import BacktestResult

if TYPE_CHECKING:  # the driver calls this module; typing only
    from .engine import Backtest


def _carried(t_index: np.ndarray, values: np.ndarray, size: int, initial: float) -> np.ndarray:
    """`values[k]` from candle `t_index[k]` on, `initial` before the first."""
    out = np.full(size, initial, dtype=float)
    if len(t_index) == 0:
        return out
    which = np.searchsorted(t_index, np.arange(size), side="right") - 1
    known = which >= 0
    out[known] = values[which[known]]
    return out


def _filled_forward(values: np.ndarray) -> np.ndarray:
    """NaN (no candle of that symbol at that time) replaced by the last price before it (0 before any)."""
    mask = np.isnan(values)
    if not mask.any():
        return values
    index = np.where(~mask, np.arange(len(values)), 0)
    np.maximum.accumulate(index, out=index)
    out = values[index]
    return np.where(np.isnan(out), 0.0, out)


def build_result(run: Backtest, seconds: float) -> BacktestResult:
    size = run.T
    initial = float(run.initial)
    snaps = run.snapshots
    t_index = np.array([s[0] for s in snaps], dtype=np.int64)
    cash = _carried(t_index, np.array([float(s[1]) for s in snaps]), size, initial)
    realized = _carried(t_index, np.array([float(s[2]) for s in snaps]), size, 0.0)
    locked = _carried(t_index, np.array([float(s[4]) for s in snaps]), size, 0.0)
    marked = cash.copy()
    in_market = np.zeros(size, dtype=bool)
    for position, symbol in enumerate(run.symbols):
        held = _carried(t_index, np.array([float(s[3][position]) for s in snaps]), size, 0.0)
        marked += held * _filled_forward(run.close_f[symbol])
        in_market |= held > 0
    # Held below a step (dust left by fee-net take-profits) is not a position.
    in_market &= _open_mask(run, size)
    times = run.times + run.interval
    # A group closed before anything filled (an exit signal over resting legs) is not a deal that won or lost.
    closed = [d for d in run.deals if d.closed_ms is not None and d.invested > 0]
    closes = [(d.closed_ms, d.realized_pnl) for d in closed if d.closed_ms is not None]
    stats = metrics.deal_stats([d.realized_pnl for d in closed])
    final = float(marked[-1]) if size else initial
    days = (int(times[-1]) - int(run.times[0])) / metrics.DAY_MS if size else 0.0
    cagr = metrics.cagr_pct(initial, final, days)
    max_dd = metrics.max_drawdown_pct(marked)
    daily = metrics.simple_returns(metrics.daily_values(times, marked))
    result_metrics: dict[str, Any] = {
        "candles": int(size),
        "seconds": round(seconds, 6),
        "deals": len(closed),
        "trades": len(run.fill_rows),
        "total_return_pct": metrics.total_return_pct(initial, final),
        "cagr_pct": cagr,
        "win_rate": stats.win_rate,
        "max_drawdown_pct": max_dd,
        "max_floating_drawdown_pct": max((d.max_floating_drawdown_pct for d in run.deals), default=0.0),
        "max_safety_orders_used": max((d.safety_orders_used for d in run.deals), default=0),
        "sharpe": metrics.sharpe(daily),
        "sortino": metrics.sortino(daily),
        "calmar": metrics.calmar(cagr, max_dd),
        "profit_factor": stats.profit_factor,
        "realized_pnl": float(run.realized),
        "fees": float(run.fees),
        "exposure_pct": metrics.exposure_pct(in_market),
        "average_win": stats.average_win,
        "average_loss": stats.average_loss,
        "expectancy": stats.expectancy,
        "best_deal": stats.best,
        "worst_deal": stats.worst,
        "open_deals": sum(1 for d in run.deals if d.closed_ms is None),
        "capital_locked_max": float(locked.max()) if size else 0.0,
        "capital_locked_avg": float(locked.mean()) if size else 0.0,
        "initial_equity": initial,
        "final_equity": final,
        "monthly": metrics.monthly_breakdown(times, marked, closes),
    }
    return BacktestResult(
        metrics=result_metrics,
        deals=sorted(run.deals, key=lambda d: d.id),
        fills=run.fill_rows,
        equity_times=times,
        equity_realized=initial + realized,
        equity_marked=marked,
        signal_outcomes=dict(run.outcomes),
    )


def _open_mask(run: Backtest, size: int) -> np.ndarray:
    """Candles during which some deal was open (from its open to its close, or to the end)."""
    mask = np.zeros(size + 1, dtype=np.int64)
    closes = run.times + run.interval  # once, not per deal (a year of 5m is 120k candles)
    opened = np.array([d.opened_ms for d in run.deals], dtype=np.int64)
    closed = np.array([-1 if d.closed_ms is None else d.closed_ms for d in run.deals], dtype=np.int64)
    starts = np.minimum(np.searchsorted(closes, opened), size)
    ends = np.where(closed < 0, size, np.minimum(np.searchsorted(closes, closed) + 1, size))
    np.add.at(mask, starts, 1)
    np.add.at(mask, ends, -1)
    return np.cumsum(mask[:size]) > 0
