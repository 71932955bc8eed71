"""Waiting queue over the API: priority order, promote (pool cap), force-add, delete, own data only."""

from __future__ import annotations

import pytest

from positions.models import PositionGroup
from positions.services.configs import config_set
from positions.tests.conftest import alert, post
from riskengine.models import QueuedSignal

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
    listed = api_client.get("/api/queue").json()
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
