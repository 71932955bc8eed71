"""Waiting queue over the API: priority order, promote (pool cap), force-add, delete, own data only."""

from __future__ import annotations

from decimal import Decimal

import pytest

from positions.models import PositionGroup, QueuedSignal
from positions.services.configs import config_set
from positions.tests.conftest import alert, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_queue_listing_promote_force_add_and_delete(client, api_client, trader, sim_config, user_factory):
    config_set(user=trader, data={"max_open_groups": 1}, partial=True)
    post(client, trader, alert(trader.webhook_secret))
    for index, symbol in enumerate(("ETHUSDT", "SOLUSDT")):
        queued = post(
            client,
            trader,
            alert(
                trader.webhook_secret,
                tv={"symbol": symbol, "entry_price": "100"},
                strategy_info={"trade_id": f"Q{index}"},
            ),
        )
        assert queued.json()["classification"] == "queued"
    api_client.force_authenticate(trader)
    body = api_client.get("/api/queue").json()
    assert body["pool"] == {"used": 1, "max": 1} and body["rules"][0] == "pyramid_continuation"
    listed = body["entries"]
    assert [row["symbol"] for row in listed] == ["ETH/USDT", "SOL/USDT"]
    first, second = listed
    full = api_client.post(f"/api/queue/{first['id']}/promote")
    assert full.status_code == 409 and full.json()["error"] == "pool_full"
    forced = api_client.post(f"/api/queue/{first['id']}/force-add")
    assert forced.status_code == 200
    assert PositionGroup.objects.filter(symbol="ETH/USDT").exists()
    stranger = user_factory()
    api_client.force_authenticate(stranger)
    assert api_client.delete(f"/api/queue/{second['id']}").status_code == 404
    api_client.force_authenticate(trader)
    assert api_client.delete(f"/api/queue/{second['id']}").json() == {"success": True}
    assert not QueuedSignal.objects.exists()


def test_closing_a_group_promotes_the_deepest_loss_first(client, trader, sim_config):
    from positions.services.queue import queue_promote
    from positions.services.state import group_transition

    config_set(user=trader, data={"max_open_groups": 1}, partial=True)
    first = post(client, trader, alert(trader.webhook_secret)).json()["group_id"]
    for index, (symbol, price) in enumerate((("ETHUSDT", "3000"), ("SOLUSDT", "200"))):
        post(
            client,
            trader,
            alert(
                trader.webhook_secret,
                tv={"symbol": symbol, "entry_price": price},
                strategy_info={"trade_id": f"Q{index}"},
            ),
        )
    assert queue_promote(user_id=trader.pk) == []  # the pool is still full
    group_transition(group_id=first, to="closed", reason="test")
    # SOL trades 10 % under its queued entry, ETH 1 %: SOL goes first, ETH keeps waiting.
    promoted = queue_promote(user_id=trader.pk, prices={"ETH/USDT": Decimal("2970"), "SOL/USDT": Decimal("180")})
    assert len(promoted) == 1
    group = PositionGroup.objects.get(pk=promoted[0])
    assert group.symbol == "SOL/USDT" and group.status == "waiting"
    assert group.pyramids.get().entry_price == Decimal("200")
    assert list(QueuedSignal.objects.values_list("symbol", flat=True)) == ["ETH/USDT"]


