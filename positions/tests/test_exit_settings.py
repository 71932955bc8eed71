"""`cancel_dca_beyond_percent` and `slippage_action: reject`, on the simulator with a real worker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from positions.services import monitor
from positions.tests.test_end_to_end import _open_on_simulator
from positions.tests.test_exits import _open, _prices, _settle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _resting_legs(group) -> list[int]:
    return sorted(group.dca_orders.filter(status="open").values_list("dca_level", flat=True))


def test_entry_legs_left_behind_by_price_are_cancelled_past_the_setting(client, simulator_account, celery_worker):
    account = simulator_account
    # Legs at 65000, 64675, 64350, 64025, 63700; 2 % past the last level is 62426.
    group = _open(client, account, {"tp_mode": "aggregate", "cancel_dca_beyond_percent": "2"})
    assert group.status == "partially_filled" and _resting_legs(group) == [1, 2, 3, 4]
    counts = monitor.check_exits(prices=_prices(group, "62426"))
    assert counts["dca_cancelled"] == 0 and _resting_legs(group) == [1, 2, 3, 4]

    counts = monitor.check_exits(prices=_prices(group, "62425.99"))
    assert counts["dca_cancelled"] == 4
    assert set(group.dca_orders.exclude(dca_level=0).values_list("status", flat=True)) == {"canceled"}
    assert _open_on_simulator(account) == []
    group.refresh_from_db()
    # What is left of the plan (the entry) is filled: the group is active and still managed.
    assert group.status == "active" and group.filled_quantity > 0
    assert group.events.filter(kind="dca_cancelled").count() == 1
    assert monitor.check_exits(prices=_prices(group, "60000"))["dca_cancelled"] == 0


def test_without_the_setting_the_last_leg_keeps_resting(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account, {"tp_mode": "aggregate"})
    counts = monitor.check_exits(prices=_prices(group, "30000"))
    assert counts["dca_cancelled"] == 0 and _resting_legs(group) == [1, 2, 3, 4]
    assert len(_open_on_simulator(account)) == 4


def test_reject_postpones_a_stop_into_a_price_already_past_the_slippage_limit(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(
        client,
        account,
        {"tp_mode": "aggregate", "stop_loss_percent": "3", "slippage_action": "reject", "max_slippage_percent": "1"},
    )
    stop = group.avg_entry_price * Decimal("0.97")
    # The stop triggers at the checked price, but the market already trades 1.5 % lower: not sent.
    trigger = (stop - 1).quantize(Decimal("0.01"))
    account.simulator.set_price("BTCUSDT", str((trigger * Decimal("0.985")).quantize(Decimal("0.01"))))
    counts = monitor.check_exits(prices=_prices(group, str(trigger)))
    assert counts["postponed"] == 1 and counts["closing"] == 0
    group.refresh_from_db()
    assert group.status in ("partially_filled", "active")
    assert not group.exit_orders.filter(order_type="market").exists()
    assert group.events.filter(kind="exit_postponed").count() == 1
    # The next pass decides on its own fresh price: the stop still holds and the market is where it was seen.
    counts = monitor.check_exits()
    assert counts["postponed"] == 0 and counts["closing"] == 1
    group.refresh_from_db()
    assert group.status == "closed" and group.close_reason == "stop_loss"
    assert _open_on_simulator(account) == []


def test_warn_sends_the_same_exit_and_records_its_slippage(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account, {"tp_mode": "aggregate", "stop_loss_percent": "3"})
    stop = group.avg_entry_price * Decimal("0.97")
    trigger = (stop - 1).quantize(Decimal("0.01"))
    account.simulator.set_price("BTCUSDT", str((trigger * Decimal("0.985")).quantize(Decimal("0.01"))))
    counts = monitor.check_exits(prices=_prices(group, str(trigger)))
    assert counts["postponed"] == 0 and counts["closing"] == 1
    group = _settle(group)
    assert group.status == "closed" and group.close_reason == "stop_loss"
    close = group.exit_orders.get(order_type="market")
    assert close.slippage_percent is not None
