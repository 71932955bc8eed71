"""Performance metrics as pure functions of an equity curve and a list of deals (docs/backtests.md#metrics).

The backtester (`analytics.backtest`) and the live performance dashboard compute their numbers here, from
plain sequences: no ORM, no clock. Money totals (PnL, fees) are summed as `Decimal` by the caller; the
ratios here are floats, which changes no trade.

Conventions:
- an equity curve is `(times_ms, values)`: UTC epoch milliseconds in time order and the account's value
  at each time (marked to market for drawdowns);
- percentages are in percent (`12.5` is 12.5 %); a drawdown is a positive number (`20` is −20 %);
- Sharpe and Sortino are annualized from daily returns (the last value of each UTC day) with 365 days a
  year (crypto trades every day), no risk-free rate; Sortino's downside deviation is the root mean
  square of the negative daily returns over all days;
- `None` where a number is undefined (no deal, no loss, a flat curve), never NaN or infinity, so the
  result is valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365.0

type Numbers = Sequence[float] | np.ndarray


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _array(values: Numbers) -> np.ndarray:
    return np.asarray(values, dtype=float)


# ------------------------------------------------------------------------------------------ returns


def total_return_pct(initial: float, final: float) -> float:
    """(final / initial − 1) × 100."""
    if initial <= 0:
        raise ValueError("the initial equity must be positive")
    return (final / initial - 1.0) * 100.0


def cagr_pct(initial: float, final: float, days: float) -> float | None:
    """Compound annual growth rate over `days` (None for less than a day or a wiped-out account)."""
    if initial <= 0 or days < 1 or final <= 0:
        return None
    return ((final / initial) ** (DAYS_PER_YEAR / days) - 1.0) * 100.0


def daily_values(times_ms: Numbers, values: Numbers) -> np.ndarray:
    """The last value of each UTC day that has one (in time order)."""
    times = np.asarray(times_ms, dtype=np.int64)
    series = _array(values)
    if len(series) == 0:
        return series
    days = times // DAY_MS
    last_of_day = np.flatnonzero(np.diff(days, append=days[-1] + 1))
    return series[last_of_day]


def simple_returns(values: Numbers) -> np.ndarray:
    """r_i = v_i / v_(i−1) − 1."""
    series = _array(values)
    if len(series) < 2:
        return np.empty(0)
    return series[1:] / series[:-1] - 1.0


def sharpe(returns: Numbers, periods_per_year: float = DAYS_PER_YEAR) -> float | None:
    """mean / sample standard deviation × √periods (None without two returns or with no spread)."""
    r = _array(returns)
    if len(r) < 2:
        return None
    deviation = float(np.std(r, ddof=1))
    if deviation == 0:
        return None
    return _finite(float(np.mean(r)) / deviation * math.sqrt(periods_per_year))


def sortino(returns: Numbers, periods_per_year: float = DAYS_PER_YEAR) -> float | None:
    """mean / downside deviation × √periods; the downside deviation is √(mean of min(r, 0)²)."""
    r = _array(returns)
    if len(r) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0:
        return None
    return _finite(float(np.mean(r)) / downside * math.sqrt(periods_per_year))


def drawdowns_pct(values: Numbers) -> np.ndarray:
    """The drawdown at each point: how far below the highest value so far, in percent (≥ 0)."""
    series = _array(values)
    if len(series) == 0:
        return series
    peaks = np.maximum.accumulate(series)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(peaks > 0, (peaks - series) / peaks * 100.0, 0.0)
    return out


def max_drawdown_pct(values: Numbers) -> float:
    """The deepest drawdown of the curve, in percent (0 for a curve that never falls)."""
    dd = drawdowns_pct(values)
    return float(dd.max()) if len(dd) else 0.0


def calmar(cagr: float | None, max_drawdown: float) -> float | None:
    """CAGR / max drawdown (both in percent); None without a drawdown or a CAGR."""
    if cagr is None or max_drawdown <= 0:
        return None
    return cagr / max_drawdown


def exposure_pct(in_market: Sequence[bool] | np.ndarray) -> float:
    """Share of the bars during which something was held, in percent."""
    flags = np.asarray(in_market, dtype=bool)
    return float(flags.mean() * 100.0) if len(flags) else 0.0


# -------------------------------------------------------------------------------------------- deals


@dataclass(frozen=True, slots=True)
class DealStats:
    deals: int
    wins: int
    losses: int
    win_rate: float | None  # percent of deals with a positive PnL
    average_win: float | None
    average_loss: float | None  # negative
    expectancy: float | None  # mean PnL per deal
    profit_factor: float | None  # gross profit / gross loss; None without a loss
    best: float | None
    worst: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "deals": self.deals,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": self.win_rate,
            "average_win": self.average_win,
            "average_loss": self.average_loss,
            "expectancy": self.expectancy,
            "profit_factor": self.profit_factor,
            "best_deal": self.best,
            "worst_deal": self.worst,
        }


def deal_stats(pnls: Sequence[float | Decimal]) -> DealStats:
    """Win rate, average win and loss, expectancy, profit factor, best and worst of closed deals' PnL."""
    values = [float(p) for p in pnls]
    wins = [p for p in values if p > 0]
    losses = [p for p in values if p < 0]
    gross_loss = -sum(losses)
    return DealStats(
        deals=len(values),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(values) * 100.0 if values else None,
        average_win=sum(wins) / len(wins) if wins else None,
        average_loss=sum(losses) / len(losses) if losses else None,
        expectancy=sum(values) / len(values) if values else None,
        profit_factor=sum(wins) / gross_loss if gross_loss > 0 else None,
        best=max(values) if values else None,
        worst=min(values) if values else None,
    )


# ------------------------------------------------------------------------------------------ by month


def month_of(time_ms: int) -> str:
    """ "2025-03" for a time in March 2025 (UTC)."""
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).strftime("%Y-%m")


def monthly_breakdown(
    times_ms: Numbers, values: Numbers, deals: Sequence[tuple[int, float | Decimal]] = ()
) -> list[dict[str, Any]]:
    """One row per calendar month (UTC) of the curve: the month's return on the value at the end of the
    month before (the first month: on its first value), its change in money, and the deals closed in it
    (`deals` as (close time ms, PnL))."""
    times = np.asarray(times_ms, dtype=np.int64)
    series = _array(values)
    if len(series) == 0:
        return []
    labels = np.array([month_of(int(t)) for t in times[_day_starts(times)]])
    day_of = np.cumsum(np.r_[0, np.diff(times // DAY_MS) != 0])  # each point's day, numbered from 0
    point_months = labels[day_of]
    ends = np.flatnonzero(np.r_[point_months[1:] != point_months[:-1], True])  # last point of each month
    closed: dict[str, list[float]] = {}
    for closed_ms, pnl in deals:
        closed.setdefault(month_of(int(closed_ms)), []).append(float(pnl))
    rows: list[dict[str, Any]] = []
    previous = float(series[0])
    for end in ends:
        month = str(point_months[end])
        value = float(series[end])
        realized = closed.get(month, [])
        rows.append(
            {
                "month": month,
                "return_pct": (value / previous - 1.0) * 100.0 if previous > 0 else None,
                "pnl": value - previous,
                "deals": len(realized),
                "realized_pnl": sum(realized),
            }
        )
        previous = value
    return rows


def _day_starts(times: np.ndarray) -> np.ndarray:
    """The index of the first point of each UTC day."""
    return np.r_[0, np.flatnonzero(np.diff(times // DAY_MS)) + 1]
