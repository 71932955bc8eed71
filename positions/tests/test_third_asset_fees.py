"""A fee charged in a third asset (BNB) is valued in the quote asset when its fill is booked, from the
exchange's BNB/USDT ticker, and counts in the group's cost, fees and realized PnL
(docs/engine.md#position-arithmetic). The simulator charges its own fees in base or quote, so the fills
here are the answers a Binance account paying with BNB gives, booked through `order_apply_state` against
the simulator's prices and the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.models import SystemLog
from exchanges.adapters.types import OrderFill, OrderState
from exchanges.client_ids import client_order_id_for
from positions.config import effective_config
from positions.models import DCAOrder, ExitOrder, Fill, PositionGroup, Pyramid
from positions.services.monitor import _CycleTrades
from positions.services.orders import order_apply_state

pytestmark = pytest.mark.django_db

D = Decimal


def _group(account) -> PositionGroup:
    account.adapter().refresh_market_rules()
    merged, _ = effective_config({"tp_mode": "aggregate"}, symbol="BTC/USDT", timeframe="1h")
    return PositionGroup.objects.create(
        user=account.config.user,
        exchange_config=account.config,
        symbol="BTC/USDT",
        exchange_symbol="BTCUSDT",
        timeframe="1h",
        status="live",
        config=merged,
        tp_mode="aggregate",
        pyramid_count=1,
    )


def _buy(group: PositionGroup, quantity: str) -> DCAOrder:
    pyramid = Pyramid.objects.create(group=group, index=0, entry_price=D("65000"), capital_usd=D("650"))
    intent = uuid.uuid4()
    return DCAOrder.objects.create(
        id=intent,
        group=group,
        exchange_config=group.exchange_config,
        pyramid=pyramid,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=D("65000"),
        quantity=D(quantity),
        client_order_id=client_order_id_for(intent),
        pyramid_level=0,
        dca_level=0,
        expected_price=D("65000"),
    )


def _sell(group: PositionGroup, quantity: str) -> ExitOrder:
    intent = uuid.uuid4()
    return ExitOrder.objects.create(
        id=intent,
        group=group,
        exchange_config=group.exchange_config,
        purpose="manual",
        symbol="BTC/USDT",
        side="sell",
        order_type="market",
        quantity=D(quantity),
        client_order_id=client_order_id_for(intent),
    )


def _filled(order, *fills: tuple[str, str, str, str, str]) -> OrderState:
    """The exchange's answer: the order filled by `fills` = (trade id, price, quantity, fee, fee asset)."""
    trades = tuple(
        OrderFill(
            trade_id=trade_id,
            price=D(price),
            quantity=D(quantity),
            fee=D(fee),
            fee_asset=asset,
            timestamp=datetime(2026, 11, 27, 9, 0, second, tzinfo=UTC),
        )
        for second, (trade_id, price, quantity, fee, asset) in enumerate(fills)
    )
    filled = sum((t.quantity for t in trades), D(0))
    return OrderState(
        exchange_order_id=f"x{order.pk.hex[:8]}",
        client_order_id=order.client_order_id,
        symbol="BTC/USDT",
        side=order.side,
        type=order.order_type,
        status="filled",
        price=order.price,
        quantity=order.quantity,
        filled_quantity=filled,
        average_price=sum((t.price * t.quantity for t in trades), D(0)) / filled,
        fee=sum((t.fee for t in trades), D(0)),
        fee_asset=trades[0].fee_asset,
        fills=trades,
        timestamp=None,
    )


def _fee_warnings(order) -> list[SystemLog]:
    return list(SystemLog.objects.filter(level="WARNING", message__contains=order.client_order_id))