def test_promotion_checks_the_guards_again_and_keeps_a_refused_entry_queued_with_the_reason(
    client, api_client, trader, sim_config
):
    from positions import hooks
    from positions.services.queue import queue_promote
    from positions.services.state import group_transition

    # Every new group's capital is the default 200, counted as exposure from the moment it opens.
    config_set(user=trader, data={"max_open_groups": 3, "max_total_exposure_usd": "500"}, partial=True)
    opened = {
        symbol: post(
            client, trader, alert(trader.webhook_secret, tv={"symbol": symbol}, strategy_info={"trade_id": symbol})
        ).json()["group_id"]
        for symbol in ("BTCUSDT", "SOLUSDT")
    }
    for symbol in ("BNBUSDT", "ETHUSDT", "XRPUSDT"):  # 400 + 200 passes 500: BNB, ETH and XRP wait
        body = alert(trader.webhook_secret, tv={"symbol": symbol}, strategy_info={"trade_id": symbol})
        assert post(client, trader, body).json()["classification"] == "queued"
    QueuedSignal.objects.filter(symbol="BNB/USDT").delete()
    announced: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(announced.append)
    try:
        group_transition(group_id=opened["SOLUSDT"], to="closed", reason="test")
        # Two free slots, but ETH's group brings exposure to 200 + 200 and XRP's would pass 500.
        promoted = queue_promote(user_id=trader.pk, prices={})
        assert [PositionGroup.objects.get(pk=pk).symbol for pk in promoted] == ["ETH/USDT"]
        waiting = QueuedSignal.objects.get()
        assert waiting.symbol == "XRP/USDT"
        reason = "exposure: exposure 400.00 + 200.00 would pass max_total_exposure_usd 500"
        assert waiting.blocked_reason == reason
        api_client.force_authenticate(trader)
        assert api_client.get("/api/queue").json()["entries"][0]["blocked_reason"] == reason
        (event,) = [e for e in announced if e.kind == hooks.GUARD_REFUSED]
        assert event.data["guard"] == "exposure" and event.data["outcome"] == "kept queued"
        assert event.data["symbol"] == "XRP/USDT" and event.data["reason"] == reason
        # Still blocked at the next promotion: the same reason is not told again.
        assert queue_promote(user_id=trader.pk, prices={}) == []
        assert len([e for e in announced if e.kind == hooks.GUARD_REFUSED]) == 1
    finally:
        hooks.engine_event_unsubscribe(announced.append)
    # A force-add ignores the pool's cap, never a guard.
    config_set(user=trader, data={"max_open_groups": 2}, partial=True)
    forced = api_client.post(f"/api/queue/{waiting.pk}/force-add")
    assert forced.status_code == 409 and forced.json()["error"] == "guard_refused"
    assert forced.json()["detail"] == f"A guard keeps it queued: {reason}."
    # The cap is raised: the next promotion admits it.
    config_set(user=trader, data={"max_open_groups": 3, "max_total_exposure_usd": "600"}, partial=True)
    (last,) = queue_promote(user_id=trader.pk, prices={})
    assert PositionGroup.objects.get(pk=last).symbol == "XRP/USDT" and not QueuedSignal.objects.exists()


def test_an_entry_the_exposure_cap_keeps_does_not_stop_the_next_ranked_one(client, trader, sim_config):
    from positions.services.queue import queue_ordered, queue_promote

    # ETH's groups take 400 (its override), every other symbol's the default 200.
    config_set(
        user=trader,
        data={
            "max_open_groups": 1,
            "max_total_exposure_usd": "500",
            "overrides": {"ETH/USDT": {"capital_usd": "400"}},
        },
        partial=True,
    )
    post(client, trader, alert(trader.webhook_secret, strategy_info={"trade_id": "BTC"}))
    for symbol in ("ETHUSDT", "SOLUSDT"):
        body = alert(trader.webhook_secret, tv={"symbol": symbol}, strategy_info={"trade_id": symbol})
        assert post(client, trader, body).json()["classification"] == "queued"
    assert [e.symbol for e in queue_ordered(user=trader.pk, prices={})] == ["ETH/USDT", "SOL/USDT"]
    config_set(user=trader, data={"max_open_groups": 3}, partial=True)
    # Two free slots and 200 held: ETH, first in order, would take exposure to 600 and stays queued;
    # SOL, next, fits (400) and opens.
    refusals: dict[str, str] = {}
    promoted = queue_promote(user_id=trader.pk, prices={}, refusals=refusals)
    assert [PositionGroup.objects.get(pk=pk).symbol for pk in promoted] == ["SOL/USDT"]
    waiting = QueuedSignal.objects.get()
    reason = "exposure: exposure 200.00 + 400.00 would pass max_total_exposure_usd 500"
    assert waiting.symbol == "ETH/USDT" and waiting.blocked_reason == reason
    assert refusals == {str(waiting.pk): reason}
    assert not PositionGroup.objects.filter(symbol="ETH/USDT").exists()
