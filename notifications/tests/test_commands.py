"""Telegram commands: answered in the owner's chat through the web's selectors and services; other chats
are ignored and logged; a request without the channel's secret is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import AuditLog, SystemLog
from exchanges.tests.factories import ExchangeConfigFactory
from notifications.models import NotificationChannel
from positions.models import PositionGroup
from positions.services.guards import guard_status

from .conftest import CHAT, TOKEN, configure_all

pytestmark = pytest.mark.django_db


def _group(user, symbol: str, status: str, pnl: str = "0", **extra) -> PositionGroup:
    config = (
        ExchangeConfigFactory.create(user=user) if not user.exchange_configs.exists() else user.exchange_configs.get()
    )
    return PositionGroup.objects.create(
        user=user,
        exchange_config=config,
        symbol=symbol,
        timeframe="1h",
        status=status,
        realized_pnl=Decimal(pnl),
        **extra,
    )


def _say(client, channel: NotificationChannel, text: str, *, chat: str = CHAT, token: str | None = None):
    return client.post(
        f"/api/notifications/telegram/{channel.pk}",
        {"update_id": 1, "message": {"message_id": 5, "chat": {"id": int(chat)}, "text": text}},
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=channel.inbound_token if token is None else token,
    )


@pytest.fixture
def channel(trader, service_settings, capture_http) -> NotificationChannel:
    configure_all(trader, capture_http)
    return NotificationChannel.objects.get(user=trader, kind="telegram")


def _replies(capture_http) -> list[str]:
    return [r.body["text"] for r in capture_http.on(f"/tg/bot{TOKEN}/sendMessage")]


def test_status_positions_and_profit(client, trader, channel, capture_http) -> None:
    _group(trader, "BTC/USDT", "active", avg_entry_price=Decimal("65000"), filled_quantity=Decimal("0.01"))
    _group(trader, "ETH/USDT", "closed", pnl="12.5", closed_at=timezone.now())
    assert _say(client, channel, "/status").json() == {"ok": True, "handled": "status"}
    assert _say(client, channel, "/positions").status_code == 200
    assert _say(client, channel, "/profit").status_code == 200
    status, positions, profit = _replies(capture_http)
    assert status.startswith("Open groups: 1 (1 active)")
    assert "BTC/USDT 1h active avg 65000.00" in positions and "ETH" not in positions
    assert "Realized today: 12.50 USDT" in profit and "Realized in all: 12.50 USDT" in profit


def test_close_asks_for_confirmation_then_closes_through_the_web_path(client, trader, channel, capture_http) -> None:
    group = _group(trader, "BTC/USDT", "active")
    short = str(group.pk)[:8]
    _say(client, channel, f"/close {short}")
    assert _replies(capture_http)[-1] == f"Close BTC/USDT 1h at market? Send /close {short} yes"
    assert not AuditLog.objects.filter(action="position_close").exists()
    _say(client, channel, f"/close {short} yes")
    assert _replies(capture_http)[-1].startswith("Closing BTC/USDT 1h")
    audit = AuditLog.objects.get(action="position_close")
    assert audit.resource_id == str(group.pk) and audit.details["via"] == "telegram"


def test_other_chats_are_ignored_and_logged(client, trader, channel, capture_http) -> None:
    group = _group(trader, "BTC/USDT", "active")
    response = _say(client, channel, f"/close {str(group.pk)[:8]} yes", chat="999")
    assert response.json() == {"ok": True, "handled": "ignored"}
    assert _replies(capture_http) == []
    assert not AuditLog.objects.filter(action="position_close").exists()
    assert SystemLog.objects.filter(message="Telegram command from another chat ignored").exists()


def test_an_update_without_the_channel_secret_is_refused(client, trader, channel, capture_http) -> None:
    assert _say(client, channel, "/status", token="guess").status_code == 403
    assert _say(client, channel, "/status", token="").status_code == 403
    assert _replies(capture_http) == []


def test_pause_and_resume_switch_the_users_guard(client, trader, channel, capture_http) -> None:
    _say(client, channel, "/pause")
    assert guard_status(user=trader)["paused"] is True
    assert AuditLog.objects.filter(action="guard_pause", user=trader).exists()
    _say(client, channel, "/status")
    _say(client, channel, "/resume")
    assert guard_status(user=trader)["paused"] is False
    paused, status, resumed = _replies(capture_http)
    assert paused.startswith("Paused: no new groups open")
    assert status.endswith("New entries: paused")
    assert resumed == "Resumed: new groups may open again."
