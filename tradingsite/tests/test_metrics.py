"""`/metrics` for Prometheus: behind METRICS_TOKEN, in Prometheus' text format, read from the engine's state."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from exchanges.tests.factories import ExchangeConfigFactory
from positions.models import PositionGroup, WebhookSignal
from tradingsite.metrics import DURATIONS
from tradingsite.tasks import beat_heartbeat

pytestmark = pytest.mark.django_db


def test_metrics_are_off_without_a_token_and_refuse_a_wrong_one(client, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 403
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_scrape(client, settings, trader) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    config = ExchangeConfigFactory.create(user=trader)
    PositionGroup.objects.create(
        user=trader, exchange_config=config, symbol="BTC/USDT", timeframe="1h", status="active"
    )
    now = timezone.now()
    for ms, status in ((4.0, "accepted"), (6.0, "accepted"), (2.0, "rejected")):
        WebhookSignal.objects.create(user=trader, status=status, http_status=202, ack_ms=ms, received_at=now)
    WebhookSignal.objects.create(
        user=trader, status="accepted", http_status=202, ack_ms=900, received_at=now - timedelta(hours=1)
    )
    DURATIONS.start("t1")
    DURATIONS.stop("t1", "tradingsite.beat_heartbeat")
    beat_heartbeat()

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("engine_open_groups", ())] == 1
    assert samples[("engine_webhooks_recent", (("status", "accepted"),))] == 2
    assert samples[("engine_webhooks_recent", (("status", "rejected"),))] == 1
    assert samples[("engine_webhook_ack_seconds", (("quantile", "0.99"),))] == pytest.approx(0.006)
    assert ("engine_task_queue_depth", (("queue", "celery"),)) in samples
    assert samples[("engine_task_duration_seconds_count", (("task", "tradingsite.beat_heartbeat"),))] >= 1
    assert Decimal(str(samples[("engine_waiting_queue", ())])) == 0
