"""Risk endpoints without an exchange: flags (404 / 409 / audited), the status body, folded "nothing done"."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import AuditLog
from positions.models import PositionGroup
from riskengine.models import RiskAction
from riskengine.services import risk_evaluate

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(trader, sim_config) -> PositionGroup:
    return PositionGroup.objects.create(
        user=trader,
        exchange_config=sim_config,
        symbol="BTC/USDT",
        timeframe="1h",
        status="active",
        filled_quantity=Decimal("0.01"),
        total_cost=Decimal("650"),
        pyramid_count=1,
        max_pyramids=1,
    )


def test_flags_block_unblock_skip_once(api_client, trader, group, user_factory):
    api_client.force_authenticate(user_factory())
    assert api_client.post(f"/api/risk/groups/{group.pk}/block").status_code == 404
    assert api_client.post("/api/risk/groups/not-a-uuid/block").status_code == 404
    api_client.force_authenticate(trader)
    assert api_client.post(f"/api/risk/groups/{group.pk}/block").json() == {
        "group_id": str(group.pk),
        "blocked": True,
        "skip_once": False,
    }
    assert api_client.post(f"/api/risk/groups/{group.pk}/skip-once").json()["skip_once"] is True
    assert api_client.post(f"/api/risk/groups/{group.pk}/unblock").json()["blocked"] is False
    assert AuditLog.objects.filter(action="risk_flags", resource_id=str(group.pk)).count() == 3
    PositionGroup.objects.filter(pk=group.pk).update(status="closed")
    refused = api_client.post(f"/api/risk/groups/{group.pk}/block")
    assert (
        refused.status_code == 409 and refused.json()["detail"] == "Cannot change its risk flags: the group is closed."
    )
    group.refresh_from_db()
    assert group.risk_blocked is False  # nothing changed on a refused request


def test_status_body_and_folded_nothing_done(api_client, trader, group):
    api_client.force_authenticate(trader)
    body = api_client.get("/api/risk").json()
    assert set(body) >= {"enabled", "config", "groups", "plan", "actions"}
    assert body["config"]["loss_threshold_percent"] == "-5" and body["plan"] is None
    row = body["groups"][0]
    assert row["group_id"] == str(group.pk) and not row["eligible"]
    assert row["why_not"]  # no price (no exchange here), or a loss far above the threshold
    first = risk_evaluate(user_id=trader.pk)
    second = risk_evaluate(user_id=trader.pk)
    assert first.pk == second.pk and second.repeats == 2 and second.reason == "no eligible loser"
    assert RiskAction.objects.count() == 1
    assert api_client.get("/api/risk").json()["actions"][0]["repeats"] == 2
