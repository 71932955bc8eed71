"""Reconciliation after a crash: adopt fills, mark exchange cancels, cancel orphans, report strangers."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command

from exchanges.adapters.types import OrderRequest
from exchanges.client_ids import client_order_id_for
from positions.models import DCAOrder
from positions.services.reconcile import orders_out_of_sync, reconcile
from positions.services.state import group_transition
from positions.tests.test_exits import _open

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_reconcile_adopts_fills_cancels_and_orphans(client, simulator_account, celery_worker, capsys):
    account = simulator_account
    group = _open(client, account, {"tp_mode": "aggregate"})
    adapter = account.adapter()
    legs = list(group.dca_orders.order_by("dca_level"))
    # While "we were down": two legs fill, one is cancelled on the exchange by hand.
    account.simulator.set_price("BTCUSDT", str(legs[2].price))
    adapter.cancel_order("BTC/USDT", client_order_id=legs[4].client_order_id)
    # An intent of a closed group that we believed never went out (a crash right after sending), and a
    # stranger's order.
    stray_intent = uuid.uuid4()
    closed = _open_second_closed_group(client, account)
    template = closed.dca_orders.first()
    DCAOrder.objects.create(
        id=stray_intent,
        group=closed,
        exchange_config=account.config,
        pyramid=template.pyramid,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=Decimal("50000"),
        quantity=Decimal("0.001"),
        client_order_id=client_order_id_for(stray_intent),
        pyramid_level=0,
        dca_level=7,
        expected_price=Decimal("50000"),
        status="canceled",
    )
    adapter.create_order(
        OrderRequest(
            symbol="BTC/USDT",
            side="buy",
            type="limit",
            quantity=Decimal("0.001"),
            price=Decimal("50000"),
            client_order_id=client_order_id_for(stray_intent),
        )
    )
    adapter.create_order(
        OrderRequest(
            symbol="BTC/USDT",
            side="buy",
            type="limit",
            quantity=Decimal("0.001"),
            price=Decimal("50001"),
            client_order_id="manualOrder123",
        )
    )

    report = reconcile(user=account.config.user)
    assert report.adopted >= 3, report
    assert report.cancelled_orphans == 1
    assert any("manualOrder123" in line for line in report.unexplained)
    statuses = {o.dca_level: o.status for o in group.dca_orders.all()}
    assert statuses[1] == statuses[2] == "filled" and statuses[4] == "canceled" and statuses[3] == "open"
    group.refresh_from_db()
    assert group.filled_quantity > legs[0].quantity  # the adopted fills count in the position
    drift = orders_out_of_sync(config=account.config)
    assert drift["only_in_db"] == [] and drift["final_in_db_but_open"] == []
    assert drift["only_on_exchange"] == ["manualOrder123"]
    # Nothing was placed twice: one exchange order per client id.
    ids = [o["clientOrderId"] for o in account.orders()]
    assert len(ids) == len(set(ids))
    call_command("reconcile", "--user", account.config.user.email)
    assert "unexplained: 1" in capsys.readouterr().out


def _open_second_closed_group(client, account):
    from positions.models import PositionGroup
    from positions.tests.conftest import alert, post

    user = account.config.user
    response = post(
        client,
        user,
        alert(
            user.webhook_secret,
            tv={"exchange": "simulator", "symbol": "ETHUSDT", "entry_price": "3000"},
            strategy_info={"trade_id": "ETH-1"},
        ),
    )
    group = PositionGroup.objects.get(pk=response.json()["group_id"])
    from positions.tests.test_end_to_end import _placed, wait_for

    wait_for(lambda: _placed(group), message="eth grid")
    from positions.services.exits import group_close

    group_close(group_id=group.pk, purpose="manual")
    group.refresh_from_db()
    assert group.status == "closed"
    return group


def test_intent_committed_but_never_sent_is_sent_once(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account)
    order_id = uuid.uuid4()
    leg = group.dca_orders.get(dca_level=4)
    DCAOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=account.config,
        pyramid=leg.pyramid,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=Decimal("60000.00"),
        quantity=Decimal("0.00050"),
        client_order_id=client_order_id_for(order_id),
        pyramid_level=0,
        dca_level=9,
        expected_price=Decimal("60000"),
    )
    DCAOrder.objects.filter(pk=order_id).update(created_at=leg.created_at.replace(year=2020))
    reconcile(user=account.config.user)
    reconcile(user=account.config.user)
    matches = [o for o in account.orders() if o["clientOrderId"] == client_order_id_for(order_id)]
    assert len(matches) == 1
    assert DCAOrder.objects.get(pk=order_id).status == "open"
    group_transition(group_id=group.pk, to="closing")
