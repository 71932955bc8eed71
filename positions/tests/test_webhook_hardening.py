"""The webhook under hostile input (docs/webhook.md#errors): junk is refused with a 400 naming the field and
stored, roles are checked, secrets are redacted by meaning."""

from __future__ import annotations

import json

import pytest

from accounts.services import user_set_role
from positions.models import PositionGroup, WebhookSignal
from positions.tests.conftest import alert, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_cannot_trade_through_the_webhook(client, trader, sim_config):
    user_set_role(user=trader, role="viewer", actor=None)
    response = post(client, trader, alert(trader.webhook_secret))
    assert response.status_code == 403, response.content
    assert response.json()["error"] == "role_cannot_trade"
    assert "viewer" in response.json()["detail"]
    stored = WebhookSignal.objects.get()
    assert (stored.status, stored.http_status, stored.user_id) == ("rejected", 403, trader.pk)
    assert stored.reason.startswith("role_cannot_trade")
    assert not PositionGroup.objects.exists()

    # Promoted back, the same alert opens its group: the check reads the role as it is now.
    user_set_role(user=trader, role="trader", actor=None)
    assert post(client, trader, alert(trader.webhook_secret)).status_code == 202


def test_the_role_is_checked_after_the_secret(client, trader, sim_config):
    """A stranger without the secret learns nothing about the account's role."""
    user_set_role(user=trader, role="viewer", actor=None)
    response = post(client, trader, alert("wrong-secret"))
    assert response.status_code == 403
    assert response.json()["error"] == "secret_invalid"


def _junk(secret: str, **tv: object) -> dict:
    return alert(secret, tv=tv)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda s: _junk(s, symbol="BTC\x00USDT"), "tv.symbol"),
        (lambda s: _junk(s, symbol=" "), "tv.symbol"),
        (lambda s: alert(s, strategy_info={"alert_message": "hi \ud800"}), "strategy_info.alert_message"),
        (lambda s: alert(s, **{"note\x00": 1}), "body"),
        (lambda s: _junk(s, entry_price="1e309"), "tv.entry_price"),
        (lambda s: _junk(s, entry_price="1e30"), "tv.entry_price"),
        (lambda s: _junk(s, order_size="١٢٣"), "tv.order_size"),
        (lambda s: _junk(s, timeframe="6\x000"), "tv.timeframe"),
    ],
)
def test_junk_in_a_field_is_a_400_naming_it_and_is_stored(client, trader, sim_config, make, field):
    response = post(client, trader, json.dumps(make(trader.webhook_secret)))
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    stored = WebhookSignal.objects.get()
    assert (stored.status, stored.http_status) == ("rejected", 400)
    assert stored.body is not None and stored.body["secret"] == "[redacted]"
    assert "\\u0000" not in json.dumps(stored.body)


def test_a_json_number_too_large_for_the_column_is_a_400(client, trader, sim_config):
    raw = json.dumps(alert(trader.webhook_secret)).replace('"entry_price": "65000"', '"entry_price": 1e300')
    response = post(client, trader, raw)
    assert response.status_code == 400
    assert "tv.entry_price" in response.json()["fields"]
    assert WebhookSignal.objects.get().http_status == 400


@pytest.mark.parametrize("depth", [100, 3000])
def test_deep_nesting_is_a_400_and_stored(client, trader, sim_config, depth):
    body = alert(trader.webhook_secret)
    raw = json.dumps(body)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    response = post(client, trader, raw)
    assert response.status_code == 400, response.content
    assert "nested" in response.json()["detail"]
    stored = WebhookSignal.objects.get()
    assert (stored.status, stored.http_status) == ("rejected", 400)


@pytest.mark.parametrize("raw", [b'{"secret": "\x00"}', b"\x00\x00\x00", b'{"a": "\\ud800"', b"\xff\xfe{}"])
def test_undecodable_junk_is_stored_as_an_excerpt(client, trader, sim_config, raw):
    response = post(client, trader, raw)
    assert response.status_code == 400, response.content
    stored = WebhookSignal.objects.get()
    assert stored.http_status == 400 and "\x00" not in stored.raw_excerpt


def test_secrets_are_redacted_by_meaning_at_any_depth(client, trader, sim_config):
    body = alert(
        trader.webhook_secret,
        Secret="s1-visible",
        api_secret="s2-visible",
        auth={"Token": "s3-visible"},
        email_token="s4-visible",
        notify={"discord": "https://discord.com/api/webhooks/123/s5-visible", "ApiKey": "s6-visible"},
        strategy_info={"alert_message": trader.webhook_secret, "trade_id": "T-1"},
        keyword="kept",
    )
    response = post(client, trader, body)
    assert response.status_code == 202, response.content
    stored = json.dumps(WebhookSignal.objects.get().body)
    assert "visible" not in stored
    assert trader.webhook_secret not in stored
    assert '"keyword": "kept"' in stored
