"""analytics.metrics against numbers worked out independently (by hand and with `statistics`)."""

from __future__ import annotations

import math
import statistics

import pytest

from analytics import metrics

DAY = 86_400_000
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


def test_a_known_equity_series():
    # One value per day: 100 → 110 → 99 → 121.
    times = [T0 + i * DAY for i in range(4)]
    equity = [100.0, 110.0, 99.0, 121.0]
    assert metrics.total_return_pct(100.0, 121.0) == pytest.approx(21.0)
    # Peak 110, trough 99: (110 − 99) / 110 = 10 %.
    assert metrics.max_drawdown_pct(equity) == pytest.approx(10.0)
    assert list(metrics.drawdowns_pct(equity)) == pytest.approx([0.0, 0.0, 10.0, 0.0])
    returns = metrics.simple_returns(metrics.daily_values(times, equity))
    assert list(returns) == pytest.approx([0.1, -0.1, 22 / 99])
    r = [0.1, -0.1, 22 / 99]
    expected_sharpe = statistics.mean(r) / statistics.stdev(r) * math.sqrt(365)
    assert metrics.sharpe(returns) == pytest.approx(expected_sharpe)
    downside = math.sqrt((0.1**2) / 3)  # only −10 % is below zero, averaged over the three days
    assert metrics.sortino(returns) == pytest.approx(statistics.mean(r) / downside * math.sqrt(365))
    # 3 days from 100 to 121: (1.21)^(365/3) − 1
    cagr = metrics.cagr_pct(100.0, 121.0, 3)
    assert cagr == pytest.approx((1.21 ** (365 / 3) - 1) * 100)
    assert metrics.calmar(cagr, 10.0) == pytest.approx(cagr / 10.0)


def test_daily_values_take_the_last_value_of_each_day():
    times = [T0, T0 + 3_600_000, T0 + DAY, T0 + DAY + 60_000, T0 + 3 * DAY]
    assert list(metrics.daily_values(times, [1, 2, 3, 4, 5])) == [2, 4, 5]


def test_deal_stats():
    stats = metrics.deal_stats([10, -5, 20, -15, 0])
    assert (stats.deals, stats.wins, stats.losses) == (5, 2, 2)
    assert stats.win_rate == pytest.approx(40.0)
    assert stats.average_win == pytest.approx(15.0)
    assert stats.average_loss == pytest.approx(-10.0)
    assert stats.expectancy == pytest.approx(2.0)
    assert stats.profit_factor == pytest.approx(30 / 20)
    assert (stats.best, stats.worst) == (20.0, -15.0)
    empty = metrics.deal_stats([])
    assert empty.win_rate is None and empty.profit_factor is None


def test_undefined_numbers_are_none():
    assert metrics.sharpe([0.01, 0.01, 0.01]) is None  # no spread
    assert metrics.sortino([0.01, 0.02]) is None  # no losing day
    assert metrics.calmar(5.0, 0.0) is None
    assert metrics.cagr_pct(100.0, 120.0, 0.5) is None
    assert metrics.exposure_pct([True, False, False, True]) == pytest.approx(50.0)


def test_monthly_breakdown():
    jan31 = T0 + 30 * DAY
    feb1 = T0 + 31 * DAY
    feb28 = T0 + 58 * DAY
    times = [T0, jan31, feb1, feb28]
    equity = [100.0, 105.0, 104.0, 94.5]
    rows = metrics.monthly_breakdown(times, equity, deals=[(jan31, 5.0), (feb28, -3.0), (feb28, -7.5)])
    assert [r["month"] for r in rows] == ["2025-01", "2025-02"]
    assert rows[0]["return_pct"] == pytest.approx(5.0)
    assert rows[1]["return_pct"] == pytest.approx((94.5 / 105 - 1) * 100)
    assert rows[1]["pnl"] == pytest.approx(-10.5)
    assert (rows[1]["deals"], rows[1]["realized_pnl"]) == (2, pytest.approx(-10.5))
