"""The queue and risk pages (docs/web.md#queue, docs/web.md#risk): what they show, who may act, each action
through the service the API calls, bad input named, CSRF, and query counts that do not grow with the rows."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditLog
from exchanges.tests.factories import ExchangeConfigFactory
from positions.models import EngineConfig, PositionGroup, QueuedSignal, TradingGuard, WebhookSignal
from positions.services.configs import config_set
from positions.tests.conftest import alert, load_rules

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _queued(user, config, symbol="ETH/USDT", timeframe="1h", price="3000") -> QueuedSignal:
    signal = WebhookSignal.objects.create(
        user=user,
        exchange_config=config,
        body={**alert("", tv={"symbol": symbol.replace("/", ""), "entry_price": price}), "secret": "[redacted]"},
        symbol=symbol,
        timeframe=timeframe,
        status="accepted",
        classification="queued",
        http_status=202,
    )
    return QueuedSignal.objects.create(
        user=user,
        exchange_config=config,
        signal=signal,
        symbol=symbol,
        timeframe=timeframe,
        side="long",
        entry_price=Decimal(price),
    )


def _group(user, config, symbol="BTC/USDT", status="active", timeframe="1h") -> PositionGroup:
    return PositionGroup.objects.create(
        user=user,
        exchange_config=config,
        symbol=symbol,
        timeframe=timeframe,
        status=status,
        filled_quantity=Decimal("0.01"),
        total_cost=Decimal("650"),
        pyramid_count=1,
        max_pyramids=1,
    )


def _count(client: Client, path: str) -> int:
    client.get(path)  # warm: first-request caches are not the page's cost
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


# ----------------------------------------------------------------------------------------------- queue


def test_queue_page_lists_in_promotion_order_and_needs_login(client, trader, user_factory):
    config = ExchangeConfigFactory.create(user=trader)
    config_set(user=trader, data={"max_open_groups": 1}, partial=True)
    first = _queued(trader, config, "ETH/USDT")
    second = _queued(trader, config, "SOL/USDT")
    QueuedSignal.objects.filter(pk=second.pk).update(replacement_count=2)  # ranks first by replacement count
    stranger = user_factory()
    _queued(stranger, ExchangeConfigFactory.create(user=stranger), "XRP/USDT")
    assert client.get("/queue/").status_code == 302
    body = _login(trader).get("/queue/").content.decode()
    assert body.index(f'data-entry="{second.pk}"') < body.index(f'data-entry="{first.pk}"')
    assert "XRP/USDT" not in body and "0 / 1" in body
    assert 'data-live-on="queue.updated group.updated"' in body
    assert "Deepest loss" in body and "Promote" in body


def test_queue_actions_go_through_the_queue_service(trader, user_factory):
    config = ExchangeConfigFactory.create(user=trader)
    config_set(user=trader, data={"max_open_groups": 1}, partial=True)
    _group(trader, config)  # the pool is full
    entry = _queued(trader, config, "ETH/USDT")
    other = _queued(trader, config, "SOL/USDT")
    client = _login(trader)
    full = client.post(f"/queue/{entry.pk}/promote", follow=True)
    assert "the execution pool is full" in full.content.decode() and QueuedSignal.objects.filter(pk=entry.pk).exists()
    forced = client.post(f"/queue/{entry.pk}/force-add")
    assert forced.status_code == 302 and forced["Location"] == "/queue/"
    assert PositionGroup.objects.filter(user=trader, symbol="ETH/USDT").exists()
    assert AuditLog.objects.filter(action="queue_promote", details__forced=True).exists()
    assert client.post(f"/queue/{other.pk}/remove").status_code == 302
    assert not QueuedSignal.objects.filter(user=trader).exists()
    assert AuditLog.objects.filter(action="queue_remove").exists()
    # another user's entry, or none, is a 404; a GET changes nothing
    stranger = user_factory()
    theirs = _queued(stranger, ExchangeConfigFactory.create(user=stranger))
    assert client.post(f"/queue/{theirs.pk}/remove").status_code == 404
    assert client.post(f"/queue/{uuid.uuid4()}/force-add").status_code == 404
    assert client.get(f"/queue/{theirs.pk}/remove").status_code == 405
    assert QueuedSignal.objects.filter(pk=theirs.pk).exists()


def test_queue_actions_refuse_a_viewer_and_need_csrf(trader, user_factory):
    config = ExchangeConfigFactory.create(user=trader)
    entry = _queued(trader, config)
    viewer = user_factory(role="viewer")
    theirs = _queued(viewer, ExchangeConfigFactory.create(user=viewer))
    page = _login(viewer).get("/queue/").content.decode()
    assert "Force-add" not in page  # no buttons for a viewer
    assert _login(viewer).post(f"/queue/{theirs.pk}/remove").status_code == 403
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(trader)
    assert guarded.post(f"/queue/{entry.pk}/remove").status_code == 403
    assert QueuedSignal.objects.filter(pk__in=[entry.pk, theirs.pk]).count() == 2


def test_queue_page_queries_do_not_grow_with_the_entries(trader):
    load_rules("simulator")
    config = ExchangeConfigFactory.create(user=trader)
    client = _login(trader)
    _queued(trader, config, "ETH/USDT", "1h")
    few = _count(client, "/queue/")
    for timeframe in ("5m", "15m", "4h", "1d", "2h", "30m"):
        _queued(trader, config, "ETH/USDT", timeframe)
    assert _count(client, "/queue/") == few


# ------------------------------------------------------------------------------------------------ risk


def test_risk_page_shows_groups_plan_actions_and_guards(client, trader, user_factory):
    config = ExchangeConfigFactory.create(user=trader)
    group = _group(trader, config)
    stranger = user_factory()
    _group(stranger, ExchangeConfigFactory.create(user=stranger), symbol="XRP/USDT")
    assert client.get("/risk/").status_code == 302
    body = _login(trader).get("/risk/").content.decode()
    assert f'data-group="{group.pk}"' in body and "XRP/USDT" not in body
    assert "pyramids" in body  # the eligibility parts (why not) are listed
    assert 'data-live-on="risk.action group.updated"' in body and 'data-live-on="guard.changed group.updated"' in body
    for action in ("Run now", "Pause new groups", "Reset daily loss", "Flatten", "Save limits", "Block", "Skip once"):
        assert action in body


def test_risk_actions_go_through_the_services(trader, user_factory):
    config = ExchangeConfigFactory.create(user=trader)
    group = _group(trader, config)
    client = _login(trader)
    assert client.post(f"/risk/groups/{group.pk}/block").status_code == 302
    group.refresh_from_db()
    assert group.risk_blocked
    client.post(f"/risk/groups/{group.pk}/skip-once")
    client.post(f"/risk/groups/{group.pk}/unblock")
    group.refresh_from_db()
    assert not group.risk_blocked and group.risk_skip_once
    assert AuditLog.objects.filter(action="risk_flags", resource_id=str(group.pk)).count() == 3
    stranger = user_factory()
    theirs = _group(stranger, ExchangeConfigFactory.create(user=stranger))
    assert client.post(f"/risk/groups/{theirs.pk}/block").status_code == 404
    assert client.post(f"/risk/groups/{group.pk}/explode").status_code == 404
    PositionGroup.objects.filter(pk=group.pk).update(status="closed")
    refused = client.post(f"/risk/groups/{group.pk}/block", follow=True).content.decode()
    assert "Cannot change its risk flags: the group is closed." in refused
    ran = client.post("/risk/run", follow=True)
    assert ran.status_code == 200 and "Nothing done" in ran.content.decode()
    from riskengine.models import RiskAction

    assert RiskAction.objects.filter(user=trader, trigger="run_now").exists()


def test_guard_switches_pause_reset_and_flatten_needs_the_word(trader):
    config = ExchangeConfigFactory.create(user=trader)
    _group(trader, config)
    client = _login(trader)
    client.post("/risk/guards/pause", {"paused": "true"})
    assert TradingGuard.objects.get(user=trader).paused
    assert "Resume trading" in client.get("/risk/").content.decode()
    client.post("/risk/guards/pause", {"paused": "false"})
    assert not TradingGuard.objects.get(user=trader).paused
    client.post("/risk/guards/reset")
    assert TradingGuard.objects.get(user=trader).daily_loss_reset_at is not None
    refused = client.post("/risk/guards/flatten", {"confirm": "yes"}, follow=True).content.decode()
    assert "type FLATTEN" in refused and not TradingGuard.objects.get(user=trader).paused
    assert not AuditLog.objects.filter(action="guard_flatten").exists()
    client.post("/risk/guards/flatten", {"confirm": "FLATTEN"})
    assert TradingGuard.objects.get(user=trader).paused
    assert AuditLog.objects.filter(action="guard_flatten", details__groups=1).exists()


def test_guard_limits_validate_like_the_api_and_keep_what_was_typed(trader):
    client = _login(trader)
    bad = client.post(
        "/risk/guards/limits",
        {
            "max_total_exposure_usd": "-5",
            "daily_loss_limit_usd": "250",
            "cooldown_minutes_after_loss": "1.5",
            "max_alert_lag_seconds": "300",
            "exposure_action": "queue",
        },
    )
    assert bad.status_code == 400
    body = bad.content.decode()
    assert 'id="err_max_total_exposure_usd"' in body and 'id="err_cooldown_minutes_after_loss"' in body
    assert 'value="-5"' in body and 'value="250"' in body  # what was typed is kept
    assert not EngineConfig.objects.filter(user=trader).exists()  # nothing half-saved
    good = client.post(
        "/risk/guards/limits",
        {
            "max_total_exposure_usd": "5000",
            "daily_loss_limit_usd": "",
            "cooldown_minutes_after_loss": "30",
            "max_alert_lag_seconds": "0",
            "exposure_action": "reject",
            "pause_blocks_pyramids": "on",
        },
    )
    assert good.status_code == 302
    data = EngineConfig.objects.get(user=trader).data
    assert data["max_total_exposure_usd"] == "5000" and data["cooldown_minutes_after_loss"] == 30
    assert data["exposure_action"] == "reject" and data["pause_blocks_pyramids"] is True
    assert "daily_loss_limit_usd" not in data


def test_risk_actions_refuse_a_viewer_and_need_csrf(trader, user_factory):
    viewer = user_factory(role="viewer")
    page = _login(viewer).get("/risk/").content.decode()
    assert "Run now" not in page and "Flatten" not in page.split("<main", 1)[1].split("Guard limits")[0]
    for path in (
        "/risk/run",
        "/risk/guards/pause",
        "/risk/guards/flatten",
        "/risk/guards/reset",
        "/risk/guards/limits",
    ):
        assert _login(viewer).post(path, {"paused": "true", "confirm": "FLATTEN"}).status_code == 403, path
    assert not TradingGuard.objects.filter(user=viewer, paused=True).exists()
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(trader)
    assert guarded.post("/risk/guards/pause", {"paused": "true"}).status_code == 403
    assert not TradingGuard.objects.filter(user=trader, paused=True).exists()


def test_risk_page_queries_do_not_grow_with_the_groups(trader):
    load_rules("simulator")
    config = ExchangeConfigFactory.create(user=trader)
    client = _login(trader)
    _group(trader, config)
    few = _count(client, "/risk/")
    for timeframe in ("5m", "15m", "4h", "1d", "2h", "30m"):
        _group(trader, config, timeframe=timeframe)
    assert _count(client, "/risk/") == few
