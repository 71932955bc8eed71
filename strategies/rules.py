"""Strategy health and the guards on its signals, as pure functions (docs/strategies.md#health): no ORM,
no clock (the time is an argument). The live tick and the backtester call the same ones.

Auto-disable on any of three conditions: the day's realized loss above 10 % of the instance's capital,
more than 10 losing trades in a row, or a win rate below 30 % over the last 20 trades (only once there
are 20). Re-enabling is manual; open positions finish under the engine's rules.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final


@dataclass(frozen=True, slots=True)
class TradeResult:
    """One closed trade (a position group the instance opened): when it closed, its realized PnL and
    what it cost."""

    closed_at: datetime
    pnl: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class HealthLimits:
    daily_loss_fraction: Decimal = Decimal("0.10")
    max_consecutive_losses: int = 10
    min_win_rate: Decimal = Decimal("0.30")
    win_rate_window: int = 20


DEFAULT_LIMITS: Final = HealthLimits()


@dataclass(frozen=True, slots=True)
class Health:
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None  # over every trade
    recent_win_rate: Decimal | None  # over the last `win_rate_window`, once there are that many
    average_pnl: Decimal | None
    total_pnl: Decimal
    sharpe: Decimal | None  # mean / deviation of per-trade returns (pnl / cost), not annualised
    consecutive_losses: int
    daily_pnl: Decimal  # realized since 00:00 UTC

    def as_dict(self) -> dict[str, str | int | None]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "trades": self.trades,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": text(self.win_rate),
            "recent_win_rate": text(self.recent_win_rate),
            "average_pnl": text(self.average_pnl),
            "total_pnl": str(self.total_pnl),
            "sharpe": text(self.sharpe),
            "consecutive_losses": self.consecutive_losses,
            "daily_pnl": str(self.daily_pnl),
        }


def _rate(wins: int, total: int) -> Decimal:
    return (Decimal(wins) / Decimal(total)).quantize(Decimal("0.0001"))


def health_compute(trades: Sequence[TradeResult], *, now: datetime, limits: HealthLimits = DEFAULT_LIMITS) -> Health:
    """The instance's numbers from its closed trades (any order)."""
    ordered = sorted(trades, key=lambda trade: trade.closed_at)
    wins = sum(1 for trade in ordered if trade.pnl > 0)
    total = sum((trade.pnl for trade in ordered), Decimal(0))
    streak = 0
    for trade in reversed(ordered):
        if trade.pnl >= 0:
            break
        streak += 1
    recent = ordered[-limits.win_rate_window :]
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    daily = sum((trade.pnl for trade in ordered if trade.closed_at >= day_start), Decimal(0))
    returns = [float(trade.pnl / trade.cost) for trade in ordered if trade.cost > 0]
    sharpe = None
    if len(returns) >= 2:
        deviation = statistics.stdev(returns)
        if deviation > 0 and math.isfinite(deviation):
            sharpe = Decimal(str(round(statistics.fmean(returns) / deviation, 4)))
    return Health(
        trades=len(ordered),
        wins=wins,
        losses=sum(1 for trade in ordered if trade.pnl < 0),
        win_rate=_rate(wins, len(ordered)) if ordered else None,
        recent_win_rate=(
            _rate(sum(1 for trade in recent if trade.pnl > 0), len(recent))
            if len(recent) >= limits.win_rate_window
            else None
        ),
        average_pnl=(total / len(ordered)).quantize(Decimal("0.00000001")) if ordered else None,
        total_pnl=total,
        sharpe=sharpe,
        consecutive_losses=streak,
        daily_pnl=daily,
    )


def auto_disable_reason(health: Health, *, capital: Decimal, limits: HealthLimits = DEFAULT_LIMITS) -> str | None:
    """Why the instance must stop now, or None."""
    if capital > 0 and health.daily_pnl < -capital * limits.daily_loss_fraction:
        return (
            f"daily loss {-health.daily_pnl} is more than {limits.daily_loss_fraction * 100:.0f} % "
            f"of its capital {capital}"
        )
    if health.consecutive_losses > limits.max_consecutive_losses:
        return f"{health.consecutive_losses} losing trades in a row (more than {limits.max_consecutive_losses})"
    if health.recent_win_rate is not None and health.recent_win_rate < limits.min_win_rate:
        return (
            f"win rate {health.recent_win_rate * 100:.0f} % over the last {limits.win_rate_window} trades "
            f"(below {limits.min_win_rate * 100:.0f} %)"
        )
    return None


def returns_of(closes: Sequence[float]) -> list[float]:
    """Close-to-close simple returns (a statistic: floats)."""
    return [after / before - 1 for before, after in zip(closes, closes[1:], strict=False) if before]


def correlation_block(
    candidate: Sequence[float], open_groups: Mapping[str, Sequence[float]], *, max_correlation: float, window: int = 100
) -> str | None:
    """The correlation guard (docs/strategies.md#correlation): why a new group on `candidate` (its last
    closes) must not open next to the open groups' markets (their last closes, by symbol), or None.
    Returns over the last `window` candles; a pair with fewer than 20 common returns is not judged."""
    mine = returns_of(candidate[-(window + 1) :])
    for symbol, closes in open_groups.items():
        theirs = returns_of(closes[-(window + 1) :])
        n = min(len(mine), len(theirs))
        if n < 20:
            continue
        try:
            value = statistics.correlation(mine[-n:], theirs[-n:])
        except statistics.StatisticsError:  # a constant series correlates with nothing
            continue
        if value > max_correlation:
            return f"returns correlate {value:.2f} with the open {symbol} group (max {max_correlation})"
    return None
