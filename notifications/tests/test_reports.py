"""The daily jobs: performance at 01:00, the portfolio report at 08:00 with its PNG chart, low balance."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.tests.factories import ExchangeConfigFactory
from notifications import services
from notifications.chart import line_chart_png
from notifications.models import Delivery, Report
from notifications.reports import daily_performance_run, daily_portfolio_run, equity_curve
from positions import hooks
from positions.models import PositionGroup
from strategies.models import StrategyInstance, StrategySignal

from .capture import email_attachments
from .conftest import CHAT, TOKEN, configure_all


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chart_is_a_png_with_the_line_drawn() -> None:
    png = line_chart_png([Decimal("0"), Decimal("10"), Decimal("-5"), Decimal("20")], width=100, height=50)
    assert _png_size(png) == (100, 50)
    # Decode the single IDAT chunk: the line's blue appears, the background is white.
    length = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + length])
    assert bytes((33, 110, 214)) in raw and bytes((255, 255, 255)) in raw


@pytest.mark.django_db
def test_performance_and_portfolio_reports_are_stored_and_told(
    trader, service_settings, capture_http, simulator_account
) -> None:
    configure_all(trader, capture_http, events=["daily_report", "low_balance"])
    config = simulator_account.config
    now = timezone.now()
    yesterday = now - timedelta(days=1)
    for pnl in ("12.5", "-2.5", "4"):
        PositionGroup.objects.create(
            user=trader,
            exchange_config=config,
            symbol="BTC/USDT",
            timeframe="1h",
            status="closed",
            realized_pnl=Decimal(pnl),
            closed_at=yesterday,
        )
    assert daily_performance_run() == {"reports": 1, "messages": 4, "strategies_disabled": 0}
    report = Report.objects.get(user=trader, kind="performance")
    assert report.day == yesterday.date()
    assert (report.data["deals"], report.data["wins"], report.data["losses"]) == (3, 2, 1)
    assert report.data["realized_pnl"] == "14.00" and report.data["best"]["pnl"] == "12.50"
    texts = set(Delivery.objects.filter(event_type="daily_report").values_list("text", flat=True))
    assert texts == {f"Daily performance {yesterday.date()}: 3 deals, 2 won, 1 lost, realized 14.00 USDT, fees 0.00"}

    result = daily_portfolio_run()
    assert result["reports"] == 1 and result["low_balance"] == 0  # 10000 USDT funds the default grid
    portfolio = Report.objects.get(user=trader, kind="portfolio")
    assert portfolio.data["balances"]["simulator"]["free"] == "10000.00"
    assert portfolio.data["realized_pnl"] == "14.00"
    assert portfolio.data["equity"][-2:] == ["14.00", "14.00"]
    assert portfolio.chart_png is not None
    assert _png_size(bytes(portfolio.chart_png)) == (640, 240)


@pytest.mark.django_db
def test_equity_curve_accumulates_realized_pnl_per_day(trader) -> None:
    config = ExchangeConfigFactory.create(user=trader)
    today = timezone.now()
    for days_ago, pnl in ((40, "100"), (2, "10"), (0, "-5")):
        PositionGroup.objects.create(
            user=trader,
            exchange_config=config,
            symbol="BTC/USDT",
            timeframe="1h",
            status="closed",
            realized_pnl=Decimal(pnl),
            closed_at=today - timedelta(days=days_ago),
        )
    curve = equity_curve(user=trader, end=today.date(), days=5)
    assert curve == [Decimal("100")] * 2 + [Decimal("110")] * 2 + [Decimal("105")]


@pytest.mark.django_db
def test_low_balance_warns_when_the_next_grid_cannot_be_funded(
    trader, service_settings, capture_http, simulator_account
) -> None:
    configure_all(trader, capture_http, events=["low_balance"])
    account = simulator_account
    account.simulator.create_account(account.api_key, account.api_secret, {"USDT": "5"})
    result = daily_portfolio_run()
    assert result["low_balance"] == 1
    texts = set(Delivery.objects.filter(event_type="low_balance").values_list("text", flat=True))
    assert len(texts) == 1 and next(iter(texts)).startswith("Low balance: free USDT cannot fund the next grid")


@pytest.mark.django_db
def test_the_daily_analysis_runs_the_strategies_auto_disable(
    trader, service_settings, capture_http, django_capture_on_commit_callbacks
) -> None:
    configure_all(trader, capture_http, events=["strategy_disabled"])
    config = ExchangeConfigFactory.create(user=trader)
    instance = StrategyInstance.objects.create(
        user=trader, exchange_config=config, kind="rsi", symbols=["BTC/USDT"], timeframes=["1h"]
    )
    start = timezone.now() - timedelta(days=3)
    for i in range(11):
        group = PositionGroup.objects.create(
            user=trader,
            exchange_config=config,
            symbol="BTC/USDT",
            timeframe="1h",
            status="closed",
            realized_pnl=Decimal("-1"),
            total_cost=Decimal("100"),
            closed_at=start + timedelta(hours=i),
        )
        StrategySignal.objects.create(
            instance=instance,
            symbol="BTC/USDT",
            timeframe="1h",
            candle_open=start + timedelta(hours=i),
            action="entry",
            price=Decimal("1"),
            group_id=group.pk,
        )
    # The instance tells of its own auto-disable (an engine event, after commit): caught here instead of
    # going to the broker, then made into messages as the worker's task does.
    announced: list[hooks.EngineEvent] = []
    hooks.engine_event_unsubscribe(services.engine_event_enqueue)
    hooks.engine_event_subscribe(announced.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = daily_performance_run()
    finally:
        hooks.engine_event_unsubscribe(announced.append)
        hooks.engine_event_subscribe(services.engine_event_enqueue)
    assert result["strategies_disabled"] == 1
    instance.refresh_from_db()
    assert not instance.enabled
    (row,) = Report.objects.get(user=trader, kind="performance").data["strategies"]
    assert row["id"] == str(instance.pk) and row["enabled"] is False
    assert row["health"]["consecutive_losses"] == 11
    (event,) = [e for e in announced if e.kind == hooks.STRATEGY_DISABLED]
    assert event.user_id == str(trader.pk) and event.data["strategy_id"] == str(instance.pk)
    payload = {"kind": event.kind, "user_id": event.user_id, "group_id": event.group_id, "data": event.data}
    assert len(services.engine_event_notify(payload=payload)) == 4
    texts = set(Delivery.objects.filter(event_type="strategy_disabled").values_list("text", flat=True))
    assert texts == {"Strategy rsi (BTC/USDT) auto-disabled: 11 losing trades in a row (more than 10)"}


@pytest.mark.django_db
def test_the_portfolio_report_carries_its_chart_where_the_channel_takes_a_file(
    trader, service_settings, capture_http, capture_smtp, simulator_account
) -> None:
    configure_all(trader, capture_http, events=["daily_report"])
    daily_portfolio_run()
    report = Report.objects.get(user=trader, kind="portfolio")
    assert report.chart_png is not None
    png, name = bytes(report.chart_png), f"equity-{report.day.isoformat()}.png"
    assert _png_size(png) == (640, 240)
    for delivery in Delivery.objects.filter(status="pending"):
        services.delivery_send(delivery_id=delivery.pk)
    assert list(Delivery.objects.values_list("status", flat=True)) == ["sent"] * 4
    # Telegram: a photo (multipart sendPhoto), the message as its caption.
    (photo,) = capture_http.on(f"/tg/bot{TOKEN}/sendPhoto")
    form = photo.form()
    assert form["photo"] == (name, png)
    assert form["chat_id"][1].decode() == CHAT and form["caption"][1].decode().startswith("Portfolio ")
    assert capture_http.on(f"/tg/bot{TOKEN}/sendMessage") == []
    # Discord: a file upload beside the message.
    form = capture_http.on("/discord/")[0].form()
    assert form["files[0]"] == (name, png)
    assert json.loads(form["payload_json"][1])["content"].startswith("Portfolio ")
    # Slack's incoming webhooks take no file: the link to the chart.
    text = capture_http.on("/slack/")[0].body["text"]
    assert text.startswith("Portfolio ")
    assert text.endswith(f"Chart: https://engine.test/api/notifications/reports/{report.pk}/chart.png")
    # Email: attached.
    (mail,) = capture_smtp.messages
    assert email_attachments(mail) == [(name, "image/png", png)]
