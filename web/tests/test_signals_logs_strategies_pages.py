"""The signals, logs and strategies pages (docs/web.md#signals, #logs, #strategies): filters (symbols as
traders type them), own rows only, export, the strategy form validated like the API, who may act, CSRF,
and query counts that do not grow with the rows."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.logs import audit, log_info, log_warning
from accounts.models import AuditLog
from exchanges.tests.factories import ExchangeConfigFactory
from positions.models import PositionGroup, WebhookSignal
from positions.tests.conftest import load_rules
from strategies import services
from strategies.models import StrategyInstance, StrategySignal

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _count(client: Client, path: str) -> int:
    client.get(path)  # warm: first-request caches are not the page's cost
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


def _signal(user, symbol="BTC/USDT", status="accepted", **extra) -> WebhookSignal:
    values = {
        "user": user,
        "symbol": symbol,
        "action": "buy",
        "status": status,
        "http_status": 202 if status == "accepted" else 400,
        "body": {"secret": "[redacted]", "tv": {"symbol": symbol.replace("/", "")}},
        **extra,
    }
    return WebhookSignal.objects.create(**values)


# --------------------------------------------------------------------------------------------- signals


def test_signals_page_filters_by_outcome_symbol_and_date(client, trader, user_factory):
    btc = _signal(trader, "BTC/USDT", classification="new_entry", flags=["sequence_anomaly"], ack_ms=3.5)
    eth = _signal(trader, "ETH/USDT", status="rejected", reason="bad secret")
    old = _signal(trader, "BTC/USDT", received_at=timezone.now() - timedelta(days=10))
    theirs = _signal(user_factory(), "BTC/USDT")
    assert client.get("/signals/").status_code == 302
    page = _login(trader)
    body = page.get("/signals/").content.decode()
    assert all(f'data-signal="{s.pk}"' in body for s in (btc, eth, old)) and str(theirs.pk) not in body
    assert "sequence_anomaly" in body and "3.5 ms" in body and 'data-live-on="signal.received"' in body
    for symbol in ("BTCUSDT", "BTC/USDT", "btc-usdt", "BINANCE:BTCUSDT"):
        found = page.get("/signals/", {"symbol": symbol}).content.decode()
        assert str(btc.pk) in found and str(eth.pk) not in found, symbol
    assert str(btc.pk) not in page.get("/signals/", {"outcome": "rejected"}).content.decode()
    assert str(btc.pk) in page.get("/signals/", {"outcome": "new_entry"}).content.decode()
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    recent = page.get("/signals/", {"since": since}).content.decode()
    assert str(btc.pk) in recent and str(old.pk) not in recent
    bad = page.get("/signals/", {"since": "yesterday", "outcome": "maybe"}).content.decode()
    assert 'id="f-since" name="since" value="yesterday" aria-invalid="true"' in bad and "unknown outcome" in bad


def test_signal_body_is_shown_redacted(trader):
    _signal(trader, body={"secret": "s3cr3t-value-that-leaked", "token": "abc", "tv": {"symbol": "BTCUSDT"}})
    body = _login(trader).get("/signals/").content.decode()
    assert "s3cr3t-value-that-leaked" not in body and "[redacted]" in body and "BTCUSDT" in body


def test_signals_page_queries_do_not_grow_with_the_rows(trader):
    client = _login(trader)
    _signal(trader)
    few = _count(client, "/signals/")
    for _ in range(20):
        _signal(trader, "ETH/USDT")
    assert _count(client, "/signals/") == few


# ------------------------------------------------------------------------------------------------ logs


def test_logs_page_filters_and_shows_only_own_rows(client, trader, user_factory):
    log_info("TRADING", "Grid placed for BTC/USDT 1h", user=trader, details={"symbol": "BTC/USDT"})
    log_warning("RISK", "queue: no prices for ETH/USDT", user=trader)
    other = user_factory()
    log_info("TRADING", "someone else's BTC/USDT", user=other)
    assert client.get("/logs/").status_code == 302
    page = _login(trader)
    body = page.get("/logs/").content.decode()
    assert "Grid placed" in body and "no prices" in body and "someone else" not in body
    assert 'data-live="logs"' in body and "tail-follow" in body
    assert "no prices" not in page.get("/logs/", {"level": "info"}).content.decode()
    assert "Grid placed" not in page.get("/logs/", {"category": "RISK"}).content.decode()
    by_pair = page.get("/logs/", {"pair": "ETHUSDT"}).content.decode()
    assert "no prices" in by_pair and "Grid placed" not in by_pair
    assert "Grid placed" in page.get("/logs/", {"q": "grid"}).content.decode()
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert "Grid placed" not in page.get("/logs/", {"start": tomorrow}).content.decode()
    bad = page.get("/logs/", {"level": "LOUD", "end": "soon"}).content.decode()
    assert "unknown level" in bad and 'name="end" value="soon" aria-invalid="true"' in bad
    everyone = _login(user_factory(role="admin")).get("/logs/").content.decode()
    assert "someone else" in everyone and other.email in everyone


def test_audit_log_only_for_managers_and_admins(trader, user_factory):
    audit(user=trader, action="config_update", resource="engine_config")
    mine = _login(trader).get("/logs/", {"kind": "audit"}).content.decode()
    assert "config_update" not in mine and "System log" in mine
    manager = _login(user_factory(role="manager")).get("/logs/", {"kind": "audit"}).content.decode()
    assert "config_update" in manager and "Audit log" in manager


def test_logs_export_streams_the_filtered_rows(trader):
    log_info("TRADING", "Grid placed for BTC/USDT", user=trader)
    log_warning("RISK", "a warning", user=trader)
    page = _login(trader)
    csv_text = b"".join(page.get("/logs/", {"level": "INFO", "export": "csv"}).streaming_content).decode()
    assert csv_text.splitlines()[0].startswith("id,timestamp,level") and "Grid placed" in csv_text
    assert "a warning" not in csv_text
    response = page.get("/logs/", {"export": "json"})
    assert response["Content-Disposition"] == 'attachment; filename="system_logs.json"'
    rows = json.loads(b"".join(response.streaming_content))
    assert {row["message"] for row in rows} == {"Grid placed for BTC/USDT", "a warning"}
    assert page.get("/logs/", {"export": "csv", "level": "LOUD"}).status_code == 400
    assert AuditLog.objects.filter(user=trader, action="logs_export").count() == 2


def test_logs_page_queries_do_not_grow_with_the_rows(trader):
    client = _login(trader)
    log_info("TRADING", "one", user=trader, details={"n": 1})
    few = _count(client, "/logs/")
    for index in range(30):
        log_info("TRADING", f"row {index}", user=trader, details={"n": index})
    assert _count(client, "/logs/") == few


# ------------------------------------------------------------------------------------------ strategies


@pytest.fixture
def exchange(trader):
    load_rules("simulator")
    return ExchangeConfigFactory.create(user=trader)


def _form(**values):
    form = {
        "kind": "rsi",
        "exchange": "simulator",
        "symbols": "BTCUSDT, ETH/USDT",
        "timeframes": "15m, 1h",
        "confirm_timeframe": "4h",
        "capital_usd": "300",
        "max_correlation": "0.7",
        "enabled": "on",
    }
    form.update(values)
    return form


def test_strategy_create_edit_enable_disable_delete(client, trader, exchange):
    assert client.get("/strategies/").status_code == 302
    page = _login(trader)
    created = page.post("/strategies/new", _form(p_rsi_length="21"))
    assert created.status_code == 302
    instance = StrategyInstance.objects.get(user=trader)
    assert instance.symbols == ["BTC/USDT", "ETH/USDT"] and instance.params["length"] == 21
    assert instance.params["oversold"] == 30.0 and instance.confirm_timeframe == "4h" and instance.enabled
    body = page.get("/strategies/").content.decode()
    assert f'data-strategy="{instance.pk}"' in body and "length=21" in body
    assert 'data-live-on="strategy.updated"' in body
    edit = page.get("/strategies/", {"edit": str(instance.pk)}).content.decode()
    assert 'value="21"' in edit and "Save changes" in edit
    page.post(f"/strategies/{instance.pk}/edit", _form(kind="macd", p_macd_fast="8", symbols="SOLUSDT"))
    instance.refresh_from_db()
    assert instance.kind == "macd" and instance.params["fast"] == 8 and instance.symbols == ["SOL/USDT"]
    page.post(f"/strategies/{instance.pk}/disable")
    instance.refresh_from_db()
    assert not instance.enabled and instance.disabled_reason == "disabled by its owner"
    page.post(f"/strategies/{instance.pk}/enable")
    instance.refresh_from_db()
    assert instance.enabled
    assert AuditLog.objects.filter(action__startswith="strategy.", resource_id=str(instance.pk)).count() == 4
    page.post(f"/strategies/{instance.pk}/delete")
    assert not StrategyInstance.objects.exists()


def test_strategy_form_errors_name_the_field_and_keep_what_was_typed(trader, exchange):
    page = _login(trader)
    bad = page.post(
        "/strategies/new",
        _form(p_rsi_length="1", p_rsi_oversold="abc", symbols="NOPEUSDT", timeframes="7m", confirm_timeframe="1m"),
    )
    assert bad.status_code == 400
    body = bad.content.decode()
    assert 'id="id_p_rsi_length" name="p_rsi_length" value="1"' in body and "must be between 2 and 200" in body
    assert "must be a number" in body and 'value="NOPEUSDT"' in body and "unknown timeframe" in body
    assert body.count('aria-invalid="true"') >= 4
    assert not StrategyInstance.objects.exists()  # nothing half-saved
    wrong_kind = page.post("/strategies/new", _form(kind="astrology"))
    assert wrong_kind.status_code == 400 and "unknown strategy" in wrong_kind.content.decode()


def test_strategies_of_others_are_404_and_a_viewer_cannot_act(trader, exchange, user_factory):
    instance = services.strategy_create(
        user=trader, data={"kind": "rsi", "symbols": ["BTCUSDT"], "exchange": "simulator"}
    )
    stranger = _login(user_factory())
    assert str(instance.pk) not in stranger.get("/strategies/").content.decode()
    assert stranger.get("/strategies/", {"edit": str(instance.pk)}).status_code == 404
    assert stranger.post(f"/strategies/{instance.pk}/disable").status_code == 404
    assert stranger.post(f"/strategies/{uuid.uuid4()}/delete").status_code == 404
    viewer = user_factory(role="viewer")
    theirs = StrategyInstance.objects.create(
        user=viewer, exchange_config=ExchangeConfigFactory.create(user=viewer), kind="rsi", symbols=["BTC/USDT"]
    )
    as_viewer = _login(viewer)
    assert "Create strategy" not in as_viewer.get("/strategies/").content.decode()
    assert as_viewer.post(f"/strategies/{theirs.pk}/disable").status_code == 403
    assert as_viewer.post("/strategies/new", _form()).status_code == 403
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(trader)
    assert guarded.post(f"/strategies/{instance.pk}/disable").status_code == 403
    instance.refresh_from_db()
    theirs.refresh_from_db()
    assert instance.enabled and theirs.enabled


def test_strategies_page_queries_do_not_grow_with_the_instances(trader, exchange):
    client = _login(trader)

    def add(index: int) -> None:
        instance = services.strategy_create(
            user=trader, data={"kind": "rsi", "symbols": ["BTCUSDT"], "exchange": "simulator"}
        )
        group = PositionGroup.objects.create(
            user=trader,
            exchange_config=exchange,
            symbol="BTC/USDT",
            timeframe=f"{index + 1}m",
            status="closed",
            closed_at=timezone.now(),
            realized_pnl=1,
            total_cost=100,
        )
        StrategySignal.objects.create(
            instance=instance,
            symbol="BTC/USDT",
            timeframe="15m",
            candle_open=timezone.now(),
            action="entry",
            price=100,
            group_id=group.pk,
        )

    add(0)
    few = _count(client, "/strategies/")
    for index in range(1, 6):
        add(index)
    assert _count(client, "/strategies/") == few
    assert "+1.00" in client.get("/strategies/").content.decode()


def test_live_regions_render_alone(trader, exchange):
    """`?partial=<region>` renders the region live.js swaps in (docs/web.md#live); an unknown one is a 404."""
    _signal(trader)
    log_info("TRADING", "one", user=trader)
    page = _login(trader)
    for path, region, marker in (
        ("/queue/", "queue", "Execution pool"),
        ("/risk/", "risk", "Projected plan"),
        ("/risk/", "guards", "Switches"),
        ("/signals/", "signals", 'id="signals"'),
        ("/logs/", "logs", 'id="logs"'),
        ("/strategies/", "strategies", "Instances"),
    ):
        response = page.get(path, {"partial": region})
        assert response.status_code == 200 and marker in response.content.decode(), (path, region)
        assert "<html" not in response.content.decode()
    assert page.get("/queue/", {"partial": "nope"}).status_code == 404
