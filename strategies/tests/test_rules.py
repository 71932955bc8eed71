"""Strategy health and auto-disable (strategies/rules.py), and the correlation guard. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from strategies.rules import TradeResult, auto_disable_reason, correlation_block, health_compute

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CAPITAL = Decimal("200")


def _trades(pnls: list[str], *, start: datetime = NOW - timedelta(days=10)) -> list[TradeResult]:
    return [
        TradeResult(closed_at=start + timedelta(hours=i), pnl=Decimal(pnl), cost=Decimal("100"))
        for i, pnl in enumerate(pnls)
    ]


def test_health_numbers() -> None:
    health = health_compute(_trades(["2", "-1", "3", "-1"]), now=NOW)
    assert (health.trades, health.wins, health.losses) == (4, 2, 2)
    assert health.win_rate == Decimal("0.5000")
    assert health.average_pnl == Decimal("0.75")
    assert health.total_pnl == Decimal("3")
    assert health.consecutive_losses == 1
    assert health.recent_win_rate is None  # fewer than 20 trades
    assert health.sharpe is not None and health.sharpe > 0
    assert auto_disable_reason(health, capital=CAPITAL) is None


def test_daily_loss_over_ten_percent_of_capital_disables() -> None:
    today = NOW.replace(hour=1)
    yesterday = [TradeResult(today - timedelta(hours=3), Decimal("-50"), Decimal("100"))]
    assert auto_disable_reason(health_compute(yesterday, now=NOW), capital=CAPITAL) is None  # not today
    at_limit = [TradeResult(today, Decimal("-12"), Decimal("100")), TradeResult(today, Decimal("-8"), Decimal("100"))]
    assert auto_disable_reason(health_compute(at_limit, now=NOW), capital=CAPITAL) is None  # exactly 10 %
    over = [*at_limit, TradeResult(today, Decimal("-0.01"), Decimal("100"))]
    reason = auto_disable_reason(health_compute(over, now=NOW), capital=CAPITAL)
    assert reason is not None and reason.startswith("daily loss 20.01 is more than 10 %")


def test_more_than_ten_consecutive_losses_disables() -> None:
    ten = _trades(["5"] * 10 + ["-0.1"] * 10)
    assert health_compute(ten, now=NOW).consecutive_losses == 10
    assert auto_disable_reason(health_compute(ten, now=NOW), capital=CAPITAL) is None
    eleven = _trades(["5"] * 10 + ["-0.1"] * 11)
    reason = auto_disable_reason(health_compute(eleven, now=NOW), capital=CAPITAL)
    assert reason == "11 losing trades in a row (more than 10)"


def test_win_rate_below_thirty_percent_over_last_twenty_disables() -> None:
    # 6 wins of the last 20 = 30 %: stays; 5 of 20 = 25 %: disabled. Older trades do not count.
    six = _trades(["1"] * 30 + (["1", "-1", "-1"] * 6) + ["-1", "-1"])
    assert health_compute(six, now=NOW).recent_win_rate == Decimal("0.3000")
    assert auto_disable_reason(health_compute(six, now=NOW), capital=CAPITAL) is None
    five = _trades(["1"] * 30 + (["1", "-1", "-1", "-1"] * 5))
    reason = auto_disable_reason(health_compute(five, now=NOW), capital=CAPITAL)
    assert reason == "win rate 25 % over the last 20 trades (below 30 %)"
    assert auto_disable_reason(health_compute(_trades(["-1", "1"] * 5), now=NOW), capital=CAPITAL) is None


def test_correlation_guard() -> None:
    base = [100 + (i % 7) * 1.5 - (i % 3) for i in range(101)]
    twin = [price * 2 for price in base]
    other = [100 + ((i * 37) % 11) for i in range(101)]
    assert correlation_block(base, {"ETH/USDT": twin}, max_correlation=0.7) == (
        "returns correlate 1.00 with the open ETH/USDT group (max 0.7)"
    )
    assert correlation_block(base, {"XRP/USDT": other}, max_correlation=0.7) is None
    assert correlation_block(base[:10], {"ETH/USDT": twin}, max_correlation=0.7) is None  # too little data
