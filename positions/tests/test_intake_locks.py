"""Webhook intake next to a worker that holds a group's row lock: no deadlock."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from accounts.logs import log_info
from positions.models import PositionGroup
from positions.tests.conftest import alert, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_signal_waits_for_a_group_locked_by_a_worker_that_logs_for_the_user(client, trader, sim_config):
    group = PositionGroup.objects.get(pk=post(client, trader, alert(trader.webhook_secret)).json()["group_id"])
    locked, errors = threading.Event(), []

    def worker() -> None:
        # What closing a group does: the group row locked, then a system log line for its user.
        try:
            with transaction.atomic():
                PositionGroup.objects.select_for_update().get(pk=group.pk)
                locked.set()
                time.sleep(0.5)  # the pyramid signal below is now waiting for this group
                log_info("TRADING", f"{group.symbol} closed", user=trader)
        except Exception as exc:  # a deadlock victim
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    assert locked.wait(5)
    pyramid = alert(trader.webhook_secret, strategy_info={"trade_id": "T-2"}, timestamp="2026-11-20T11:00:01Z")
    response = post(client, trader, pyramid)
    thread.join(10)

    assert errors == []
    assert response.status_code == 202 and response.json()["classification"] == "pyramid"
