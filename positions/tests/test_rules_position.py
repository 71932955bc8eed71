"""Position arithmetic from fills (positions.rules.position): no database, no Django settings."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from positions.rules.position import (
    FillData,
    base_quote,
    fee_net_quantity,
    net_bought,
    net_proceeds,
    position_totals,
)

D = Decimal
TOLERANCE = D("1e-12")


def buy(price: str, qty: str, fee: str = "0", asset: str = "") -> FillData:
    return FillData(side="buy", price=D(price), quantity=D(qty), fee=D(fee), fee_asset=asset)


def sell(price: str, qty: str, fee: str = "0", asset: str = "") -> FillData:
    return FillData(side="sell", price=D(price), quantity=D(qty), fee=D(fee), fee_asset=asset)


def totals(fills: list[FillData]):
    return position_totals(fills, base="BTC", quote="USDT")


def test_base_quote_splits_the_symbol() -> None:
    assert base_quote("BTC/USDT") == ("BTC", "USDT")
    assert base_quote("ETH/BTC") == ("ETH", "BTC")


def test_fee_net_quantity_takes_only_a_base_asset_fee() -> None:
    assert fee_net_quantity(buy("100", "1", "0.001", "BTC"), base="BTC") == D("0.999")
    assert fee_net_quantity(buy("100", "1", "0.1", "USDT"), base="BTC") == D("1")
    assert fee_net_quantity(buy("100", "1", "0.0005", "BNB"), base="BTC") == D("1")


def test_buys_with_a_base_fee_hold_less_and_cost_the_gross() -> None:
    result = totals([buy("65000", "0.001", "0.000001", "BTC"), buy("64000", "0.002", "0.000002", "BTC")])
    assert result.bought == D("0.003")
    assert result.held == D("0.002997")
    assert result.cost == D("65") + D("128")
    assert result.avg_entry == D("193") / D("0.002997")
    assert result.fees_quote == D("0.000001") * D("65000") + D("0.000002") * D("64000")
    assert result.sold == 0 and result.realized_pnl == 0 and result.proceeds == 0


def test_a_quote_fee_is_part_of_the_cost_and_comes_off_the_proceeds() -> None:
    result = totals([buy("100", "2", "0.2", "USDT"), sell("110", "2", "0.22", "USDT")])
    assert result.held == 0 and result.avg_entry is None
    assert result.proceeds == D("219.78")
    assert result.realized_pnl == D("219.78") - D("200.2")
    assert result.fees_quote == D("0.42")


def test_a_third_asset_fee_not_valued_changes_nothing_in_the_position() -> None:
    plain = totals([buy("100", "2"), sell("120", "1")])
    with_bnb = totals([buy("100", "2", "0.01", "BNB"), sell("120", "1", "0.01", "BNB")])
    assert with_bnb == plain


def bnb(fill: FillData, value: str) -> FillData:
    return dataclasses.replace(fill, fee_quote_value=D(value))


def test_a_valued_third_asset_fee_counts_as_a_quote_fee_of_its_value() -> None:
    # 0.001 BNB at 600 = 0.6 USDT on the buy; 0.001 BNB at 650 = 0.65 USDT on the sell.
    result = totals([bnb(buy("100", "2", "0.001", "BNB"), "0.6"), bnb(sell("120", "1", "0.001", "BNB"), "0.65")])
    assert result.held == D("1")  # BNB takes no base
    assert result.fees_quote == D("1.25")
    assert result.proceeds == D("120") - D("0.65")
    # the buy cost 200.6 for 2: the sold half carried 100.3 of it
    assert result.realized_pnl == D("119.35") - D("100.3")
    assert result.cost == D("100.3") and result.avg_entry == D("100.3")
    assert net_proceeds(bnb(sell("120", "1", "0.001", "BNB"), "0.65"), base="BTC", quote="USDT") == D("119.35")


def test_a_value_on_a_base_or_quote_fee_is_ignored() -> None:
    """Only a third-asset fee takes its stored value: a base or quote fee is counted as it always was."""
    fills = [buy("100", "2", "0.002", "BTC"), buy("90", "1", "0.09", "USDT"), sell("110", "1", "0.11", "USDT")]
    assert totals([bnb(fill, "5") for fill in fills]) == totals(fills)


def test_fill_data_keeps_its_positional_fields() -> None:
    """The backtester builds FillData(side, price, quantity, fee, fee_asset): the value is last, default None."""
    fill = FillData("buy", D("100"), D("1"), D("0.1"), "USDT")
    assert fill.fee_asset == "USDT" and fill.fee_quote_value is None


def test_a_partial_sell_realizes_against_the_average_and_keeps_it() -> None:
    result = totals([buy("100", "1"), buy("80", "1"), sell("120", "1")])
    assert result.avg_entry == D("90")
    assert result.realized_pnl == D("30")
    assert result.held == D("1") and result.cost == D("90")


def test_fills_are_taken_in_the_order_given() -> None:
    """A sell booked before the buy it closes realizes against nothing: order is the caller's to keep."""
    in_order = totals([buy("100", "1"), sell("110", "1")])
    reversed_ = totals([sell("110", "1"), buy("100", "1")])
    assert in_order.realized_pnl == D("10")
    assert reversed_.realized_pnl == D("110")


