"""`/settings/` (docs/web.md#settings): each form saves through the service the API uses, refuses bad input
next to the field with what was typed kept, never shows a secret, and reads in a fixed number of queries."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import unescape

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from exchanges.models import ExchangeConfig
from exchanges.services import exchange_config_store
from notifications.models import Delivery, NotificationChannel
from positions.config import default_engine_config
from positions.models import EngineConfig
from positions.tests.conftest import load_rules

pytestmark = pytest.mark.django_db

SECRET = "Sup3rSecretValue0123456789abcdef"
KEY = "myApiKey000111222A4B1"


@pytest.fixture
def web(trader):
    client = Client()
    client.force_login(trader)
    client.user = trader
    return client


@pytest.fixture
def simulator_keys(trader):
    config, _ = exchange_config_store(
        user=trader, exchange_name="simulator", mode="testnet", api_key=KEY, api_secret=SECRET
    )
    load_rules("simulator")
    return config


def page_form(html: str) -> dict[str, str | list[str]]:
    """The engine form's fields as the browser would post them untouched (defaults filled in)."""
    form = html[html.index('id="engine-form"') : html.index("</form>", html.index('id="engine-form"'))]
    data: dict[str, str | list[str]] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if kind and kind.group(1) in ("checkbox", "radio"):
            if "checked" in tag:
                data[name.group(1)] = value.group(1) if value and kind.group(1) == "radio" else "on"
            continue
        data[name.group(1)] = (value.group(1) if value else "").replace("&quot;", '"')
    for name, options in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]+)" selected', options)
        first = re.search(r'<option value="([^"]+)"', options)
        data[name] = chosen.group(1) if chosen else (first.group(1) if first else "")
    for name, text in re.findall(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        data[name] = text.replace("&quot;", '"')
    return data


# ------------------------------------------------------------------------------------------------- page


def test_page_answers_its_owner_and_sends_others_to_login(web, client):
    assert web.get("/settings/").status_code == 200
    response = client.get("/settings/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_every_action_needs_the_csrf_token(trader):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(trader)
    for path in (
        "/settings/keys/add",
        "/settings/engine",
        "/settings/overrides",
        "/settings/webhook/regenerate",
        "/settings/notifications/email",
        "/settings/restore",
    ):
        assert strict.post(path, {}).status_code == 403, path


def test_a_viewer_reads_but_cannot_change(db):
    viewer = UserFactory(role="viewer")
    client = Client()
    client.force_login(viewer)
    page = client.get("/settings/")
    assert page.status_code == 200 and b"Save engine config" not in page.content
    assert client.post("/settings/engine", {"capital_usd": "300"}).status_code == 403
    response = client.post(
        "/settings/keys/add", {"exchange": "simulator", "mode": "paper", "api_key": KEY, "api_secret": SECRET}
    )
    assert response.status_code == 403
    assert not EngineConfig.objects.filter(user=viewer).exists() and not ExchangeConfig.objects.exists()


def test_the_page_reads_in_the_same_number_of_queries_with_many_rows(web, trader):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert web.get("/settings/").status_code == 200
        return len(queries)

    exchange_config_store(user=trader, exchange_name="simulator", mode="paper", api_key=KEY, api_secret=SECRET)
    channel = NotificationChannel.objects.create(user=trader, kind="email", enabled=True, address="a@example.com")
    Delivery.objects.create(channel=channel, user=trader, event_type="test", text="one", status="sent")
    EngineConfig.objects.create(user=trader, data={"overrides": {"BTC/USDT": {"capital_usd": "100"}}})
    few = count()
    for name in ("binance", "bybit", "okx", "kucoin"):
        exchange_config_store(user=trader, exchange_name=name, mode="paper", api_key=KEY, api_secret=SECRET)
    for kind in ("telegram", "discord"):
        NotificationChannel.objects.create(user=trader, kind=kind)
    for i in range(19):
        Delivery.objects.create(channel=channel, user=trader, event_type="entry_filled", text=f"m{i}", status="failed")
    EngineConfig.objects.filter(user=trader).update(
        data={"overrides": {f"COIN{i}/USDT": {"capital_usd": "100"} for i in range(12)}}
    )
    assert count() == few


# ------------------------------------------------------------------------------------------- exchange keys


def test_keys_are_stored_through_the_service_and_only_shown_masked(web, trader):
    response = web.post(
        "/settings/keys/add",
        {
            "exchange": " Simulator ",
            "mode": "testnet",
            "api_key": KEY,
            "api_secret": SECRET,
            "password": "Pass-Phrase9",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/settings/#keys"
    config = ExchangeConfig.objects.get(user=trader)
    assert (config.exchange_name, config.mode) == ("simulator", "testnet")
    assert config.credentials().api_secret == SECRET
    html = web.get("/settings/").content.decode()
    assert "****A4B1" in html
    for secret in (KEY, SECRET, "Pass-Phrase9"):
        assert secret not in html


def test_a_refused_key_keeps_what_was_typed_but_never_the_secrets(web):
    response = web.post(
        "/settings/keys/add", {"exchange": "nosuchexchange", "mode": "testnet", "api_key": KEY, "api_secret": SECRET}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="nosuchexchange"' in html and "Unknown exchange" in html
    assert 'id="key-exchange-error"' in html
    assert KEY not in html and SECRET not in html
    assert not ExchangeConfig.objects.exists()


def test_live_mode_needs_the_confirmation(web, trader):
    data = {"exchange": "simulator", "mode": "live", "api_key": KEY, "api_secret": SECRET}
    refused = web.post("/settings/keys/add", data)
    assert refused.status_code == 400 and b"real money" in refused.content
    assert not ExchangeConfig.objects.exists()
    assert web.post("/settings/keys/add", {**data, "confirm_live": "on"}).status_code == 302
    config = ExchangeConfig.objects.get(user=trader)
    assert config.mode == "live" and config.live_confirmed_at is not None


def test_mode_switch_and_delete_go_through_the_services(web, trader, simulator_keys):
    web.post("/settings/keys/simulator/mode", {"mode": "live"})
    assert ExchangeConfig.objects.get(pk=simulator_keys.pk).mode == "testnet"  # not confirmed: refused
    web.post("/settings/keys/simulator/mode", {"mode": "live", "confirm_live": "on"})
    assert ExchangeConfig.objects.get(pk=simulator_keys.pk).mode == "live"
    web.post("/settings/keys/simulator/mode", {"mode": "paper"})
    assert ExchangeConfig.objects.get(pk=simulator_keys.pk).mode == "paper"
    assert web.post("/settings/keys/simulator/delete").status_code == 302
    assert not ExchangeConfig.objects.filter(user=trader).exists()


def test_another_users_keys_are_not_found(web, db):
    other = UserFactory()
    exchange_config_store(user=other, exchange_name="binance", mode="paper", api_key=KEY, api_secret=SECRET)
    for action in ("validate", "mode", "delete"):
        assert web.post(f"/settings/keys/binance/{action}", {"mode": "paper"}).status_code == 404
    assert ExchangeConfig.objects.filter(user=other).exists()


def test_validate_tests_the_connection_against_the_simulator(trader, simulator_account):
    client = Client()
    client.force_login(trader)
    name = simulator_account.config.exchange_name
    response = client.post(f"/settings/keys/{name}/validate", follow=True)
    assert response.status_code == 200
    assert ExchangeConfig.objects.get(pk=simulator_account.config.pk).is_validated
    assert b"connection works" in response.content


# ------------------------------------------------------------------------------------------ engine config


def test_the_untouched_form_saves_nothing_but_what_was_changed(web, trader):
    data = page_form(web.get("/settings/").content.decode())
    assert data["levels[0].weight_percent"] == "20" and data["max_open_groups"] == "10"
    data["capital_usd"] = "350"
    data["max_open_groups"] = "4"
    data.pop("risk_enabled")  # unticked
    response = web.post("/settings/engine", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = EngineConfig.objects.get(user=trader).data
    assert stored == {"capital_usd": "350", "max_open_groups": 4, "risk_enabled": False}
    # Saved again untouched: the same.
    again = page_form(web.get("/settings/").content.decode())
    assert web.post("/settings/engine", again).status_code == 302
    assert EngineConfig.objects.get(user=trader).data == stored


def test_a_bad_level_is_named_in_its_row_with_what_was_typed_and_nothing_saved(web, trader):
    EngineConfig.objects.create(user=trader, data={"capital_usd": "300"})
    data = page_form(web.get("/settings/").content.decode())
    data["levels[2].weight_percent"] = "abc"
    data["trailing_stop_percent"] = "150"
    data["max_open_groups"] = "many"
    response = web.post("/settings/engine", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'name="levels\[2\]\.weight_percent" value="abc"[^>]*aria-invalid="true"', html)
    assert re.search(r'name="trailing_stop_percent"[^>]*value="150"[^>]*aria-invalid="true"', html)
    assert 'id="e-trailing_stop_percent"' in html and "between 0 and 100" in html
    assert re.search(r'name="max_open_groups"[^>]*value="many"[^>]*aria-invalid="true"', html)
    assert EngineConfig.objects.get(user=trader).data == {"capital_usd": "300"}


def test_weights_that_do_not_sum_to_100_are_shown_under_the_table(web, trader):
    data = page_form(web.get("/settings/").content.decode())
    data["levels[4].weight_percent"] = "30"
    response = web.post("/settings/engine", data)
    assert response.status_code == 400
    assert b'id="levels-error"' in response.content and b"must sum to 100" in response.content
    assert not EngineConfig.objects.filter(user=trader).exists()


def test_levels_rows_added_and_left_blank(web, trader):
    data = page_form(web.get("/settings/").content.decode())
    for i in range(5):
        data[f"levels[{i}].weight_percent"] = "10"
    data["levels[5].gap_percent"] = "-3"
    data["levels[5].weight_percent"] = "50"
    data["levels[5].tp_percent"] = "2"
    data["levels[9].gap_percent"] = ""  # a blank row (the browser's spare one) is ignored
    assert web.post("/settings/engine", data).status_code == 302
    levels = EngineConfig.objects.get(user=trader).data["levels"]
    assert len(levels) == 6 and levels[5] == {"gap_percent": "-3", "weight_percent": "50", "tp_percent": "2"}


def test_a_generator_replaces_the_levels_and_its_levels_are_shown(web, trader):
    EngineConfig.objects.create(
        user=trader,
        data={"levels": [{"gap_percent": "0", "weight_percent": "100", "tp_percent": "1"}], "capital_usd": "100"},
    )
    data = page_form(web.get("/settings/").content.decode())
    data.update(
        {
            "grid_source": "generator",
            "capital_usd": "",
            "generator.base_order_usd": "10",
            "generator.safety_order_usd": "20",
            "generator.max_safety_orders": "3",
            "generator.price_deviation_percent": "1",
            "generator.step_scale": "2",
            "generator.volume_scale": "2",
            "generator.tp_percent": "1.5",
        }
    )
    assert web.post("/settings/engine", data).status_code == 302
    stored = EngineConfig.objects.get(user=trader).data
    assert "levels" not in stored and "capital_usd" not in stored
    assert stored["generator"]["max_safety_orders"] == 3
    html = web.get("/settings/").content.decode()
    table = html[html.index('id="generated-levels"') :]
    # Deviations 1, 3, 7 % (step scale 2); orders 10, 20, 40, 80 USD.
    for text in ("SO 3", "-7", "80.00", "53.333"):
        assert text in table[: table.index("</table>")]


def test_bad_generator_values_are_named_and_json_fields_must_parse(web, trader):
    data = page_form(web.get("/settings/").content.decode())
    data.update({"grid_source": "generator", "generator.tp_percent": "-1", "pyramid_capitals": "{nope"})
    response = web.post("/settings/engine", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "not valid JSON" in html and "{nope" in html
    assert "Not saved:" in html
    # The rest of the form is checked too: the generator's bad TP is named beside it as well.
    assert re.search(r'name="generator.tp_percent"[^>]*value="-1"[^>]*aria-invalid="true"', html)
    data["pyramid_capitals"] = ""
    response = web.post("/settings/engine", data)
    html = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'name="generator.tp_percent"[^>]*value="-1"[^>]*aria-invalid="true"', html)
    assert not EngineConfig.objects.filter(user=trader).exists()


# ------------------------------------------------------------------------------------------------ overrides


def test_overrides_accept_tradingview_symbols_and_timeframes(web, trader, simulator_keys):
    response = web.post(
        "/settings/overrides", {"symbol": "BTCUSDT", "timeframe": "60", "values": '{"capital_usd": "500"}'}
    )
    assert response.status_code == 302
    response = web.post("/settings/overrides", {"symbol": "eth/usdt", "values": '{"tp_mode": "aggregate"}'})
    assert response.status_code == 302
    overrides = EngineConfig.objects.get(user=trader).data["overrides"]
    assert overrides == {"BTC/USDT:1h": {"capital_usd": "500"}, "ETH/USDT": {"tp_mode": "aggregate"}}
    # Edit one, remove the other.
    web.post("/settings/overrides", {"scope": "BTC/USDT:1h", "values": '{"capital_usd": "600"}'})
    web.post("/settings/overrides/delete", {"scope": "ETH/USDT"})
    assert EngineConfig.objects.get(user=trader).data["overrides"] == {"BTC/USDT:1h": {"capital_usd": "600"}}
    assert web.post("/settings/overrides/delete", {"scope": "NOPE/USDT"}).status_code == 404


def test_a_bad_override_is_refused_with_the_key_named(web, trader, simulator_keys):
    response = web.post("/settings/overrides", {"symbol": "BTCUSDT", "values": '{"tp_mode": "sideways"}'})
    assert response.status_code == 400
    html = response.content.decode()
    assert "tp_mode: must be one of" in html and 'value="BTCUSDT"' in html and "sideways" in html
    response = web.post("/settings/overrides", {"symbol": "NOTACOIN", "timeframe": "7x", "values": "{}"})
    html = response.content.decode()
    assert response.status_code == 400 and "unknown symbol" in html and "unknown timeframe" in html
    assert not EngineConfig.objects.filter(user=trader).exists()


# -------------------------------------------------------------------------------------------------- webhook


def test_regenerate_makes_a_new_secret(web, trader):
    old = trader.webhook_secret
    assert web.post("/settings/webhook/regenerate").status_code == 302
    trader.refresh_from_db()
    assert trader.webhook_secret != old
    assert trader.webhook_secret in web.get("/settings/").content.decode()


FILLED = {
    "{{exchange}}": "SIMULATOR",
    "{{ticker}}": "BTCUSDT",
    "{{interval}}": "60",
    "{{strategy.market_position_size}}": "0.01",
    "{{strategy.prev_market_position_size}}": "0",
    "{{strategy.order.price}}": "65000",
    "{{close}}": "65000",
    "{{strategy.order.contracts}}": "0.01",
    "{{strategy.order.id}}": "T-1",
    "{{alert_name}}": "grid",
    "{{strategy.order.comment}}": "",
}


def _filled(message: str, **values: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for placeholder, value in {**FILLED, "{{timenow}}": now, **values}.items():
        message = message.replace(placeholder, value)
    return message


@pytest.mark.django_db(transaction=True)
def test_the_alert_messages_filled_in_are_accepted_by_the_webhook(trader, simulator_keys):
    client = Client()
    client.force_login(trader)
    html = client.get("/settings/").content.decode()
    entry = unescape(re.search(r'<textarea id="alert-entry"[^>]*>(.*?)</textarea>', html, re.S).group(1))
    exit_ = unescape(re.search(r'<textarea id="alert-exit"[^>]*>(.*?)</textarea>', html, re.S).group(1))
    shown = re.search(r'<pre class="alert-message" id="alert-entry-shown">(.*?)</pre>', html, re.S).group(1)
    assert trader.webhook_secret not in shown and f"****{trader.webhook_secret[-4:]}" in shown
    assert 'data-copy="#alert-entry"' in html and 'data-copy="#alert-exit"' in html
    assert "{{ticker}}" in entry and trader.webhook_secret in entry
    body = _filled(
        entry,
        **{
            "{{strategy.order.action}}": "buy",
            "{{strategy.market_position}}": "long",
            "{{strategy.prev_market_position}}": "flat",
        },
    )
    response = client.generic("POST", f"/api/webhook/{trader.pk}", body, content_type="text/plain")
    assert response.status_code == 202, response.content
    assert response.json()["classification"] == "new_entry"
    body = _filled(
        exit_,
        **{
            "{{strategy.order.action}}": "sell",
            "{{strategy.market_position}}": "flat",
            "{{strategy.prev_market_position}}": "long",
            "{{strategy.order.id}}": "T-1-exit",
        },
    )
    response = client.generic("POST", f"/api/webhook/{trader.pk}", body, content_type="application/json")
    assert response.status_code in (200, 202), response.content
    assert response.json().get("classification", "exit") == "exit"


# ------------------------------------------------------------------------------------------- notifications


def test_channels_save_through_the_service_and_secrets_stay_hidden(web, trader, settings):
    settings.NOTIFICATION_ALLOW_HTTP = False
    response = web.post(
        "/settings/notifications/email", {"enabled": "on", "address": "me@example.com", "events": ["take_profit"]}
    )
    assert response.status_code == 302
    email = NotificationChannel.objects.get(user=trader, kind="email")
    assert (email.enabled, email.address, email.events) == (True, "me@example.com", ["take_profit"])
    token = "123456:ABCdefGhIJKlmnoPQRstuVWXyz0123456789"
    response = web.post(
        "/settings/notifications/telegram", {"chat_id": "4242", "bot_token": token, "events": ["entry_filled"]}
    )
    assert response.status_code == 302
    html = web.get("/settings/").content.decode()
    assert token not in html and "****6789" in html
    # Saved again with the token left blank: the stored one stays.
    web.post("/settings/notifications/telegram", {"chat_id": "4243", "events": ["entry_filled"]})
    telegram = NotificationChannel.objects.get(user=trader, kind="telegram")
    assert telegram.chat_id == "4243" and telegram.secret_last4 == "6789"


def test_a_bad_channel_setting_is_named_and_nothing_saved(web, trader):
    url = "https://evil.example.com/hook/secret-part-XYZ"
    response = web.post("/settings/notifications/slack", {"enabled": "on", "webhook_url": url})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="n-slack-webhook_url"' in html and "secret-part-XYZ" not in html
    section = html[html.index('id="channel-slack"') :]
    assert 'class="field-error"' in section[: section.index("</form>")]
    assert not NotificationChannel.objects.filter(user=trader, kind="slack").exists()
    response = web.post("/settings/notifications/email", {"enabled": "on", "address": "not-an-address"})
    assert response.status_code == 400
    section = response.content.decode()
    section = section[section.index('id="channel-email"') :]
    section = section[: section.index("</form>")]
    assert 'value="not-an-address"' in section and 'class="field-error"' in section
    assert web.post("/settings/notifications/pigeon", {}).status_code == 404


def test_send_test_delivers_and_is_logged(web, trader):
    NotificationChannel.objects.create(user=trader, kind="email", enabled=True, address="me@example.com")
    response = web.post("/settings/notifications/email/test", follow=True)
    assert b"test message sent" in response.content
    assert len(mail.outbox) == 1
    assert Delivery.objects.get(user=trader).status == "sent"
    assert b'id="deliveries"' in response.content
    response = web.post("/settings/notifications/discord/test", follow=True)
    assert b"not set up" in response.content


# ------------------------------------------------------------------------------------------ backup/restore


def test_backup_downloads_and_restores_the_config(web, trader):
    EngineConfig.objects.create(
        user=trader, data={"capital_usd": "300", "overrides": {"BTC/USDT": {"max_pyramids": 2}}}
    )
    download = web.get("/settings/config.json")
    assert download["Content-Disposition"].startswith("attachment")
    saved = json.loads(download.content)
    assert saved == {"capital_usd": "300", "overrides": {"BTC/USDT": {"max_pyramids": 2}}}
    EngineConfig.objects.filter(user=trader).update(data={"capital_usd": "999"})
    upload = SimpleUploadedFile("backup.json", download.content, content_type="application/json")
    assert web.post("/settings/restore", {"file": upload}).status_code == 302
    assert EngineConfig.objects.get(user=trader).data == saved
    # The whole config of GET /api/config is a valid backup too.
    whole = json.dumps(default_engine_config()).encode()
    assert web.post("/settings/restore", {"file": SimpleUploadedFile("all.json", whole)}).status_code == 302


def test_a_bad_backup_is_refused_with_the_reason_and_nothing_changes(web, trader):
    EngineConfig.objects.create(user=trader, data={"capital_usd": "300"})
    bad = json.dumps({"capital_usd": "-5", "max_pyramids": 0}).encode()
    response = web.post("/settings/restore", {"file": SimpleUploadedFile("bad.json", bad)})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="restore-errors"' in html and "capital_usd" in html and "max_pyramids" in html
    response = web.post("/settings/restore", {"file": SimpleUploadedFile("bad.json", b"not json")})
    assert response.status_code == 400 and b"is not JSON" in response.content
    assert EngineConfig.objects.get(user=trader).data == {"capital_usd": "300"}


# ------------------------------------------------------------------------------------------- leg preview


def test_the_preview_api_takes_the_page_session_with_the_csrf_header(trader, simulator_keys):
    client = Client(enforce_csrf_checks=True)
    client.force_login(trader)
    html = client.get("/settings/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    body = {
        "config": {
            "levels": [
                {"gap_percent": "0", "weight_percent": "50", "tp_percent": "1"},
                {"gap_percent": "-1", "weight_percent": "50", "tp_percent": "1"},
            ],
            "capital_usd": "200",
        },
        "entry_price": "65000",
        "exchange": "simulator",
        "symbol": "BTCUSDT",
    }
    refused = client.post("/api/grid/preview", body, content_type="application/json")
    assert refused.status_code == 403
    response = client.post("/api/grid/preview", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    legs = response.json()
    assert [leg["price"] for leg in legs] == ["65000", "64350"] or [leg["level"] for leg in legs] == [0, 1]


def test_an_override_symbol_is_read_without_market_rules_too(web, trader):
    response = web.post(
        "/settings/overrides", {"symbol": "solusdt", "timeframe": "240", "values": '{"max_pyramids": 2}'}
    )
    assert response.status_code == 302
    assert EngineConfig.objects.get(user=trader).data["overrides"] == {"SOL/USDT:4h": {"max_pyramids": 2}}
