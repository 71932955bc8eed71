"""Take-profit modes, stops, trailing, manual close and first-trigger-wins, on the simulator with a real worker."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from positions.models import ExitOrder, PositionGroup
from positions.services import monitor
from positions.services.exits import group_close
from positions.tests.conftest import alert, post
from positions.tests.test_end_to_end import _group, _open_on_simulator, _placed, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _open(client, account, config=None, price="65000"):
    from positions.services.configs import config_set

    user = account.config.user
    if config:
        config_set(user=user, data=config, partial=True)
    account.simulator.set_price("BTCUSDT", price)
    group = _group(post(client, user, alert(user.webhook_secret, tv={"exchange": "simulator", "entry_price": price})))
    wait_for(lambda: _placed(group), message="grid placed")
    monitor.monitor_fills()
    group.refresh_from_db()
    return group


def _prices(group, price: str) -> dict:
    return {(str(group.exchange_config_id), group.symbol): Decimal(price)}


def _settle(group) -> PositionGroup:
    monitor.monitor_fills()
    group.refresh_from_db()
    return group


def test_per_leg_take_profit_from_actual_fills_until_the_group_closes(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account)
    assert group.status == "partially_filled"
    tp = wait_for(lambda: group.exit_orders.filter(purpose="tp_leg", status="open").first(), message="TP")
    entry = group.dca_orders.get(dca_level=0)
    assert tp.price == Decimal("65650.00") and tp.quantity <= entry.filled_quantity
    # Every leg fills on the way down; each gets its own TP from its own fill price.
    account.simulator.set_price("BTCUSDT", "63000")
    _settle(group)
    wait_for(lambda: group.exit_orders.filter(purpose="tp_leg", status="open").count() == 5, message="5 TPs")
    group.refresh_from_db()
    assert group.status == "active"
    for leg in group.dca_orders.all():
        leg_tp = leg.tp_orders.get()
        assert leg_tp.price > leg.filled_price
        assert leg_tp.price == (leg.filled_price * (1 + leg.tp_percent / 100)).quantize(Decimal("0.01"), "ROUND_DOWN")
    # Up again: every TP fills, the group realizes a profit and closes.
    account.simulator.set_price("BTCUSDT", "67000")
    _settle(group)
    monitor.check_exits()
    group.refresh_from_db()
    assert group.status == "closed", group.events.values_list("message", flat=True)
    assert group.realized_pnl > 0
    assert _open_on_simulator(account) == []
    # Per-leg and per-pyramid PnL add up to the group's (everything was sold by leg TPs).
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(account.config.user)
    detail = api.get(f"/api/positions/{group.pk}").json()
    assert "pyramids" in detail, detail
    leg_realized = sum(Decimal(leg["pnl"]["realized"]) for leg in detail["pyramids"][0]["orders"])
    assert leg_realized > 0
    assert abs(leg_realized - group.realized_pnl) < Decimal("0.01")
    assert abs(Decimal(detail["pyramids"][0]["pnl"]["realized"]) - leg_realized) < Decimal("1e-7")


def test_aggregate_take_profit_closes_everything(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account, {"tp_mode": "aggregate", "tp_aggregate_percent": "1.5"})
    assert not group.exit_orders.exists()  # no per-leg TP in aggregate mode
    avg = group.avg_entry_price
    below = (avg * Decimal("1.0149")).quantize(Decimal("0.01"))
    assert monitor.check_exits(prices=_prices(group, str(below)))["closing"] == 0
    account.simulator.set_price("BTCUSDT", "66500")
    counts = monitor.check_exits()
    assert counts["closing"] == 1
    group.refresh_from_db()
    assert group.status == "closed" and group.close_reason == "tp_aggregate"
    assert _open_on_simulator(account) == []
    assert group.realized_pnl > 0


def test_hybrid_aggregate_close_cancels_leg_tps_and_legs(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account, {"tp_mode": "hybrid", "tp_aggregate_percent": "0.5"})
    wait_for(lambda: group.exit_orders.filter(purpose="tp_leg", status="open").exists(), message="leg TP")
    account.simulator.set_price("BTCUSDT", "65400")  # above avg + 0.5 %, below the leg TP at +1 %
    monitor.check_exits()
    group.refresh_from_db()
    assert group.status == "closed" and group.close_reason == "tp_aggregate"
    assert group.exit_orders.get(purpose="tp_leg").status == "canceled"
    assert set(group.dca_orders.exclude(dca_level=0).values_list("status", flat=True)) == {"canceled"}
    assert _open_on_simulator(account) == []


def test_pyramid_aggregate_sells_each_pyramid_on_its_own_average(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account, {"tp_mode": "pyramid_aggregate", "tp_aggregate_percent": "1"})
    account.simulator.set_price("BTCUSDT", "66000")
    monitor.check_exits()
    sell = ExitOrder.objects.get(group=group, purpose="tp_pyramid")
    assert sell.status == "filled"
    group.refresh_from_db()
    assert group.realized_pnl > 0


def test_trailing_stop_activates_trails_never_loosens_and_exits(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(
        client,
        account,
        {
            "tp_mode": "aggregate",
            "tp_aggregate_percent": "50",
            "trailing_enabled": True,
            "trailing_activation_percent": "5",
            "trailing_stop_percent": "3",
        },
    )
    avg = group.avg_entry_price
    assert monitor.exit_trigger(group_id=group.pk, price=avg * Decimal("1.04")) is None
    group.refresh_from_db()
    assert not group.trailing_active
    assert monitor.exit_trigger(group_id=group.pk, price=Decimal("70000")) is None
    group.refresh_from_db()
    assert group.trailing_active and group.trailing_stop_price == Decimal("67900")
    monitor.exit_trigger(group_id=group.pk, price=Decimal("72000"))
    group.refresh_from_db()
    assert group.trailing_stop_price == Decimal("69840")
    monitor.exit_trigger(group_id=group.pk, price=Decimal("71000"))
    group.refresh_from_db()
    assert group.trailing_stop_price == Decimal("69840") and group.trailing_high == Decimal("72000")
    assert monitor.exit_trigger(group_id=group.pk, price=Decimal("69800")) == "trailing_stop"
    monitor.check_exits(prices=_prices(group, "69800"))
    group.refresh_from_db()
    assert group.status == "closed" and group.close_reason == "trailing_stop"


def test_stop_loss_from_average_entry(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account, {"stop_loss_percent": "3"})
    stop = group.avg_entry_price * Decimal("0.97")
    assert monitor.check_exits(prices=_prices(group, str(stop + 1)))["closing"] == 0
    assert monitor.check_exits(prices=_prices(group, str(stop - 1)))["closing"] == 1
    group.refresh_from_db()
    assert group.status == "closed" and group.close_reason == "stop_loss"


def test_manual_close_api(client, api_client, simulator_account, celery_worker, user_factory):
    account = simulator_account
    group = _open(client, account)
    stranger = user_factory()
    api_client.force_authenticate(stranger)
    assert api_client.post(f"/api/positions/{group.pk}/close").status_code == 404
    api_client.force_authenticate(account.config.user)
    detail = api_client.get(f"/api/positions/{group.pk}").json()
    assert detail["pyramids"][0]["orders"][0]["dca_level"] == 0 and detail["fills"]
    response = api_client.post(f"/api/positions/{group.pk}/close")
    assert response.status_code == 202
    wait_for(lambda: PositionGroup.objects.get(pk=group.pk).status == "closed", message="closed")
    again = api_client.post(f"/api/positions/{group.pk}/close")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    listed = api_client.get("/api/positions", {"status": "closed"}).json()
    assert [g["id"] for g in listed] == [str(group.pk)]
    assert api_client.get("/api/positions", {"status": "bogus"}).status_code == 400


def test_first_trigger_wins_exactly_one_close(client, simulator_account, celery_worker):
    account = simulator_account
    group = _open(client, account)
    results: list[bool] = []
    barrier = threading.Barrier(3)

    def trigger(purpose: str) -> None:
        from django.db import connection

        barrier.wait()
        try:
            results.append(group_close(group_id=group.pk, purpose=purpose))
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger, args=(p,)) for p in ("exit_signal", "trailing_stop", "stop_loss")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, True]
    group.refresh_from_db()
    assert group.status == "closed"
    closes = ExitOrder.objects.filter(group=group, order_type="market")
    assert closes.count() == 1
    sold = sum(Decimal(o["executedQty"]) for o in account.orders() if o["side"] == "SELL")
    bought = sum(Decimal(o["executedQty"]) for o in account.orders() if o["side"] == "BUY")
    assert sold <= bought


def test_config_that_would_put_tp_below_entry_is_rejected(api_client, trader):
    api_client.force_authenticate(trader)
    levels = [{"gap_percent": "0", "weight_percent": "100", "tp_percent": "-1"}]
    response = api_client.put("/api/config", {"levels": levels, "capital_usd": "100"}, format="json")
    assert response.status_code == 400
    assert any("tp_percent" in key for key in response.json()["fields"])
    bad_aggregate = api_client.patch("/api/config", {"tp_aggregate_percent": "0"}, format="json")
    assert bad_aggregate.status_code == 400 and "tp_aggregate_percent" in bad_aggregate.json()["fields"]


def test_fill_monitoring_costs_per_symbol_not_per_order(client, simulator_account, celery_worker):
    """Five legs fill at once: one open-orders call and one trades call for the symbol, not one per leg."""
    account = simulator_account
    group = _open(client, account, {"tp_mode": "aggregate"}, price="65000")
    account.simulator.set_price("BTCUSDT", "63000")
    before = account.simulator.stats()["requests_by_endpoint"]
    monitor.monitor_fills()
    after = account.simulator.stats()["requests_by_endpoint"]
    calls = {route: count - before.get(route, 0) for route, count in after.items() if count > before.get(route, 0)}
    assert calls.get("GET /api/v3/myTrades") == 1, calls
    assert calls.get("GET /api/v3/openOrders") == 1, calls
    group.refresh_from_db()
    assert group.status == "active"
    assert set(group.dca_orders.values_list("status", flat=True)) == {"filled"}
    assert group.fills.count() == 5 and all(f.fee > 0 for f in group.fills.all())


def test_a_close_after_a_partial_risk_sale_sells_what_is_left(client, simulator_account, celery_worker):
    """A winner that sold part of its holding to offset a loser (a filled market sell of purpose `risk`) and
    is closed later sells everything it still holds: the earlier sale is not mistaken for the close order."""
    from django.db import transaction

    from positions.services import orders
    from positions.services.exits import market_sell_intent

    account = simulator_account
    group = _open(client, account)
    held = group.filled_quantity
    partial = (held / 2).quantize(Decimal("0.00001"), "ROUND_DOWN")
    with transaction.atomic():
        locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
        sale = market_sell_intent(locked, quantity=partial, purpose="risk", reference_price=Decimal("65000"))
    assert orders.order_submit(order_id=sale.pk) in (orders.PLACED, orders.SETTLED)
    sale.refresh_from_db()
    group.refresh_from_db()
    assert sale.status == "filled" and group.filled_quantity == held - partial

    assert group_close(group_id=group.pk, purpose="exit_signal")
    group.refresh_from_db()
    assert group.status == "closed"
    close = ExitOrder.objects.get(group=group, order_type="market", purpose="exit_signal")
    assert close.status == "filled" and close.quantity > 0
    assert group.filled_quantity < Decimal("0.00001")  # no more than dust below the step is left
    sold = sum(Decimal(o["executedQty"]) for o in account.orders() if o["side"] == "SELL")
    bought = sum(Decimal(o["executedQty"]) for o in account.orders() if o["side"] == "BUY")
    assert bought - sold < Decimal("0.00001") + held * Decimal("0.001")  # only the base fees stay unsold
