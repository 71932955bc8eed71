"""The aggregate take-profit's percent: the live exit check and the grid preview use the same one
(docs/engine.md#aggregate): a generated grid's `tp_percent`, else `tp_aggregate_percent`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.jsontypes import JSONValue
from positions.models import PositionGroup
from positions.rules.exits import ExitSettings
from positions.services import monitor
from positions.services.configs import config_set
from positions.tests.conftest import alert, post

pytestmark = pytest.mark.django_db(transaction=True)

TICK = Decimal("0.01")  # the simulator's BTC/USDT tick (positions/tests/conftest.py loads its rules)
GENERATOR: dict[str, JSONValue] = {
    "base_order_usd": "100",
    "safety_order_usd": "50",
    "max_safety_orders": 2,
    "price_deviation_percent": "1",
    "tp_percent": "2",
}


def _preview_first_leg(api_client, trader) -> dict:
    api_client.force_authenticate(trader)
    answer = api_client.post(
        "/api/grid/preview", {"exchange": "simulator", "symbol": "BTCUSDT", "entry_price": "65000"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    return answer.json()[0]


def _opened_with_first_leg_filled(client, trader, leg: dict) -> PositionGroup:
    """A group opened by the intake (its config snapshot taken there) whose first leg filled at its price."""
    answer = post(client, trader, alert(trader.webhook_secret, tv={"entry_price": "65000"}))
    group = PositionGroup.objects.get(pk=answer.json()["group_id"])
    PositionGroup.objects.filter(pk=group.pk).update(
        status="active", avg_entry_price=Decimal(leg["cum_avg_price"]), filled_quantity=Decimal(leg["quantity"])
    )
    return group


def test_a_generated_grid_closes_at_the_previews_cumulative_tp(client, api_client, trader, sim_config):
    # The generator's TP (2 %) is the grid's aggregate TP; the 1.5 % set beside it is not used.
    config_set(
        user=trader,
        data={"generator": GENERATOR, "tp_mode": "aggregate", "tp_aggregate_percent": "1.5"},
        partial=True,
    )
    leg = _preview_first_leg(api_client, trader)
    assert (leg["cum_avg_price"], leg["cum_tp_price"]) == ("65000.00", "66300.00")
    group = _opened_with_first_leg_filled(client, trader, leg)
    assert ExitSettings.aggregate_percent_of(group.config) == Decimal("2")
    assert monitor.exit_settings(group).tp_aggregate_percent == Decimal("2")
    target = Decimal(leg["cum_tp_price"])
    assert monitor.exit_trigger(group_id=group.pk, price=target - TICK) is None
    assert monitor.exit_trigger(group_id=group.pk, price=target) == "tp_aggregate"


def test_a_grid_of_levels_keeps_tp_aggregate_percent(client, api_client, trader, sim_config):
    # The levels' own TPs (1 %, 0.5 %, ...) are per-leg TPs: the aggregate check uses tp_aggregate_percent.
    config_set(user=trader, data={"tp_mode": "hybrid", "tp_aggregate_percent": "1.5"}, partial=True)
    leg = _preview_first_leg(api_client, trader)
    assert (leg["cum_avg_price"], leg["cum_tp_price"], leg["tp_price"]) == ("65000.00", "65975.00", "65650.00")
    group = _opened_with_first_leg_filled(client, trader, leg)
    assert ExitSettings.aggregate_percent_of(group.config) == Decimal("1.5")
    target = Decimal(leg["cum_tp_price"])
    assert monitor.exit_trigger(group_id=group.pk, price=target - TICK) is None
    assert monitor.exit_trigger(group_id=group.pk, price=target) == "tp_aggregate"


def test_a_snapshot_without_the_keys_takes_the_default_percent() -> None:
    # A group opened before a key existed lacks it in its snapshot: the default applies (positions.config).
    assert ExitSettings.aggregate_percent_of({}) == Decimal("1.5")
    assert ExitSettings.aggregate_percent_of({"generator": {**GENERATOR, "tp_percent": "0.8"}}) == Decimal("0.8")