def test_a_buy_and_a_sell_paying_bnb_count_the_fees_at_bnb_price_in_cost_fees_and_pnl(simulator_account, api_client):
    account = simulator_account
    adapter = account.adapter()
    group = _group(account)

    account.simulator.set_price("BNBUSDT", "600")
    buy = _buy(group, "0.01")
    order_apply_state(order_id=buy.pk, state=_filled(buy, ("b1", "65000", "0.01", "0.00075", "BNB")), adapter=adapter)
    [booked] = Fill.objects.filter(dca_order=buy)
    assert booked.fee_quote_value == D("0.45")  # 0.00075 BNB × 600
    group.refresh_from_db()
    assert group.filled_quantity == D("0.01")  # a BNB fee takes no BTC
    assert group.total_cost == D("650.45")  # 0.01 × 65000 + 0.45
    assert group.fees_quote == D("0.45")

    account.simulator.set_price("BNBUSDT", "610")  # the sell's fee is valued at the price when it fills
    sell = _sell(group, "0.01")
    order_apply_state(order_id=sell.pk, state=_filled(sell, ("s1", "66000", "0.01", "0.00076", "BNB")), adapter=adapter)
    [booked] = Fill.objects.filter(exit_order=sell)
    assert booked.fee_quote_value == D("0.4636")  # 0.00076 BNB × 610
    group.refresh_from_db()
    # proceeds 0.01 × 66000 − 0.4636 = 659.5364; realized = 659.5364 − 650.45
    assert group.realized_pnl == D("9.0864")
    assert group.fees_quote == D("0.9136")  # 0.45 + 0.4636
    assert group.filled_quantity == 0 and group.total_cost == 0
    assert _fee_warnings(buy) == [] and _fee_warnings(sell) == []

    # The same answer again books nothing and values nothing again (the stored value stays).
    account.simulator.set_price("BNBUSDT", "700")
    order_apply_state(order_id=sell.pk, state=_filled(sell, ("s1", "66000", "0.01", "0.00076", "BNB")), adapter=adapter)
    assert [f.fee_quote_value for f in Fill.objects.filter(exit_order=sell)] == [D("0.4636")]

    # The API shows each fill's value next to its fee, and the group's totals that include it.
    api_client.force_authenticate(account.config.user)
    detail = api_client.get(f"/api/positions/{group.pk}").json()
    shown = {(f["trade_id"], f["fee"], f["fee_asset"], f["fee_quote_value"]) for f in detail["fills"]}
    assert shown == {("b1", "0.00075", "BNB", "0.45"), ("s1", "0.00076", "BNB", "0.4636")}
    assert D(detail["fees_quote"]) == D("0.9136") and D(detail["realized_pnl"]) == D("9.0864")


def test_a_fee_with_no_price_is_booked_without_a_value_and_one_warning(simulator_account):
    account = simulator_account
    adapter = account.adapter()
    group = _group(account)
    buy = _buy(group, "0.02")
    # No ZZZ/USDT market: the fill is booked all the same, its fee left out of cost and fees.
    state = _filled(buy, ("z1", "65000", "0.01", "0.5", "ZZZ"), ("z2", "65000", "0.01", "0.5", "ZZZ"))
    order_apply_state(order_id=buy.pk, state=state, adapter=adapter)
    booked = list(Fill.objects.filter(dca_order=buy).order_by("trade_id"))
    assert [(f.trade_id, f.fee, f.fee_asset, f.fee_quote_value) for f in booked] == [
        ("z1", D("0.5"), "ZZZ", None),
        ("z2", D("0.5"), "ZZZ", None),
    ]
    buy.refresh_from_db()
    group.refresh_from_db()
    assert buy.status == "filled"
    assert group.filled_quantity == D("0.02") and group.total_cost == D("1300") and group.fees_quote == 0
    [warning] = _fee_warnings(buy)
    assert "ZZZ/USDT" in warning.message and warning.details["trade_ids"] == ["z1", "z2"]

    # Seen again: already booked, so no second warning.
    order_apply_state(order_id=buy.pk, state=state, adapter=adapter)
    assert len(_fee_warnings(buy)) == 1


def test_a_fee_whose_price_request_fails_is_booked_without_a_value(simulator_account):
    account = simulator_account
    adapter = account.adapter()
    group = _group(account)
    account.simulator.set_price("BNBUSDT", "600")
    buy = _buy(group, "0.01")
    account.simulator.add_fault("GET /api/v3/ticker/24hr", "error_500", count=20)
    order_apply_state(order_id=buy.pk, state=_filled(buy, ("n1", "65000", "0.01", "0.00075", "BNB")), adapter=adapter)
    [booked] = Fill.objects.filter(dca_order=buy)
    assert booked.fee_quote_value is None
    group.refresh_from_db()
    assert group.filled_quantity == D("0.01") and group.total_cost == D("650") and group.fees_quote == 0
    [warning] = _fee_warnings(buy)
    assert "BNB/USDT" in warning.message


def test_a_monitor_pass_asks_the_fee_asset_price_once_for_every_order_it_books(simulator_account):
    account = simulator_account
    group = _group(account)
    account.simulator.set_price("BNBUSDT", "600")
    first, second = _buy(group, "0.01"), _sell(group, "0.01")
    cycle = _CycleTrades(account.adapter())  # the adapter of one monitor pass
    before = account.simulator.stats()["requests_by_endpoint"].get("GET /api/v3/ticker/24hr", 0)
    order_apply_state(order_id=first.pk, state=_filled(first, ("c1", "65000", "0.01", "0.001", "BNB")), adapter=cycle)
    order_apply_state(order_id=second.pk, state=_filled(second, ("c2", "66000", "0.01", "0.001", "BNB")), adapter=cycle)
    after = account.simulator.stats()["requests_by_endpoint"].get("GET /api/v3/ticker/24hr", 0)
    assert after - before == 1
    assert sorted(Fill.objects.filter(group=group).values_list("fee_quote_value", flat=True)) == [D("0.6"), D("0.6")]
