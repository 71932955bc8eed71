"""A winner's sale is fitted, before it is first sent, to what the group still holds beyond its resting
take-profits (the chaos test saw sales planned on a holding a TP had just sold refused by the exchange)."""

from __future__ import annotations

import uuid
from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

import pytest

from exchanges.client_ids import client_order_id_for
from positions.models import ExitOrder, PositionGroup
from riskengine.services import _sale_fit

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(trader, sim_config) -> PositionGroup:
    return PositionGroup.objects.create(
        user=trader,
        exchange_config=sim_config,
        symbol="BTC/USDT",
        timeframe="1h",
        status="active",
        filled_quantity=D("0.01"),
        total_cost=D("650"),
        pyramid_count=1,
        max_pyramids=1,
    )


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


def test_a_sale_bigger_than_the_room_shrinks_to_it(group):
    # Holds 0.01, a TP rests for 0.004 (0.001 of it filled): 0.01 − 0.003 = 0.007 is left for the sale.
    _order(group, order_type="limit", purpose="tp_leg", price=D("66000"), quantity=D("0.004"),
           filled_quantity=D("0.001"), status="partially_filled")  # fmt: skip
    sale = _order(group, quantity=D("0.0095"))
    assert _sale_fit(order_id=sale.pk) is True
    sale.refresh_from_db()
    assert (sale.status, sale.quantity) == ("pending", D("0.007"))
    assert sale.last_error == "resized from 0.0095: the group holds 0.01, 0.007 of it beyond its resting TPs"


def test_a_sale_that_fits_or_was_sent_before_is_left_alone(group):
    fits = _order(group, quantity=D("0.01"))
    sent = _order(group, quantity=D("0.02"), submit_attempts=1, status="unknown")
    assert _sale_fit(order_id=fits.pk) and _sale_fit(order_id=sent.pk)
    fits.refresh_from_db()
    sent.refresh_from_db()
    assert (fits.quantity, fits.status, sent.quantity, sent.status) == (D("0.01"), "pending", D("0.02"), "unknown")


def test_a_sale_nothing_valid_fits_is_cancelled_unsent(group):
    # 0.00005 BTC left beyond the TP: 3.25 USDT at 65000, under the 5 USDT minimum notional.
    _order(group, order_type="limit", purpose="tp_leg", price=D("66000"), quantity=D("0.00995"), status="open")
    sale = _order(group, quantity=D("0.005"))
    assert _sale_fit(order_id=sale.pk) is True
    sale.refresh_from_db()
    assert sale.status == "canceled" and sale.quantity == D("0.005")
    assert sale.last_error.startswith("nothing left to sell: the group holds 0.01, 0.00005 of it")
