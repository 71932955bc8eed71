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
