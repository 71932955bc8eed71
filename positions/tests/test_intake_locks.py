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


def _concurrently(calls: list) -> list:  # type: ignore[type-arg]
    """Run the calls in threads released together; each thread closes its own database connection."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(10)
            results[index] = calls[index]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_entries_of_one_user_never_overfill_the_pool(trader, sim_config):
    """Each signal reads the pool after the previous one committed (the user lock is taken by a statement
    of its own: a statement that waited for it would read from its older snapshot)."""
    import json

    from positions.services.configs import config_set
    from positions.services.intake import signal_receive
    from positions.webhook import TIMEFRAMES

    config_set(user=trader, data={"max_open_groups": 2}, partial=True)
    timeframes = ["1", "3", "5", "15", "30", "45", "60", "120", "180", "240", "360", "480"]
    assert set(timeframes) <= set(TIMEFRAMES)
    bodies = [
        json.dumps(alert(trader.webhook_secret, tv={"timeframe": tf}, strategy_info={"trade_id": f"P-{tf}"})).encode()
        for tf in timeframes
    ]
    results = _concurrently(
        [
            lambda body=body: signal_receive(
                user_id=str(trader.pk), raw=body, content_type="application/json", ip="127.0.0.1"
            )
            for body in bodies
        ]
    )

    classes = sorted(r.body.get("classification") for r in results)
    assert [r.status for r in results] == [202] * len(bodies)
    assert classes == ["new_entry"] * 2 + ["queued"] * (len(bodies) - 2)
    assert PositionGroup.objects.filter(user=trader).count() == 2


def test_concurrent_copies_of_one_pyramid_make_one_pyramid(client, trader, sim_config):
    """Two alerts for one open group at once (different trade ids, one candle): one pyramid, one duplicate."""
    import json

    from positions.services.intake import signal_receive

    group = PositionGroup.objects.get(pk=post(client, trader, alert(trader.webhook_secret)).json()["group_id"])
    bodies = [
        json.dumps(
            alert(trader.webhook_secret, strategy_info={"trade_id": f"Y-{i}"}, timestamp="2026-11-20T11:00:0{i}Z")
        ).encode()
        for i in range(6)
    ]
    results = _concurrently(
        [
            lambda body=body: signal_receive(
                user_id=str(trader.pk), raw=body, content_type="application/json", ip="127.0.0.1"
            )
            for body in bodies
        ]
    )

    assert sorted(r.status for r in results) == [200] * 5 + [202]
    group.refresh_from_db()
    assert group.pyramid_count == 2 and group.pyramids.count() == 2
