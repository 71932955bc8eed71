"""Channel settings through the API, and delivery to local stand-ins of SMTP, Telegram, Discord and Slack."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import SystemLog
from exchanges.crypto import decrypt
from exchanges.tests.factories import ExchangeConfigFactory
from notifications import commands, rules, services
from notifications.choices import ChannelKind
from notifications.models import Delivery, NotificationChannel
from positions.hooks import EngineEvent
from positions.models import PositionGroup
from positions.services.configs import config_set
from tradingsite.celery import app

from .conftest import CHAT, TOKEN, configure_all

pytestmark = pytest.mark.django_db


def _fill_payload(user_id) -> dict:
    return {
        "kind": "order_filled",
        "user_id": str(user_id),
        "group_id": "6b1f7f2e-0000-4000-8000-000000000001",
        "data": {
            "symbol": "BTC/USDT",
            "side": "buy",
            "order_kind": "entry",
            "pyramid": 0,
            "level": 0,
            "price": "65000.00",
            "quantity": "0.00153",
            "avg_entry_price": "65065.00",
            "realized_pnl": "0",
        },
    }


def _send_all() -> None:
    for delivery in Delivery.objects.filter(status="pending"):
        services.delivery_send(delivery_id=delivery.pk)


def test_put_stores_secrets_encrypted_and_get_shows_them_masked(auth_client, service_settings, capture_http) -> None:
    url = capture_http.url + "/discord/hook/secret-part-1234"
    response = auth_client.put(
        "/api/notifications",
        {
            "channels": {
                "telegram": {"enabled": True, "bot_token": TOKEN, "chat_id": CHAT},
                "discord": {"enabled": True, "webhook_url": url},
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["channels"]["telegram"]["bot_token"] == "****saw1"
    assert body["channels"]["discord"]["webhook_url"] == "****1234"
    assert TOKEN not in response.content.decode() and url not in response.content.decode()
    stored = NotificationChannel.objects.get(user=auth_client.user, kind="telegram")
    assert TOKEN not in stored.secret_encrypted
    assert decrypt(stored.secret_encrypted, context=stored.encryption_context()) == TOKEN
    # Sending back what GET showed (masked) keeps the secret.
    again = auth_client.put("/api/notifications", {"channels": body["channels"]}, format="json")
    assert again.status_code == 200, again.content
    stored.refresh_from_db()
    assert services.channel_secret(channel=stored) == TOKEN


@pytest.mark.parametrize(
    ("channels", "field"),
    [
        ({"telegram": {"enabled": True, "bot_token": "12:short", "chat_id": "1"}}, "telegram.bot_token"),
        ({"telegram": {"enabled": True, "bot_token": TOKEN, "chat_id": "not a chat"}}, "telegram.chat_id"),
        ({"slack": {"enabled": True, "webhook_url": "https://example.com/x"}}, "slack.webhook_url"),
        ({"discord": {"enabled": True}}, "discord.webhook_url"),
        ({"email": {"address": "nope"}}, "email.address"),
        ({"email": {"events": ["fill", "entry_filled"]}}, "email.events"),
        ({"pager": {"enabled": True}}, "channels.pager"),
    ],
)
def test_malformed_settings_are_400_naming_the_field(auth_client, channels, field) -> None:
    response = auth_client.put("/api/notifications", {"channels": channels}, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not NotificationChannel.objects.exists()  # nothing half-saved


def test_a_fill_makes_one_message_per_enabled_channel(trader, service_settings, capture_http, capture_smtp) -> None:
    configure_all(trader, capture_http)
    NotificationChannel.objects.filter(user=trader, kind="slack").update(enabled=False)
    deliveries = services.engine_event_notify(payload=_fill_payload(trader.pk))
    assert sorted(d.channel.kind for d in deliveries) == ["discord", "email", "telegram"]
    _send_all()
    expected = (
        "Filled: BTC/USDT BUY 0.00153 @ 65000 (entry)\nAverage entry 65065\n"
        "https://engine.test/positions/6b1f7f2e-0000-4000-8000-000000000001/"
    )
    telegram = capture_http.on("/tg/")
    assert [r.path for r in telegram] == [f"/tg/bot{TOKEN}/sendMessage"]
    assert telegram[0].body["chat_id"] == CHAT and telegram[0].body["text"] == expected
    assert [r.body["content"] for r in capture_http.on("/discord/")] == [expected]
    assert capture_http.on("/slack/") == []
    assert len(capture_smtp.messages) == 1
    assert capture_smtp.messages[0].body["to"] == ["trader@example.com"]
    assert "Filled: BTC/USDT BUY 0.00153 @ 65000 (entry)" in capture_smtp.messages[0].body["data"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_event_switches_per_channel(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http, events=["stop_exit"])
    assert services.engine_event_notify(payload=_fill_payload(trader.pk)) == []
    closed = {
        **_fill_payload(trader.pk),
        "kind": "group_closed",
        "data": {"symbol": "BTC/USDT", "close_reason": "stop_loss", "realized_pnl": "-3.2"},
    }
    assert len(services.engine_event_notify(payload=closed)) == 4


def test_server_errors_and_timeouts_retry_until_the_limit(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http)
    NotificationChannel.objects.filter(user=trader).exclude(kind="slack").update(enabled=False)
    capture_http.fail("/slack/", 503, times=services.MAX_ATTEMPTS + 2)
    (delivery,) = services.notify(user_id=trader.pk, event_type="stop_exit", text="x")
    outcomes = [services.delivery_send(delivery_id=delivery.pk) for _ in range(services.MAX_ATTEMPTS)]
    assert [o for o, _ in outcomes] == [rules.RETRY] * (services.MAX_ATTEMPTS - 1) + [rules.FAILED]
    assert [wait for _, wait in outcomes[:3]] == [5, 10, 20]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", services.MAX_ATTEMPTS)
    assert "503" in delivery.error
    # A failed delivery is final: no further call.
    calls = len(capture_http.on("/slack/"))
    assert services.delivery_send(delivery_id=delivery.pk)[0] == rules.FAILED
    assert len(capture_http.on("/slack/")) == calls == services.MAX_ATTEMPTS
    # Still enabled: 5xx says nothing about the channel's settings.
    assert NotificationChannel.objects.get(user=trader, kind="slack").enabled


def test_a_timeout_is_retried(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http)
    NotificationChannel.objects.filter(user=trader).exclude(kind="discord").update(enabled=False)
    capture_http.hang("/discord/", 1.5)  # longer than NOTIFICATION_TIMEOUT_S
    (delivery,) = services.notify(user_id=trader.pk, event_type="stop_exit", text="x")
    assert services.delivery_send(delivery_id=delivery.pk) == (rules.RETRY, 5)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.error == "timed out"


def test_a_channel_that_keeps_refusing_is_turned_off_with_the_reason(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http)
    NotificationChannel.objects.filter(user=trader).exclude(kind="telegram").update(enabled=False)
    capture_http.fail("/tg/", 401, times=10)
    for _ in range(services.DISABLE_AFTER_FAILURES):
        (delivery,) = services.notify(user_id=trader.pk, event_type="stop_exit", text="x")
        assert services.delivery_send(delivery_id=delivery.pk) == (rules.FAILED, 0)
    channel = NotificationChannel.objects.get(user=trader, kind="telegram")
    assert not channel.enabled
    assert "401" in channel.disabled_reason and TOKEN not in channel.disabled_reason
    assert services.notify(user_id=trader.pk, event_type="stop_exit", text="x") == []
    assert SystemLog.objects.filter(message__contains="turned off").exists()


def test_rate_limit_postpones_instead_of_sending(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http)
    NotificationChannel.objects.filter(user=trader).exclude(kind="telegram").update(enabled=False)
    limit = services.RATE_PER_MINUTE[ChannelKind.TELEGRAM]
    outcomes = []
    for index in range(limit + 2):
        (delivery,) = services.notify(user_id=trader.pk, event_type="stop_exit", text=f"m{index}")
        outcomes.append(services.delivery_send(delivery_id=delivery.pk)[0])
    assert outcomes == [rules.SENT] * limit + [rules.RETRY] * 2
    assert len(capture_http.on("/tg/")) == limit


def test_send_test_per_channel(auth_client, service_settings, capture_http, capture_smtp) -> None:
    configure_all(auth_client.user, capture_http)
    for kind in ("email", "telegram", "discord", "slack"):
        response = auth_client.post("/api/notifications/test", {"channel": kind}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "sent"
    assert len(capture_smtp.messages) == 1 and len(capture_http.received) == 3
    capture_http.fail("/slack/", 404)
    failed = auth_client.post("/api/notifications/test", {"channel": "slack"}, format="json").json()
    assert failed["status"] == "failed" and "404" in failed["error"]
    bad = auth_client.post("/api/notifications/test", {"channel": "fax"}, format="json")
    assert bad.status_code == 400 and "channel" in bad.json()["fields"]
    log = auth_client.get("/api/notifications/deliveries").json()
    assert [row["status"] for row in log][:2] == ["failed", "sent"]


def test_the_hook_subscriber_only_enqueues(trader, service_settings, capture_http) -> None:
    """The trading side's subscriber makes no message and no network call: it hands celery a task."""
    sent: list[tuple] = []
    original = app.send_task
    app.send_task = lambda name, args=(), **kw: sent.append((name, args))
    try:
        services.engine_event_enqueue(EngineEvent(kind="order_filled", user_id=str(trader.pk), group_id="g", data={}))
    finally:
        app.send_task = original
    assert [name for name, _ in sent] == ["notifications.engine_event"]
    assert json.loads(sent[0][1][0])["kind"] == "order_filled"
    assert Delivery.objects.count() == 0 and capture_http.received == []


