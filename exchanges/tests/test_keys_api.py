"""Key endpoints (/api/keys...): every status and field error, ownership, and no secret in any answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLog, SystemLog
from accounts.tests.factories import UserClient, UserFactory
from exchanges.models import ExchangeConfig

from .factories import ExchangeConfigFactory

pytestmark = pytest.mark.django_db

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duA4B1"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PASSWORD = "passphrase-Zq81xW"


def body(**overrides: Any) -> dict[str, Any]:
    return {"mode": "testnet", "api_key": API_KEY, "api_secret": API_SECRET, **overrides}


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_no_secret(text: str) -> None:
    for secret in (API_KEY, API_SECRET, PASSWORD, API_KEY[:-4]):
        assert secret not in text


def test_store_creates_then_replaces(auth_client: UserClient) -> None:
    created = auth_client.post("/api/keys/binance", body(password=PASSWORD), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["exchange"] == "binance"
    assert created.json()["mode"] == "testnet"
    assert created.json()["api_key_masked"] == "****A4B1"
    assert created.json()["is_validated"] is False
    replaced = auth_client.post("/api/keys/Binance", body(mode="paper", api_key="other-key-1234XYZW"), format="json")
    assert replaced.status_code == 200
    assert replaced.json()["api_key_masked"] == "****XYZW"
    assert ExchangeConfig.objects.filter(user=auth_client.user).count() == 1
    config = ExchangeConfig.objects.get(user=auth_client.user)
    assert config.credentials().api_key == "other-key-1234XYZW"
    assert config.credentials().password is None
    assert_no_secret(created.content.decode() + replaced.content.decode())


def test_list_is_masked_and_only_mine(auth_client: UserClient) -> None:
    auth_client.post("/api/keys/simulator", body(), format="json")
    ExchangeConfigFactory.create(exchange_name="kraken")  # someone else's
    listed = auth_client.get("/api/keys")
    assert listed.status_code == 200
    rows = listed.json()
    assert [row["exchange"] for row in rows] == ["simulator"]
    assert set(rows[0]) >= {
        "exchange",
        "mode",
        "api_key_masked",
        "is_enabled",
        "is_validated",
        "last_validated",
        "validation_message",
    }
    assert_no_secret(listed.content.decode())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(mode="sandbox"), "mode"),
        ({"api_key": API_KEY, "api_secret": API_SECRET}, "mode"),
        (body(api_key=""), "api_key"),
        (body(api_key="   "), "api_key"),
        (body(api_secret=""), "api_secret"),
        (body(api_key="x" * 513), "api_key"),
        (body(api_secret="y" * 513), "api_secret"),
        (body(password="z" * 513), "password"),
        (body(api_key="has space inside"), "api_key"),
        (body(api_key=["list"]), "api_key"),
        (body(extra="nope"), "extra"),
        (body(mode="live"), "confirm_live"),
        (body(mode="live", confirm_live=False), "confirm_live"),
    ],
)
def test_store_field_errors(auth_client: UserClient, payload: dict[str, Any], field: str) -> None:
    response = auth_client.post("/api/keys/binance", payload, format="json")
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["error"] == "invalid"
    assert field in data["fields"], data
    assert not ExchangeConfig.objects.exists()
    assert_no_secret(response.content.decode())


def test_unknown_exchange_names_the_field(auth_client: UserClient) -> None:
    response = auth_client.post("/api/keys/notanexchange", body(), format="json")
    assert response.status_code == 400
    assert "exchange" in response.json()["fields"]
    for method in ("put",):
        assert getattr(auth_client, method)("/api/keys/notanexchange/validate").status_code == 400
    assert auth_client.delete("/api/keys/notanexchange").status_code == 400


def test_malformed_json_is_a_clear_400(auth_client: UserClient) -> None:
    response = auth_client.generic("POST", "/api/keys/binance", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"
    response = auth_client.post("/api/keys/binance", json.dumps([1, 2]), content_type="application/json")
    assert response.status_code == 400


def test_live_needs_confirmation(auth_client: UserClient) -> None:
    response = auth_client.post("/api/keys/binance", body(mode="live", confirm_live=True), format="json")
    assert response.status_code == 201
    assert response.json()["mode"] == "live"
    assert response.json()["live_confirmed_at"] is not None


def test_mode_switch(auth_client: UserClient) -> None:
    auth_client.post("/api/keys/binance", body(mode="paper"), format="json")
    assert auth_client.put("/api/keys/binance/mode", {"mode": "live"}, format="json").status_code == 400
    bad = auth_client.put("/api/keys/binance/mode", {"mode": "moon"}, format="json")
    assert bad.status_code == 400 and "mode" in bad.json()["fields"]
    unknown = auth_client.put("/api/keys/binance/mode", {"mode": "testnet", "x": 1}, format="json")
    assert unknown.status_code == 400 and "x" in unknown.json()["fields"]
    live = auth_client.put("/api/keys/binance/mode", {"mode": "live", "confirm_live": True}, format="json")
    assert live.status_code == 200 and live.json()["mode"] == "live"
    back = auth_client.put("/api/keys/binance/mode", {"mode": "paper"}, format="json")
    assert back.json()["mode"] == "paper" and back.json()["live_confirmed_at"] is None
    config = ExchangeConfig.objects.get(user=auth_client.user)
    assert config.credentials().api_secret == API_SECRET  # nothing else changed


def test_delete(auth_client: UserClient) -> None:
    auth_client.post("/api/keys/binance", body(), format="json")
    assert auth_client.delete("/api/keys/binance").status_code == 204
    assert not ExchangeConfig.objects.exists()
    assert auth_client.delete("/api/keys/binance").status_code == 404


def test_other_users_configs_are_not_found(auth_client: UserClient) -> None:
    other = ExchangeConfigFactory.create(exchange_name="binance", api_key=API_KEY, api_secret=API_SECRET)
    assert auth_client.put("/api/keys/binance/validate").status_code == 404
    assert auth_client.put("/api/keys/binance/mode", {"mode": "paper"}, format="json").status_code == 404
    assert auth_client.delete("/api/keys/binance").status_code == 404
    assert ExchangeConfig.objects.get(pk=other.pk).mode == "testnet"


def test_viewers_read_but_do_not_write() -> None:
    viewer = UserFactory.create(role="viewer")
    client = client_for(viewer)
    assert client.get("/api/keys").status_code == 200
    assert client.post("/api/keys/binance", body(), format="json").status_code == 403
    assert client.put("/api/keys/binance/mode", {"mode": "paper"}, format="json").status_code == 403
    assert client.delete("/api/keys/binance").status_code == 403


def test_anonymous_is_refused() -> None:
    assert APIClient().get("/api/keys").status_code == 401
    assert APIClient().post("/api/keys/binance", body(), format="json").status_code == 401


def test_validate_with_a_good_and_a_wrong_key_pair(auth_client: UserClient, simulator: Any, settings: Any) -> None:
    settings.SIMULATOR_URL = simulator.url
    simulator.create_account(API_KEY, API_SECRET, {"USDT": "100"})
    auth_client.post("/api/keys/simulator", body(), format="json")
    good = auth_client.put("/api/keys/simulator/validate")
    assert good.status_code == 200
    assert good.json()["is_validated"] is True
    assert good.json()["last_validated"]

    auth_client.post("/api/keys/simulator", body(api_secret="wrong-" + API_SECRET[6:]), format="json")
    before = ExchangeConfig.objects.get(user=auth_client.user)
    wrong = auth_client.put("/api/keys/simulator/validate")
    assert wrong.status_code == 200
    assert wrong.json()["is_validated"] is False
    assert "rejected the API key pair" in wrong.json()["validation_message"]
    after = ExchangeConfig.objects.get(user=auth_client.user)
    assert (after.mode, after.is_enabled, after.api_secret_encrypted) == (
        before.mode,
        before.is_enabled,
        before.api_secret_encrypted,
    )
    assert_no_secret(good.content.decode() + wrong.content.decode())


def test_validate_an_unreachable_exchange_is_a_reason_not_a_500(auth_client: UserClient, settings: Any) -> None:
    settings.SIMULATOR_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.EXCHANGE_TIMEOUT_MS = 500
    auth_client.post("/api/keys/simulator", body(), format="json")
    response = auth_client.put("/api/keys/simulator/validate")
    assert response.status_code == 200
    assert response.json()["is_validated"] is False
    assert "reach" in response.json()["validation_message"]


def test_everything_is_audited_and_no_log_row_holds_a_secret(
    auth_client: UserClient, simulator: Any, settings: Any
) -> None:
    settings.SIMULATOR_URL = simulator.url
    simulator.create_account(API_KEY, API_SECRET, {"USDT": "100"})
    auth_client.post("/api/keys/simulator", body(password=PASSWORD), format="json")
    auth_client.post("/api/keys/simulator", body(password=PASSWORD), format="json")
    auth_client.put("/api/keys/simulator/validate")
    auth_client.put("/api/keys/simulator/mode", {"mode": "paper"}, format="json")
    auth_client.put("/api/keys/simulator/validate")
    auth_client.delete("/api/keys/simulator")
    actions = list(AuditLog.objects.order_by("timestamp").values_list("action", flat=True))
    assert actions == [
        "exchange_keys_store",
        "exchange_keys_replace",
        "exchange_keys_validate",
        "exchange_mode_change",
        "exchange_keys_validate",
        "exchange_keys_delete",
    ]
    dump = json.dumps([list(AuditLog.objects.values()), list(SystemLog.objects.values())], default=str)
    assert "****A4B1" in dump
    assert_no_secret(dump)


def test_a_config_with_trading_history_is_not_deleted(auth_client: UserClient) -> None:
    # positions sits above exchanges; only this test, of the guard that keeps positions' rows valid,
    # needs one of its models, so the import stays with it rather than making the module depend on positions.
    from positions.models import PositionGroup

    auth_client.post("/api/keys/binance", body(), format="json")
    config = ExchangeConfig.objects.get(user=auth_client.user)
    PositionGroup.objects.create(user=auth_client.user, exchange_config=config, symbol="BTC/USDT", timeframe="1h")
    response = auth_client.delete("/api/keys/binance")
    assert response.status_code == 409
    assert "disable it instead" in response.json()["detail"]
    assert ExchangeConfig.objects.filter(pk=config.pk).exists()
    assert not AuditLog.objects.filter(action="exchange_keys_delete").exists()