def test_net_bought_counts_only_buys_net_of_base_fees() -> None:
    fills = [buy("100", "1", "0.001", "BTC"), sell("110", "0.5"), buy("90", "0.5", "0.5", "USDT")]
    assert net_bought(fills, base="BTC") == D("1.499")
    assert net_bought([], base="BTC") == 0


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
quantities = st.decimals(min_value=D("0.00001"), max_value=D("10"), places=5)
fee_rates = st.sampled_from([D("0"), D("0.001"), D("0.00075")])
fee_assets = st.sampled_from(["BTC", "USDT", "BNB", ""])


@st.composite
def buy_fills(draw: st.DrawFn) -> FillData:
    price, qty, rate, asset = draw(prices), draw(quantities), draw(fee_rates), draw(fee_assets)
    fee = (qty * rate) if asset == "BTC" else (price * qty * rate).quantize(D("1e-8"))
    return FillData(side="buy", price=price, quantity=qty, fee=fee, fee_asset=asset)


@given(st.lists(buy_fills(), min_size=1, max_size=12))
def test_buys_hold_their_fee_net_quantity_at_their_cost(fills: list[FillData]) -> None:
    result = totals(fills)
    assert result.held == net_bought(fills, base="BTC")
    assert result.bought == sum((f.quantity for f in fills), D(0))
    quote_fees = sum((f.fee for f in fills if f.fee_asset == "USDT"), D(0))
    assert result.cost == sum((f.price * f.quantity for f in fills), D(0)) + quote_fees
    assert result.avg_entry is not None
    lowest, highest = min(f.price for f in fills), max(f.price for f in fills)
    # Base fees and quote fees only ever raise the average above the cheapest fill price.
    assert lowest <= result.avg_entry
    assert result.avg_entry <= highest * D("1.01")


@given(st.lists(buy_fills(), min_size=1, max_size=8), prices, fee_rates)
def test_selling_everything_realizes_proceeds_minus_what_was_paid(
    fills: list[FillData], exit_price: Decimal, rate: Decimal
) -> None:
    held = net_bought(fills, base="BTC")
    exit_fee = (exit_price * held * rate).quantize(D("1e-8"))
    result = totals([*fills, FillData(side="sell", price=exit_price, quantity=held, fee=exit_fee, fee_asset="USDT")])
    paid = sum((f.price * f.quantity + (f.fee if f.fee_asset == "USDT" else 0) for f in fills), D(0))
    assert result.held == 0 and result.avg_entry is None
    assert result.proceeds == exit_price * held - exit_fee
    assert abs(result.realized_pnl - (result.proceeds - paid)) < TOLERANCE * (1 + paid)
    assert abs(result.cost) < TOLERANCE * (1 + paid)


@given(st.lists(buy_fills(), min_size=1, max_size=8), prices, st.sampled_from(["buy", "sell"]))
def test_a_bnb_fee_valued_at_v_is_the_same_as_a_quote_fee_of_v(
    fills: list[FillData], value: Decimal, side: str
) -> None:
    held = net_bought(fills, base="BTC")
    last = FillData(side=side, price=D("100"), quantity=held if side == "sell" else D("1"))
    in_bnb = dataclasses.replace(last, fee=D("0.001"), fee_asset="BNB", fee_quote_value=value)
    in_quote = dataclasses.replace(last, fee=value, fee_asset="USDT")
    assert totals([*fills, in_bnb]) == totals([*fills, in_quote])


@given(st.lists(buy_fills(), min_size=1, max_size=6), st.integers(min_value=1, max_value=99), prices)
def test_a_partial_sell_keeps_the_average_entry(fills: list[FillData], percent: int, exit_price: Decimal) -> None:
    before = totals(fills)
    assert before.avg_entry is not None
    quantity = (before.held * percent / 100).quantize(D("1e-8"), rounding="ROUND_DOWN")
    if quantity <= 0:
        return
    after = totals([*fills, FillData(side="sell", price=exit_price, quantity=quantity)])
    assert after.held == before.held - quantity
    assert after.avg_entry is not None
    assert abs(after.avg_entry - before.avg_entry) < TOLERANCE * before.avg_entry
    assert abs(after.realized_pnl - (exit_price - before.avg_entry) * quantity) < TOLERANCE * (1 + before.cost)