def test_every_task_name_used_here_is_registered() -> None:
    app.loader.import_default_modules()
    names = [
        services.DELIVER_TASK,
        services.ENGINE_EVENT_TASK,
        services.TELEGRAM_REGISTER_TASK,
        commands.CLOSE_GROUP_TASK,
    ]
    assert [name for name in names if name not in app.tasks] == []


def test_a_delivery_left_pending_by_a_dead_worker_is_sent_again(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http)
    NotificationChannel.objects.filter(user=trader).exclude(kind="slack").update(enabled=False)
    (fresh,) = services.notify(user_id=trader.pk, event_type="stop_exit", text="fresh")
    (stale,) = services.notify(user_id=trader.pk, event_type="stop_exit", text="stale")
    Delivery.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    sent: list[tuple] = []
    original = app.send_task
    app.send_task = lambda name, args=(), **kw: sent.append((name, args))
    try:
        assert services.deliveries_resume() == 1
    finally:
        app.send_task = original
    assert sent == [(services.DELIVER_TASK, (str(stale.pk),))]


def test_the_loss_close_that_reaches_the_daily_limit_is_told_at_once(trader, service_settings, capture_http) -> None:
    configure_all(trader, capture_http, events=["guard_triggered"])
    config_set(user=trader, data={"daily_loss_limit_usd": "50"}, partial=True)
    config = ExchangeConfigFactory.create(user=trader)

    def close(symbol: str, pnl: str) -> list:
        group = PositionGroup.objects.create(
            user=trader, exchange_config=config, symbol=symbol, timeframe="1h", status="closed",
            closed_at=timezone.now(), realized_pnl=pnl,
        )  # fmt: skip
        payload = {
            **_fill_payload(trader.pk),
            "kind": "group_closed",
            "group_id": str(group.pk),
            "data": {"symbol": symbol, "timeframe": "1h", "close_reason": "stop_loss", "realized_pnl": pnl},
        }
        return services.engine_event_notify(payload=payload)

    assert close("ETH/USDT", "-30") == []  # 30 lost today: under the limit, and only guard messages are on
    reached = close("BTC/USDT", "-25")  # 55 lost: this close reached 50
    assert len(reached) == 4 and {d.event_type for d in reached} == {"guard_triggered"}
    text = reached[0].text
    assert "daily_loss" in text and "reached" in text and "55" in text and "50" in text
    assert close("SOL/USDT", "-5") == []  # already past the limit: told once, not at every loss
