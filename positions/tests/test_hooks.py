"""Engine events (`positions.hooks`): the order and state services announce fills, closes and failures to
the subscribers of the apps above, only once their transaction commits."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from exchanges.adapters.types import OrderFill, OrderState
from exchanges.client_ids import client_order_id_for
from exchanges.tests.factories import ExchangeConfigFactory
from positions import hooks
from positions.models import DCAOrder, PositionGroup, Pyramid
from positions.services.orders import order_apply_state
from positions.services.state import group_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    seen: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(seen.append)
    yield seen
    hooks.engine_event_unsubscribe(seen.append)


def _order(trader) -> DCAOrder:
    config = ExchangeConfigFactory.create(user=trader)
    group = PositionGroup.objects.create(
        user=trader, exchange_config=config, symbol="BTC/USDT", timeframe="1h", status="live", tp_mode="aggregate"
    )
    pyramid = Pyramid.objects.create(group=group, index=0, entry_price=Decimal("65000"), capital_usd=Decimal("100"))
    intent = uuid.uuid4()
    return DCAOrder.objects.create(
        id=intent,
        group=group,
        exchange_config=config,
        pyramid=pyramid,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=Decimal("64000.00"),
        quantity=Decimal("0.002"),
        client_order_id=client_order_id_for(intent),
        pyramid_level=0,
        dca_level=1,
        expected_price=Decimal("64000.00"),
    )


def _filled(order: DCAOrder) -> OrderState:
    fills = tuple(
        OrderFill(
            trade_id=f"t{i}",
            price=price,
            quantity=Decimal("0.001"),
            fee=Decimal("0"),
            fee_asset="BNB",
            timestamp=datetime(2026, 11, 27, 9, 0, i, tzinfo=UTC),
        )
        for i, price in enumerate((Decimal("64000.00"), Decimal("63990.00")))
    )
    return OrderState(
        exchange_order_id="42",
        client_order_id=order.client_order_id,
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        status="filled",
        price=order.price,
        quantity=order.quantity,
        filled_quantity=Decimal("0.002"),
        average_price=Decimal("63995.00"),
        fee=Decimal("0"),
        fee_asset="BNB",
        fills=fills,
        timestamp=None,
    )


def test_a_fill_is_announced_after_commit_with_its_price_and_quantity(
    trader, events, django_capture_on_commit_callbacks
) -> None:
    order = _order(trader)
    with django_capture_on_commit_callbacks(execute=True):
        order_apply_state(order_id=order.pk, state=_filled(order))
        assert events == []  # not before the commit
    (event,) = events
    assert (event.kind, event.user_id, event.group_id) == ("order_filled", str(trader.pk), str(order.group_id))
    assert event.data["symbol"] == "BTC/USDT" and event.data["side"] == "buy"
    assert event.data["order_kind"] == "dca" and event.data["level"] == 1
    assert Decimal(event.data["quantity"]) == Decimal("0.002")
    assert Decimal(event.data["price"]) == Decimal("63995.00")
    # The same fills again book nothing and announce nothing.
    with django_capture_on_commit_callbacks(execute=True):
        order_apply_state(order_id=order.pk, state=_filled(order))
    assert len(events) == 1


def test_nothing_is_announced_for_a_rolled_back_change(trader, events, django_capture_on_commit_callbacks) -> None:
    order = _order(trader)
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                group_transition(group_id=order.group_id, to="failed", reason="boom")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert events == []
    with django_capture_on_commit_callbacks(execute=True):
        group_transition(group_id=order.group_id, to="failed", reason="exchange refused every leg")
    (event,) = events
    assert event.kind == "group_failed" and event.data["reason"] == "exchange refused every leg"


def test_a_failing_subscriber_does_not_reach_the_trading_path(
    trader, events, django_capture_on_commit_callbacks
) -> None:
    def broken(event: hooks.EngineEvent) -> None:
        raise RuntimeError("subscriber down")

    hooks.engine_event_subscribe(broken)
    try:
        order = _order(trader)
        with django_capture_on_commit_callbacks(execute=True):
            group_transition(group_id=order.group_id, to="failed", reason="x")
    finally:
        hooks.engine_event_unsubscribe(broken)
    assert [e.kind for e in events] == ["group_failed"]


def _resting(order: DCAOrder) -> OrderState:
    return dataclasses.replace(
        _filled(order), status="open", filled_quantity=Decimal("0"), average_price=None, fills=()
    )


def test_an_entry_resting_on_the_book_is_announced_once_a_dca_leg_is_not(
    trader, events, django_capture_on_commit_callbacks
) -> None:
    leg = _order(trader)
    with django_capture_on_commit_callbacks(execute=True):
        order_apply_state(order_id=leg.pk, state=_resting(leg))
    assert events == []  # a DCA leg resting is what the grid does: not told
    intent = uuid.uuid4()
    entry = DCAOrder.objects.create(
        id=intent,
        group=leg.group,
        exchange_config=leg.exchange_config,
        pyramid=leg.pyramid,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=Decimal("65000.00"),
        quantity=Decimal("0.002"),
        client_order_id=client_order_id_for(intent),
        pyramid_level=0,
        dca_level=0,
        expected_price=Decimal("65000.00"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        order_apply_state(order_id=entry.pk, state=_resting(entry))
        order_apply_state(order_id=entry.pk, state=_resting(entry))  # seen again: already acknowledged
    (event,) = events
    assert (event.kind, event.group_id) == (hooks.ORDER_PLACED, str(entry.group_id))
    assert event.data["order_kind"] == "entry" and Decimal(event.data["price"]) == Decimal("65000")
    assert event.data["status"] == "open"
