"""/api/config and /api/grid/preview: what the user set is what is used, and defaults never refuse it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from positions.models import EngineConfig, Pyramid
from positions.tests.conftest import alert, post
from positions.tests.test_config import GENERATOR, GENERATOR_TOTAL

pytestmark = pytest.mark.django_db

LEVELS = [
    {"gap_percent": "0", "weight_percent": "50", "tp_percent": "1"},
    {"gap_percent": "-1", "weight_percent": "50", "tp_percent": "1"},
]


def _preview(auth_client: Any, config: dict[str, Any] | None = None) -> list[dict[str, str]]:
    body: dict[str, Any] = {"entry_price": "65000", "exchange": "simulator", "symbol": "BTC/USDT"}
    if config is not None:
        body["config"] = config
    response = auth_client.post("/api/grid/preview", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _stored(user: Any) -> dict[str, Any]:
    return EngineConfig.objects.get(user=user).data


# -------------------------------------------------------------------------------- a generator's own sizes


def test_put_generator_without_capital_keeps_its_sizes(auth_client, sim_config) -> None:
    response = auth_client.put("/api/config", {"generator": GENERATOR}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert "capital_usd" not in body and "levels" not in body
    assert body["generator"] == GENERATOR
    assert auth_client.get("/api/config").json() == body
    assert _stored(auth_client.user) == {"generator": GENERATOR}
    # The user's stored config previews at the generator's sizes: base 20 USDT, not ≈ 3.98.
    legs = _preview(auth_client)
    assert (legs[0]["quantity"], legs[0]["notional"]) == ("0.00030", "19.5")
    assert legs[-1]["quantity"] == "0.00655"  # 341.71875 / 52130.71 → 0.00655
    # GET then PUT back (what a settings form does) is accepted and changes nothing.
    again = auth_client.put("/api/config", body, format="json")
    assert again.status_code == 200, again.content
    assert again.json() == body


def test_preview_of_a_given_generator_keeps_its_sizes(auth_client, sim_config) -> None:
    legs = _preview(auth_client, {"generator": GENERATOR})
    assert (legs[0]["quantity"], legs[0]["notional"]) == ("0.00030", "19.5")
    scaled = _preview(auth_client, {"generator": GENERATOR, "capital_usd": "2010.3125"})
    assert scaled[-1]["quantity"] == "0.01311"  # twice the total: 683.4375 / 52130.71 → 0.01311


def test_patch_generator_over_levels(auth_client, sim_config) -> None:
    # Levels with the default capital, then a generator: the generator's sizes stand.
    assert auth_client.put("/api/config", {"levels": LEVELS}, format="json").status_code == 200
    response = auth_client.patch("/api/config", {"generator": GENERATOR}, format="json")
    assert response.status_code == 200, response.content
    assert "levels" not in response.json() and "capital_usd" not in response.json()
    assert _preview(auth_client)[0]["quantity"] == "0.00030"
    # A capital the user set is their choice: the generator is scaled to it ...
    assert auth_client.patch("/api/config", {"capital_usd": "2010.3125"}, format="json").status_code == 200
    assert _preview(auth_client)[-1]["quantity"] == "0.01311"
    # ... until they unset it with null.
    response = auth_client.patch("/api/config", {"capital_usd": None}, format="json")
    assert response.status_code == 200 and "capital_usd" not in response.json()
    assert _preview(auth_client)[-1]["quantity"] == "0.00655"
    assert _stored(auth_client.user) == {"generator": GENERATOR}


@pytest.mark.django_db(transaction=True)
def test_a_webhook_opens_the_generators_pyramid_at_its_own_capital(client, auth_client, sim_config) -> None:
    assert auth_client.put("/api/config", {"generator": GENERATOR}, format="json").status_code == 200
    trader = auth_client.user
    response = post(client, trader, alert(trader.webhook_secret))
    assert response.status_code == 202, response.content
    pyramid = Pyramid.objects.get(group_id=response.json()["group_id"], index=0)
    assert pyramid.capital_usd == GENERATOR_TOTAL


# -------------------------------------------------------------------------------- defaults never refuse


@pytest.mark.parametrize("method", ["put", "patch"])
def test_max_pyramids_one_is_accepted(auth_client, method: str) -> None:
    response = getattr(auth_client, method)("/api/config", {"max_pyramids": 1}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["max_pyramids"] == 1 and body["pyramid_specific_levels"] == {}
    assert _stored(auth_client.user) == {"max_pyramids": 1}


def test_patch_max_pyramids_one_over_a_stored_config_holding_every_default(auth_client) -> None:
    # Configs stored before held every default, {"1": []} included; and a settings form sends it back.
    full = auth_client.get("/api/config").json()
    assert full["pyramid_specific_levels"] == {"1": []}
    assert auth_client.put("/api/config", full, format="json").status_code == 200
    response = auth_client.patch("/api/config", {"max_pyramids": 1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["max_pyramids"] == 1


def test_values_the_user_sent_are_checked_against_each_other(auth_client) -> None:
    refused = auth_client.put(
        "/api/config", {"max_pyramids": 1, "pyramid_specific_levels": {"1": LEVELS}}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["fields"] == {
        "pyramid_specific_levels.1": ["pyramid index must be below max_pyramids (1), got 1"]
    }
    # A value stored earlier is the user's too: lowering max_pyramids below it is refused, and nothing changes.
    assert auth_client.put("/api/config", {"pyramid_capitals": {"3": "50"}}, format="json").status_code == 200
    refused = auth_client.patch("/api/config", {"max_pyramids": 2}, format="json")
    assert refused.status_code == 400
    assert refused.json()["fields"] == {"pyramid_capitals.3": ["pyramid index must be below max_pyramids (2), got 3"]}
    assert _stored(auth_client.user) == {"pyramid_capitals": {"3": "50"}}


def test_put_stores_only_what_was_sent_and_reads_back_with_defaults(auth_client) -> None:
    response = auth_client.put("/api/config", {"stop_loss_percent": "7", "capital_usd": 150}, format="json")
    assert response.status_code == 200
    assert _stored(auth_client.user) == {"stop_loss_percent": "7", "capital_usd": 150}
    body = auth_client.get("/api/config").json()
    assert body["stop_loss_percent"] == "7" and body["capital_usd"] == 150
    assert body["trailing_stop_percent"] == "3" and len(body["levels"]) == 5
    # PUT replaces the whole object: what it does not send is back to its default.
    assert auth_client.put("/api/config", {"max_pyramids": 2}, format="json").status_code == 200
    body = auth_client.get("/api/config").json()
    assert body["stop_loss_percent"] is None and body["capital_usd"] == "200"


def test_preview_of_levels_with_max_pyramids_one(auth_client, sim_config) -> None:
    legs = _preview(auth_client, {"levels": LEVELS, "capital_usd": "100", "max_pyramids": 1})
    # 50 USDT at 65000 → 0.00076; 50 USDT at 64350 → 0.00077.
    assert [(leg["price"], leg["quantity"]) for leg in legs] == [("65000.00", "0.00076"), ("64350.00", "0.00077")]
    assert sum(Decimal(leg["notional"]) for leg in legs) <= Decimal(100)


@pytest.mark.parametrize("index", ["x", "1.5", 1.5, True, -1, [1]])
def test_preview_refuses_a_pyramid_index_that_is_not_a_whole_number(auth_client, sim_config, index: object) -> None:
    body = {"entry_price": "65000", "exchange": "simulator", "symbol": "BTC/USDT", "pyramid_index": index}
    response = auth_client.post("/api/grid/preview", body, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"pyramid_index": ["must be a whole number >= 0"]}


def test_preview_of_another_pyramid_uses_its_capital(auth_client, sim_config) -> None:
    config = {"levels": LEVELS, "capital_usd": "100", "pyramid_capitals": {"1": "200"}, "max_pyramids": 2}
    for index in (1, "1"):
        body = {"entry_price": "65000", "exchange": "simulator", "symbol": "BTC/USDT", "config": config}
        response = auth_client.post("/api/grid/preview", {**body, "pyramid_index": index}, format="json")
        assert response.status_code == 200, response.content
        # 100 USDT at 65000 → 0.00153.
        assert response.json()[0]["quantity"] == "0.00153"
    out_of_range = auth_client.post("/api/grid/preview", {**body, "pyramid_index": 2}, format="json")
    assert out_of_range.status_code == 400 and out_of_range.json()["error"] == "pyramid_out_of_range"
