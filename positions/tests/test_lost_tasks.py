"""Reconciliation finishes the work of tasks that died with a worker (the Redis broker can lose them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F

from positions.models import PositionGroup, Pyramid, WebhookSignal
from positions.services.reconcile import reconcile
from positions.tests.conftest import alert, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_reconcile_processes_an_entry_and_an_exit_whose_tasks_were_lost(client, simulator_account):
    from tradingsite.celery import app

    account = simulator_account
    user = account.config.user
    account.simulator.set_price("BTCUSDT", "65000")
    account.adapter().refresh_market_rules()
    entry = post(client, user, alert(user.webhook_secret, tv={"exchange": "simulator"}))
    group = PositionGroup.objects.get(pk=entry.json()["group_id"])
    exit_signal = alert(
        user.webhook_secret,
        tv={"exchange": "simulator", "action": "sell"},
        strategy_info={"trade_id": "T-2"},
        execution_intent={"type": "exit", "side": "sell"},
    )
    assert post(client, user, exit_signal).json()["classification"] == "exit"
    # No worker took the two process_signal tasks, and now they are gone (as with a worker killed right
    # after taking them off the queue); a minute passes.
    app.control.purge()
    WebhookSignal.objects.update(received_at=F("received_at") - timedelta(minutes=1))
    Pyramid.objects.update(created_at=F("created_at") - timedelta(minutes=1))

    reconcile(user=user)

    group.refresh_from_db()
    assert group.status == "closed" and group.close_reason == "exit_signal"
    assert set(WebhookSignal.objects.values_list("processing_status", flat=True)) == {"done"}
    assert [o for o in account.orders() if o["status"] in ("NEW", "PARTIALLY_FILLED")] == []
