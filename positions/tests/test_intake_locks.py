"""Webhook intake next to a worker that holds a group's row lock: no deadlock."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from accounts.logs import log_info
from positions.models import PositionGroup
from positions.tests.conftest import HISTORIC, alert, lag_off, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_signal_waits_for_a_group_locked_by_a_worker_that_logs_for_the_user(client, trader, sim_config):
    lag_off(trader)  # the pyramid comes in the next candle of a historic hour
    group = PositionGroup.objects.get(
        pk=post(client, trader, alert(trader.webhook_secret, timestamp=HISTORIC)).json()["group_id"]
    )
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


def _concurrently(calls: list) -> list:
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

    lag_off(trader)  # the copies come in the next candle of a historic hour
    group = PositionGroup.objects.get(
        pk=post(client, trader, alert(trader.webhook_secret, timestamp=HISTORIC)).json()["group_id"]
    )
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


def _receive(trader, body: dict):
    import json

    from positions.services.intake import signal_receive

    return signal_receive(
        user_id=str(trader.pk), raw=json.dumps(body).encode(), content_type="application/json", ip="127.0.0.1"
    )


def test_concurrent_alerts_for_one_new_identity_open_one_group(trader, sim_config):
    """Alerts that find no group take the user lock and read again: the first opens the group, the others
    see it (one candle: duplicates of its pyramid)."""
    lag_off(trader)  # six moments of one historic candle
    bodies = [
        alert(trader.webhook_secret, strategy_info={"trade_id": f"N-{i}"}, timestamp=f"2026-11-20T10:00:0{i}Z")
        for i in range(6)
    ]
    results = _concurrently([lambda body=body: _receive(trader, body) for body in bodies])

    assert sorted((r.status, r.body.get("classification") or r.body["status"]) for r in results) == [
        (200, "duplicate")
    ] * 5 + [(202, "new_entry")]
    assert PositionGroup.objects.filter(user=trader).count() == 1


def test_an_alert_for_an_open_group_does_not_wait_for_the_users_lock(client, trader, sim_config):
    """Only what depends on the pool waits for the user lock: a pyramid locks just its group, so a trader's
    alerts on several symbols at one candle close do not queue behind each other."""
    from django.db import connections

    from accounts.models import User

    lag_off(trader)  # the pyramid comes in the next candle of a historic hour
    post(client, trader, alert(trader.webhook_secret, timestamp=HISTORIC))
    answers: dict = {}

    def send(name: str, body: dict) -> threading.Thread:
        def run() -> None:
            try:
                answers[name] = _receive(trader, body)
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cur:
        cur.execute(f"SELECT 1 FROM {User._meta.db_table} WHERE id = %s FOR NO KEY UPDATE", [trader.pk])
    try:
        entry = send("entry", alert(trader.webhook_secret, tv={"symbol": "ETHUSDT"}, strategy_info={"trade_id": "E"}))
        pyramid = send(
            "pyramid",
            alert(trader.webhook_secret, strategy_info={"trade_id": "T-2"}, timestamp="2026-11-20T11:00:01Z"),
        )
        pyramid.join(10)
        assert not pyramid.is_alive(), "the pyramid waited for the user lock"
        assert answers["pyramid"].status == 202 and answers["pyramid"].body["classification"] == "pyramid"
        assert entry.is_alive() and "entry" not in answers  # a new entry needs the pool: it waits for the lock
    finally:
        holder.rollback()
        holder.close()
    entry.join(10)
    assert answers["entry"].status == 202 and answers["entry"].body["classification"] == "new_entry"
