"""Order placement against the simulator when two processes reach the same intent at once, and fee booking."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection

from exchanges.client_ids import client_order_id_for
from positions.models import DCAOrder, Fill, PositionGroup, Pyramid
from positions.services import orders
from positions.services.reconcile import orders_out_of_sync

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _intent(account, *, price: str, quantity: str = "0.001") -> DCAOrder:
    """A live BTC/USDT group (aggregate TP: no per-leg TP tasks) with one committed, unsent limit buy."""
    from positions.config import effective_config

    account.adapter().refresh_market_rules()
    merged, _ = effective_config({"tp_mode": "aggregate"}, symbol="BTC/USDT", timeframe="1h")
    group = PositionGroup.objects.create(
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
    pyramid = Pyramid.objects.create(group=group, index=0, entry_price=Decimal(price), capital_usd=Decimal("100"))
    intent = uuid.uuid4()
    return DCAOrder.objects.create(
        id=intent,
        group=group,
        exchange_config=account.config,
        pyramid=pyramid,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=Decimal(price),
        quantity=Decimal(quantity),
        client_order_id=client_order_id_for(intent),
        pyramid_level=0,
        dca_level=0,
        expected_price=Decimal(price),
    )


def _first_sender(order: DCAOrder) -> threading.Thread:
    """order_submit in another thread (its own database connection), as a worker would run it."""

    def run() -> None:
        try:
            orders.order_submit(order_id=order.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while DCAOrder.objects.get(pk=order.pk).submit_attempts == 0:  # committed: its request is on the way
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    return thread


def test_a_second_sender_does_not_resend_an_order_whose_first_request_has_not_landed(simulator_account):
    account = simulator_account
    account.simulator.set_price("BTCUSDT", "65000")
    order = _intent(account, price="65000")  # marketable: it fills as soon as it lands
    # The first request reaches the matching engine only after 800 ms (below the client timeout).
    account.simulator.add_fault("POST /api/v3/order", "delay_ms", delay_ms=800)
    first = _first_sender(order)
    # Meanwhile the fill monitor looks the order up (not there yet) and resolves it the way it resolves
    # any intent that may have been sent.
    orders.order_sync(order_id=order.pk)
    first.join(timeout=10)

    placed = [o for o in account.orders() if o["clientOrderId"] == order.client_order_id]
    assert len(placed) == 1, placed
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == Decimal("0.001")


def test_a_cancel_does_not_book_as_never_sent_an_order_whose_request_has_not_landed(simulator_account):
    account = simulator_account
    account.simulator.set_price("BTCUSDT", "65000")
    order = _intent(account, price="60000")  # rests on the book once it lands
    account.simulator.add_fault("POST /api/v3/order", "delay_ms", delay_ms=800)
    first = _first_sender(order)
    orders.order_cancel(order_id=order.pk)  # it may be on its way: it must not be booked as "never sent"
    first.join(timeout=10)
    order.refresh_from_db()
    assert orders_out_of_sync(config=account.config)["final_in_db_but_open"] == []
    assert order.status == "open"

    assert orders.order_cancel(order_id=order.pk) == orders.SETTLED
    order.refresh_from_db()
    [placed] = [o for o in account.orders() if o["clientOrderId"] == order.client_order_id]
    assert order.status == "canceled" and placed["status"] == "CANCELED"
    assert orders_out_of_sync(config=account.config) == {
        "only_on_exchange": [],
        "only_in_db": [],
        "final_in_db_but_open": [],
    }


def test_fills_the_exchange_reports_only_as_totals_are_booked_with_their_fees(simulator_account):
    from positions.services.monitor import monitor_fills

    account = simulator_account
    account.simulator.set_price("BTCUSDT", "65000")
    order = _intent(account, price="64000")
    assert orders.order_submit(order_id=order.pk) == orders.PLACED
    account.simulator.set_price("BTCUSDT", "63900")  # the resting buy fills; 0.1 % is taken in BTC
    monitor_fills()  # sees it leave the open list: GET /api/v3/order says "filled 0.001", no fee

    [placed] = [o for o in account.orders() if o["clientOrderId"] == order.client_order_id]
    [on_exchange] = placed["fills"]
    [booked] = Fill.objects.filter(dca_order=order)
    assert (booked.quantity, booked.fee, booked.fee_asset) == (
        Decimal(on_exchange["qty"]),
        Decimal(on_exchange["commission"]),
        on_exchange["commissionAsset"],
    )
    order.group.refresh_from_db()
    assert order.group.filled_quantity == Decimal("0.001") - Decimal(on_exchange["commission"])  # what is held
