"""The positions list and the group page (docs/web.md#positions, docs/web.md#group): who sees what, the
filters, the chart's data, query counts that do not grow with the rows, and the actions through the
services the API uses (close on the simulator with a real worker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from positions.models import DCAOrder, PositionGroup

NOW = datetime(2024, 10, 15, tzinfo=UTC)


def _config(user):
    from exchanges.models import ExchangeConfig

    config = ExchangeConfig(user=user, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    return config


def _populate(user, groups: int, legs: int = 5, now: datetime = NOW):
    from web.demo import populate

    config = _config(user)
    populate(user=user, exchange_config=config, groups=groups, legs=legs, now=now)
    return config


@pytest.fixture
def trader_client(trader):
    client = Client()
    client.force_login(trader)
    return client


def _open_group(user, symbol="BTC/USDT", timeframe="4h") -> PositionGroup:
    return PositionGroup.objects.filter(user=user, symbol=symbol, timeframe=timeframe, status="active").get()


# ------------------------------------------------------------------------------------------------ list


@pytest.mark.django_db
def test_positions_page_needs_login_and_lists_only_the_users_groups(client, trader, trader_client, user_factory):
    _populate(trader, groups=12)
    other = user_factory()
    _populate(other, groups=3)
    assert client.get("/positions/").status_code == 302
    page = trader_client.get("/positions/")
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('<tr data-group="') == 12
    for group in PositionGroup.objects.filter(user=other):
        assert str(group.pk) not in body


@pytest.mark.django_db
def test_positions_filters_take_symbols_as_traders_type_them(trader, trader_client):
    _populate(trader, groups=12)
    btc = set(PositionGroup.objects.filter(user=trader, symbol="BTC/USDT").values_list("pk", flat=True))
    for raw in ("BTCUSDT", "btcusdt", "BTC-USDT", "BTC/USDT"):
        body = trader_client.get("/positions/", {"symbol": raw}).content.decode()
        assert body.count('<tr data-group="') == len(btc), raw
        assert all(str(pk) in body for pk in btc)
    closed = trader_client.get("/positions/", {"status": "closed"}).content.decode()
    assert closed.count('<tr data-group="') == PositionGroup.objects.filter(user=trader, status="closed").count()
    four_hours = trader_client.get("/positions/", {"status": "open", "timeframe": "4h"}).content.decode()
    assert four_hours.count('<tr data-group="') == PositionGroup.objects.filter(user=trader, timeframe="4h").count()
    searched = trader_client.get("/positions/", {"q": "ethusdt"}).content.decode()
    assert searched.count('<tr data-group="') == PositionGroup.objects.filter(user=trader, symbol="ETH/USDT").count()


@pytest.mark.django_db
def test_positions_bad_filter_names_the_field_and_keeps_what_was_typed(trader, trader_client):
    _populate(trader, groups=3)
    page = trader_client.get("/positions/", {"timeframe": "7h", "symbol": "BTCUSDT", "status": "bogus"})
    assert page.status_code == 400
    body = page.content.decode()
    assert 'id="e-timeframe"' in body and 'id="e-status"' in body
    assert 'value="BTCUSDT"' in body


@pytest.mark.django_db
def test_positions_pages_by_fifty_and_the_live_region(trader, trader_client, monkeypatch):
    from web.views import positions as page

    monkeypatch.setattr(page, "PER_PAGE", 5)
    _populate(trader, groups=12)
    first = trader_client.get("/positions/").content.decode()
    assert first.count('<tr data-group="') == 5 and "Page 1 of 3" in first
    last = trader_client.get("/positions/", {"page": 3, "partial": "groups"})
    assert last.status_code == 200 and "<html" not in last.content.decode()
    assert last.content.decode().count('<tr data-group="') == 2
    assert trader_client.get("/positions/", {"page": "junk"}).status_code == 200


@pytest.mark.django_db
def test_positions_query_count_does_not_grow_with_rows(trader, user_factory):
    few, many = user_factory(), user_factory()
    _populate(few, groups=2)
    _populate(many, groups=40)
    counts = []
    for user in (few, many):
        client = Client()
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/positions/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


# ------------------------------------------------------------------------------------------------ group


@pytest.mark.django_db
def test_group_page_for_its_owner_only(client, trader, trader_client, user_factory):
    _populate(trader, groups=12)
    group = _open_group(trader)
    url = f"/positions/{group.pk}/"
    assert client.get(url).status_code == 302
    page = trader_client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    for text in ("BTC/USDT", "Pyramid 0", "Close at market", "Stop averaging", "Block risk", 'id="group-chart"'):
        assert text in body, text
    for leg in DCAOrder.objects.filter(group=group):
        assert leg.client_order_id in body
    stranger = Client()
    stranger.force_login(user_factory())
    assert stranger.get(url).status_code == 404
    assert stranger.get(f"{url}candles").status_code == 404
    assert trader_client.get("/positions/00000000-0000-0000-0000-000000000000/").status_code == 404
    for region in ("head", "detail"):
        part = trader_client.get(url, {"partial": region})
        assert part.status_code == 200 and "<html" not in part.content.decode()


@pytest.mark.django_db
def test_a_fee_in_a_third_asset_shows_its_quote_value(trader, trader_client):
    from positions.models import Fill

    _populate(trader, groups=12)
    group = _open_group(trader)
    fill = Fill.objects.filter(group=group).first()
    Fill.objects.filter(pk=fill.pk).update(
        fee=Decimal("0.00012345"), fee_asset="BNB", fee_quote_value=Decimal("0.0755")
    )
    body = trader_client.get(f"/positions/{group.pk}/").content.decode()
    assert "0.00012345 BNB" in body and "≈ 0.0755" in body


@pytest.mark.django_db
def test_a_group_waiting_for_market_rules_says_so(trader, trader_client):
    from positions.services.processing import WAITING_FOR_MARKET_RULES
    from positions.services.state import group_event

    _populate(trader, groups=12)
    group = _open_group(trader)
    group.dca_orders.all().delete()
    PositionGroup.objects.filter(pk=group.pk).update(status="waiting")
    group_event(group, WAITING_FOR_MARKET_RULES, "no market rules for BTC/USDT: not listed; waiting for them to load")
    body = trader_client.get(f"/positions/{group.pk}/").content.decode()
    assert "for its market's rules" in body
    assert "no market rules for BTC/USDT: not listed" in body and "tried again every minute" in body
    assert "the grid is laid once the market's rules load" in body


@pytest.mark.django_db
def test_closed_group_shows_no_actions(trader, trader_client):
    _populate(trader, groups=12)
    closed = PositionGroup.objects.filter(user=trader, status="closed").first()
    body = trader_client.get(f"/positions/{closed.pk}/").content.decode()
    assert "Close at market" not in body and "Block risk" not in body


@pytest.mark.django_db
def test_group_page_query_count_does_not_grow_with_legs(user_factory):
    counts = []
    for legs in (2, 8):
        user = user_factory()
        _populate(user, groups=12, legs=legs)
        group = _open_group(user)
        client = Client()
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/positions/{group.pk}/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
def test_chart_data_from_stored_candles_with_lines_and_fill_markers(trader, trader_client):
    from exchanges.candles.rules import CandleRow
    from exchanges.candles.services import candles_store

    _populate(trader, groups=12, now=datetime.now(UTC) - timedelta(days=2))
    group = _open_group(trader)
    group.stop_loss_price = Decimal("60000")
    group.save(update_fields=["stop_loss_price"])
    step = 4 * 3600 * 1000
    start = int((group.created_at - timedelta(days=5)).timestamp() * 1000)
    start -= start % step
    # Stored up to now, so the store is used as it is (no exchange asked).
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rows = [
        CandleRow(t, Decimal("64000"), Decimal("65500"), Decimal("63000"), Decimal("64500"), Decimal("1"))
        for t in range(start, now_ms - step, step)
    ]
    candles_store(exchange_name="simulator", symbol="BTC/USDT", timeframe="4h", rows=rows)
    data = trader_client.get(f"/positions/{group.pk}/candles").json()
    assert data["source"] == "store" and data["candles"]
    kinds = {line["kind"] for line in data["lines"]}
    assert {"entry", "leg", "tp", "avg", "stop"} <= kinds
    assert float(group.avg_entry_price) in [line["price"] for line in data["lines"] if line["kind"] == "avg"]
    fills = group.fills.count()
    assert len(data["markers"]) == fills and all(m["shape"] == "arrowUp" for m in data["markers"])
    times = {c["time"] for c in data["candles"]}
    assert all(m["time"] in times for m in data["markers"])


@pytest.mark.django_db
def test_chart_without_candles_says_so(trader, trader_client, settings):
    settings.SIMULATOR_URL = "http://127.0.0.1:9"  # nothing listens: the exchange cannot answer
    _populate(trader, groups=12)
    group = _open_group(trader)
    response = trader_client.get(f"/positions/{group.pk}/candles")
    assert response.status_code == 200
    data = response.json()
    assert data["candles"] == [] and data["note"] and data["lines"]


# ------------------------------------------------------------------------------------------------ actions


@pytest.mark.django_db
def test_risk_flags_through_the_service(trader, trader_client):
    _populate(trader, groups=12)
    group = _open_group(trader)
    url = f"/positions/{group.pk}/risk/"
    response = trader_client.post(url + "block")
    assert response.status_code == 302 and response["Location"] == f"/positions/{group.pk}/"
    group.refresh_from_db()
    assert group.risk_blocked
    assert "Unblock risk" in trader_client.get(f"/positions/{group.pk}/").content.decode()
    trader_client.post(url + "unblock")
    trader_client.post(url + "skip-once")
    group.refresh_from_db()
    assert not group.risk_blocked and group.risk_skip_once
    assert trader_client.post(url + "bogus").status_code == 404


@pytest.mark.django_db
def test_actions_refused_politely_on_a_closed_group(trader, trader_client):
    _populate(trader, groups=12)
    closed = PositionGroup.objects.filter(user=trader, status="closed").first()
    for action in ("close", "stop-averaging", "risk/block", "risk/skip-once"):
        response = trader_client.post(f"/positions/{closed.pk}/{action}", follow=True)
        assert response.status_code == 200, action
        assert "closed" in " ".join(str(m) for m in response.context["messages"]), action
    closed.refresh_from_db()
    assert closed.status == "closed" and not closed.risk_blocked and not closed.risk_skip_once


@pytest.mark.django_db
def test_actions_need_the_owner_the_trader_role_and_csrf(trader, user_factory):
    _populate(trader, groups=12)
    group = _open_group(trader)
    stranger = Client()
    stranger.force_login(user_factory())
    assert stranger.post(f"/positions/{group.pk}/risk/block").status_code == 404
    viewer_user = user_factory(role="viewer")
    viewer_group_owner = Client()
    viewer_group_owner.force_login(viewer_user)
    assert viewer_group_owner.post(f"/positions/{group.pk}/risk/block").status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(trader)
    assert strict.post(f"/positions/{group.pk}/risk/block").status_code == 403
    assert Client().post(f"/positions/{group.pk}/close").status_code == 302  # to the login page
    assert trader_client_get(trader, f"/positions/{group.pk}/close").status_code == 405
    group.refresh_from_db()
    assert not group.risk_blocked and group.status == "active"


def trader_client_get(user, url):
    client = Client()
    client.force_login(user)
    return client.get(url)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stop_averaging_and_close_from_the_group_page_on_the_simulator(client, simulator_account, celery_worker):
    from positions.tests.test_end_to_end import wait_for
    from positions.tests.test_exits import _open

    group = _open(client, simulator_account)
    user = simulator_account.config.user
    page = Client()
    page.force_login(user)
    resting = DCAOrder.objects.filter(group=group, filled_quantity=0).exclude(status="canceled").count()
    assert resting
    response = page.post(f"/positions/{group.pk}/stop-averaging", follow=True)
    assert f"{resting} unfilled leg(s) cancelled" in response.content.decode()
    response = page.post(f"/positions/{group.pk}/close", follow=True)
    assert "Close requested" in response.content.decode()
    wait_for(lambda: PositionGroup.objects.get(pk=group.pk).status == "closed", message="closed")
    again = page.post(f"/positions/{group.pk}/close", follow=True)
    assert again.status_code == 200 and "already closed" in again.content.decode()
    body = page.get(f"/positions/{group.pk}/").content.decode()
    assert "Close at market" not in body and "Manual close" in body
