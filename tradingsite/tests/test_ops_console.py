"""The ops console (admin index panel and the admin's service-backed actions): docs/processes.md#ops-console."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import AuditLog
from accounts.tests.factories import UserFactory
from exchanges import crypto
from exchanges.models import ExchangeConfig
from exchanges.tests.factories import ExchangeConfigFactory
from notifications.models import NotificationChannel
from notifications.services import channel_secret
from positions.models import (
    DCAOrder,
    EngineConfig,
    GroupEvent,
    PositionGroup,
    Pyramid,
    QueuedSignal,
    TradingGuard,
    WebhookSignal,
)
from riskengine.models import RiskAction

pytestmark = pytest.mark.django_db

KEY_A, KEY_B = "a" * 43 + "=", "b" * 43 + "="


def _client(**user: object) -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, **user))
    return client


@pytest.fixture
def admin_client() -> Client:
    return _client(role="admin", is_superuser=True)


@pytest.fixture
def manager_client() -> Client:
    return _client(role="manager")


def test_index_shows_health_counts_and_the_system_actions(admin_client: Client) -> None:
    owner = UserFactory.create(role="trader")
    config = ExchangeConfigFactory.create(user=owner)
    PositionGroup.objects.create(user=owner, exchange_config=config, symbol="BTC/USDT", timeframe="1h", status="active")
    page = admin_client.get("/admin/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="ops-console"' in html
    assert "Health:" in html and "database" in html
    assert page.context["counts"]["open_groups"] == 1
    assert "Flatten everything" in html and "Pause everyone" in html


def test_system_pause_and_resume_go_through_the_guard_service(admin_client: Client) -> None:
    admin_client.post("/admin/console/pause/", {"paused": "1", "reason": "exchange maintenance"})
    guard = TradingGuard.objects.get(user__isnull=True)
    assert guard.paused and guard.paused_reason == "exchange maintenance"
    assert AuditLog.objects.filter(action="guard_pause").exists()
    admin_client.post("/admin/console/pause/", {"paused": "0"})
    assert not TradingGuard.objects.get(user__isnull=True).paused
    assert AuditLog.objects.filter(action="guard_resume").exists()


def test_flatten_needs_the_typed_word_and_an_admin(admin_client: Client, manager_client: Client) -> None:
    refused = admin_client.post("/admin/console/flatten/", {"confirm": "yes"}, follow=True)
    assert "type FLATTEN to confirm" in refused.content.decode()
    assert not TradingGuard.objects.filter(user__isnull=True, paused=True).exists()
    by_manager = manager_client.post("/admin/console/flatten/", {"confirm": "FLATTEN"}, follow=True)
    assert "Only an admin may do this." in by_manager.content.decode()
    assert not TradingGuard.objects.filter(user__isnull=True, paused=True).exists()
    done = admin_client.post("/admin/console/flatten/", {"confirm": "FLATTEN"}, follow=True)
    assert "are closing at market" in done.content.decode()
    assert TradingGuard.objects.get(user__isnull=True).paused
    assert AuditLog.objects.filter(action="guard_flatten", resource="system").exists()


def test_run_risk_now_for_a_user_stores_the_cycle(admin_client: Client) -> None:
    owner = UserFactory.create(role="trader", email="owner@example.com")
    admin_client.post("/admin/console/risk-run/", {"email": "owner@example.com"})
    action = RiskAction.objects.get(user=owner)
    assert action.kind == "none" and action.trigger == "run_now"
    unknown = admin_client.post("/admin/console/risk-run/", {"email": "nobody@example.com"}, follow=True)
    assert "no user has the address nobody@example.com" in unknown.content.decode()


def test_key_rotation_reencrypts_exchange_and_channel_secrets(admin_client: Client, settings: Any) -> None:
    settings.ENCRYPTION_KEYS = [KEY_A]
    config = ExchangeConfigFactory.create(api_key="rotate-key-1234567890", api_secret="rotate-secret")
    channel = NotificationChannel.objects.create(user=config.user, kind="discord", enabled=True)
    url = "https://discord.com/api/webhooks/1/abc"
    channel.secret_encrypted = crypto.encrypt(url, context=channel.encryption_context())
    channel.save()
    settings.ENCRYPTION_KEYS = [KEY_B, KEY_A]
    page = admin_client.post("/admin/console/rotate-keys/", follow=True)
    assert "Re-encrypted 3 secrets" in page.content.decode()
    settings.ENCRYPTION_KEYS = [KEY_B]  # the old key may go now
    assert ExchangeConfig.objects.get(pk=config.pk).credentials().api_secret == "rotate-secret"
    assert channel_secret(channel=NotificationChannel.objects.get(pk=channel.pk)) == url
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "1 notification channels" in out.getvalue() and "(0 were under an older key)" in out.getvalue()


def test_engine_config_in_the_admin_is_validated_like_the_api(admin_client: Client) -> None:
    owner = UserFactory.create(role="trader")
    row = EngineConfig.objects.create(user=owner, data={"max_open_groups": 4})
    url = f"/admin/positions/engineconfig/{row.pk}/change/"
    bad = admin_client.post(url, {"data": '{"max_open_groups": -3, "bogus_key": 1}'})
    assert bad.status_code == 200
    html = bad.content.decode()
    assert "max_open_groups" in html and "bogus_key" in html
    assert EngineConfig.objects.get(pk=row.pk).data == {"max_open_groups": 4}  # nothing stored
    good = admin_client.post(url, {"data": '{"max_open_groups": 7}'})
    assert good.status_code == 302
    assert EngineConfig.objects.get(pk=row.pk).data == {"max_open_groups": 7}
    assert AuditLog.objects.filter(action="config_update", resource_id=str(row.pk)).exists()


def test_cancel_one_order_and_delete_a_queued_signal_through_the_services(admin_client: Client) -> None:
    owner = UserFactory.create(role="trader")
    config = ExchangeConfigFactory.create(user=owner)
    group = PositionGroup.objects.create(user=owner, exchange_config=config, symbol="BTC/USDT", timeframe="1h")
    pyramid = Pyramid.objects.create(group=group, index=0, entry_price=Decimal("100"), capital_usd=Decimal("50"))
    leg = DCAOrder.objects.create(
        group=group, exchange_config=config, pyramid=pyramid, pyramid_level=0, dca_level=1, symbol="BTC/USDT",
        side="buy", order_type="limit", price=Decimal("99"), expected_price=Decimal("99"), quantity=Decimal("0.1"),
        client_order_id="opsconsolecancel1",
    )  # fmt: skip
    admin_client.post("/admin/positions/dcaorder/", {"action": "cancel_on_exchange", "_selected_action": [str(leg.pk)]})
    assert DCAOrder.objects.get(pk=leg.pk).status == "canceled"  # never sent: cancelled locally, nothing resent
    assert AuditLog.objects.filter(action="order_cancel", resource_id=str(leg.pk)).exists()
    assert GroupEvent.objects.filter(group=group, kind="order_cancelled").exists()

    signal = WebhookSignal.objects.create(user=owner, status="queued", http_status=202, symbol="ETH/USDT")
    entry = QueuedSignal.objects.create(
        user=owner, exchange_config=config, signal=signal, symbol="ETH/USDT", timeframe="1h", entry_price=Decimal("1")
    )
    admin_client.post(f"/admin/positions/queuedsignal/{entry.pk}/delete/", {"post": "yes"})
    assert not QueuedSignal.objects.filter(pk=entry.pk).exists()
    assert AuditLog.objects.filter(action="queue_remove", resource_id=str(entry.pk)).exists()
