"""The fill model shared by the simulator's replay and the backtester (docs/backtests.md#fill-model)."""

from __future__ import annotations

from decimal import Decimal

from exchanges.fillmodel import BUY, SELL, candle_walk, commission, fill_fee, marketable, resting_fills, walk_points

D = Decimal


def test_walk_visits_the_nearer_extreme_by_the_candle_colour():
    # A green candle (close >= open) goes down first, a red one up first.
    assert walk_points(D(100), D(110), D(95), D(105)) == (D(100), D(95), D(110), D(105))
    assert walk_points(D(100), D(110), D(95), D(97)) == (D(100), D(110), D(95), D(97))
    assert walk_points(D(100), D(100), D(100), D(100)) == (D(100),) * 4  # a doji counts as green
    assert candle_walk(1.0, 3.0, 0.5, 2.0, bullish=True) == (1.0, 0.5, 3.0, 2.0)


def test_resting_orders_fill_when_reached_and_marketable_ones_at_once():
    assert resting_fills(BUY, D(100), D(100)) and resting_fills(BUY, D(100), D(99))
    assert not resting_fills(BUY, D(100), D("100.01"))
    assert resting_fills(SELL, D(100), D(100)) and not resting_fills(SELL, D(100), D("99.99"))
    assert marketable(BUY, D(101), D(100)) and not marketable(BUY, D(99), D(100))
    assert not marketable(BUY, D(101), None)


def test_fees_in_the_asset_received_rounded_half_up_to_eight_places():
    # buy 0.00123 BTC: 0.1 % of the base received = 0.00000123 BTC
    assert fill_fee(BUY, price=D(65000), quantity=D("0.00123")) == D("0.00000123")
    # sell 0.00123 BTC at 65000: 79.95 USDT received, fee 0.07995 USDT
    assert fill_fee(SELL, price=D(65000), quantity=D("0.00123")) == D("0.07995000")
    assert commission(D("0.000000005")) == D("0.00000001")
