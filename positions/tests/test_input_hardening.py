"""Junk in the config, the filters and the grid preview is a 400 naming the field, and nothing is stored
(docs/security.md#input): a stored config can never break a later webhook."""

from __future__ import annotations

import json
from typing import Any

import pytest

from positions.models import EngineConfig, PositionGroup
from positions.tests.conftest import alert, post

pytestmark = pytest.mark.django_db

PREVIEW = {"entry_price": "65000", "exchange": "simulator", "symbol": "BTC/USDT"}


def _raw(client: Any, method: str, url: str, text: str) -> Any:
    return client.generic(method, url, text.encode("utf-8", "surrogatepass"), content_type="application/json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"capital_usd": "1e309"}', "capital_usd"),
        ('{"capital_usd": 1e30}', "capital_usd"),
        ('{"capital_usd": "\\u0661\\u0662\\u0663"}', "capital_usd"),
        ('{"trailing_stop_percent": "1e-30"}', "trailing_stop_percent"),
        ('{"overrides": {"BTC/USDT\\u0000": {}}}', "overrides"),
        ('{"overrides": {"BTC/USDT": {"capital_usd": "\\ud800"}}}', "overrides.BTC/USDT.capital_usd"),
        ('{"x": ' + "[" * 3000 + "]" * 3000 + "}", "body"),
    ],
)
def test_junk_in_the_config_is_a_400_and_nothing_is_stored(auth_client, body, field):
    response = _raw(auth_client, "PATCH", "/api/config", body)
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert any(name.startswith(field) for name in fields), fields
    assert not EngineConfig.objects.filter(user=auth_client.user).exclude(data={}).exists()


@pytest.mark.django_db(transaction=True)  # the webhook's view runs on a connection of its own
def test_a_refused_config_leaves_the_webhook_working(client, auth_client, sim_config):
    assert _raw(auth_client, "PUT", "/api/config", '{"capital_usd": "1e309"}').status_code == 400
    trader = auth_client.user
    assert post(client, trader, alert(trader.webhook_secret)).status_code == 202
    assert PositionGroup.objects.filter(user=trader).count() == 1


@pytest.mark.parametrize("query", ["symbol=BTC%00USDT", "status=%00", "symbol=%00&status=open"])
def test_nul_in_a_filter_is_a_400_naming_it(auth_client, query):
    response = auth_client.get(f"/api/positions?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert set(response.json()["fields"]) <= {"symbol", "status"}


def test_nul_in_a_path_is_a_400(auth_client):
    assert auth_client.delete("/api/keys/sim%00ulator").status_code == 400


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entry_price": "1e309"}, "entry_price"),
        ({"entry_price": "\u0661\u0662\u0663"}, "entry_price"),
        ({"entry_price": "NaN"}, "entry_price"),
        ({"pyramid_index": 1.5}, "pyramid_index"),
        ({"pyramid_index": "1.5"}, "pyramid_index"),
        ({"symbol": "BTC\x00USDT"}, "symbol"),
        (
            {
                "config": {
                    "capital_usd": "1e309",
                    "levels": [{"gap_percent": 0, "weight_percent": 100, "tp_percent": 1}],
                }
            },
            "config.capital_usd",
        ),
    ],
)
def test_junk_in_the_grid_preview_is_a_400_naming_the_field(auth_client, sim_config, change, field):
    response = _raw(auth_client, "POST", "/api/grid/preview", json.dumps({**PREVIEW, **change}))
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
