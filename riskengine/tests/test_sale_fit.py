"""A winner's sale is fitted, before it is first sent, to what the group holds by its fills and may still
sell beyond its other working sells (resting or unsent take-profits, market sells whose outcome is not
known yet), under the group's row lock (docs/engine.md#risk-engine). The chaos test saw sales planned on
a holding that was no longer there refused by the exchange."""

from __future__ import annotations

import uuid
from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

import pytest

from exchanges.client_ids import client_order_id_for
from positions.models import DCAOrder, ExitOrder, Fill, GroupEvent, PositionGroup, Pyramid
from riskengine.services import _sale_fit

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(trader, sim_config) -> PositionGroup:
    """Holds 0.01 BTC by its fills: one buy of 0.01 at 65000 (its fee paid in USDT)."""
    group = PositionGroup.objects.create(
        user=trader,
        exchange_config=sim_config,
        symbol="BTC/USDT",
        timeframe="1h",
        status="active",
        filled_quantity=D("0.01"),
        total_cost=D("650.65"),
        pyramid_count=1,
        max_pyramids=1,
    )
    pyramid = Pyramid.objects.create(group=group, index=0, entry_price=D("65000"), capital_usd=D("650"))
    leg_id = uuid.uuid4()
    leg = DCAOrder.objects.create(
        id=leg_id,
        group=group,
        exchange_config=sim_config,
        pyramid=pyramid,
        symbol=group.symbol,
        side="buy",
        order_type="limit",
        price=D("65000"),
        quantity=D("0.01"),
        filled_quantity=D("0.01"),
        client_order_id=client_order_id_for(leg_id),
        pyramid_level=0,
        dca_level=0,
        expected_price=D("65000"),
        status="filled",
    )
    Fill.objects.create(
        group=group, dca_order=leg, trade_id="1", side="buy", price=D("65000"), quantity=D("0.01"),
        fee=D("0.65"), fee_asset="USDT",
    )  # fmt: skip
    return group


def _order(group: PositionGroup, **fields) -> ExitOrder:
    order_id = uuid.uuid4()
    values = {
        "side": "sell",
        "order_type": "market",
        "purpose": "risk",
        "reference_price": D("65000"),
        "status": "pending",
        **fields,
    }
    return ExitOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=group.exchange_config,
        symbol=group.symbol,
        client_order_id=client_order_id_for(order_id),
        **values,
    )


def _fitted(sale: ExitOrder) -> ExitOrder:
    assert _sale_fit(order_id=sale.pk) is True
    sale.refresh_from_db()
    return sale


def test_a_sale_bigger_than_the_room_shrinks_to_it(group):
    # Holds 0.01, a TP rests for 0.004 (0.001 of it filled): 0.01 − 0.003 = 0.007 is left for the sale.
    _order(group, order_type="limit", purpose="tp_leg", price=D("66000"), quantity=D("0.004"),
           filled_quantity=D("0.001"), status="partially_filled")  # fmt: skip
    sale = _fitted(_order(group, quantity=D("0.0095")))
    assert (sale.status, sale.quantity) == ("pending", D("0.007"))
    assert sale.last_error == "resized from 0.0095: the group holds 0.01, 0.007 of it beyond its other working sells"
    (event,) = GroupEvent.objects.filter(group=group, kind="risk_sale_resized")
    assert event.message == f"risk sale {sale.client_order_id}: {sale.last_error}"


def test_a_sale_that_fits_or_was_sent_before_is_left_alone(group):
    fits = _fitted(_order(group, quantity=D("0.01")))
    assert (fits.quantity, fits.status) == (D("0.01"), "pending")
    fits.delete()
    sent = _fitted(_order(group, quantity=D("0.02"), submit_attempts=1, status="unknown"))
    assert (sent.quantity, sent.status) == (D("0.02"), "unknown")


def test_a_sale_nothing_valid_fits_is_cancelled_unsent_with_its_reason(group):
    # 0.00005 BTC left beyond the TP: 3.25 USDT at 65000, under the 5 USDT minimum notional.
    _order(group, order_type="limit", purpose="tp_leg", price=D("66000"), quantity=D("0.00995"), status="open")
    sale = _fitted(_order(group, quantity=D("0.005")))
    assert (sale.status, sale.quantity, sale.submit_attempts) == ("canceled", D("0.005"), 0)
    assert sale.last_error.startswith("nothing left to sell, not sent: the group holds 0.01, 0.00005 of it")
    assert GroupEvent.objects.filter(group=group, kind="risk_sale_skipped").count() == 1


def test_another_market_sell_still_out_is_set_aside(group):
    # An earlier offset's sale of 0.004 whose answer never came (it may have sold): 0.006 is left.
    _order(group, quantity=D("0.004"), submit_attempts=1, status="unknown")
    sale = _fitted(_order(group, quantity=D("0.008")))
    assert (sale.status, sale.quantity) == ("pending", D("0.006"))


def test_the_holding_is_read_from_the_fills(group):
    # A TP's fill booked just before (the stored total not refreshed yet): the fills hold 0.006.
    tp = _order(group, order_type="limit", purpose="tp_leg", price=D("66000"), quantity=D("0.004"),
                filled_quantity=D("0.004"), status="filled")  # fmt: skip
    Fill.objects.create(
        group=group, exit_order=tp, trade_id="2", side="sell", price=D("66000"), quantity=D("0.004"),
        fee=D("0.264"), fee_asset="USDT",
    )  # fmt: skip
    assert PositionGroup.objects.get(pk=group.pk).filled_quantity == D("0.01")
    sale = _fitted(_order(group, quantity=D("0.008")))
    assert (sale.status, sale.quantity) == ("pending", D("0.006"))


def test_a_group_no_longer_trading_is_not_sold_by_the_offset(group):
    PositionGroup.objects.filter(pk=group.pk).update(status="closing")
    sale = _fitted(_order(group, quantity=D("0.005")))
    assert sale.status == "canceled"
    assert sale.last_error == "nothing left to sell, not sent: the group is closing: its own close sells what it holds"
