"""Health (docs/processes.md#health): every component, beat's heartbeat, a stopped worker turns the engine
degraded and back, and a change of state is told to the operators."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache

from exchanges.circuit import CircuitBreaker
from exchanges.tests.factories import ExchangeConfigFactory
from notifications.models import Delivery
from notifications.services import notification_settings_set
from tradingsite import health
from tradingsite.tasks import beat_heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_public_report():
    """`/api/health` keeps its report for a few seconds: each test starts without one."""
    health._public = None
    yield
    health._public = None


def test_api_health_reports_every_component_without_secrets(client, settings) -> None:
    beat_heartbeat()
    ExchangeConfigFactory.create(api_key="key-that-must-not-show-1234")
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body["components"]) == {"database", "redis", "broker", "workers", "beat", "exchanges", "backlog"}
    assert body["components"]["database"]["status"] == "healthy"
    assert body["components"]["beat"]["status"] == "healthy"
    assert body["components"]["workers"]["status"] == "degraded"  # no worker runs in this test
    assert body["status"] == "degraded"
    assert "celery" in body["components"]["broker"]["queues"]
    assert body["components"]["exchanges"]["exchanges"]["simulator"]["accounts"] == 1
    text = response.content.decode()
    assert "key-that-must-not-show" not in text and settings.REDIS_URL not in text and "redis://" not in text


def test_beat_without_a_recent_heartbeat_is_degraded() -> None:
    assert health.system_health(include_workers=False)["components"]["beat"]["reason"] == "no heartbeat yet"
    cache.set(health.HEARTBEAT_KEY, time.time() - health.HEARTBEAT_LATE_S - 5)
    beat = health.system_health(include_workers=False)["components"]["beat"]
    assert beat["status"] == "degraded" and "heartbeat" in beat["reason"]
    beat_heartbeat()
    assert health.system_health(include_workers=False)["components"]["beat"]["status"] == "healthy"


def test_an_open_circuit_degrades_the_exchange() -> None:
    config = ExchangeConfigFactory.create()
    breaker = CircuitBreaker(f"config:{config.pk}", failure_threshold=1)
    breaker.record_failure()
    component = health.system_health(include_workers=False)["components"]["exchanges"]
    assert component["status"] == "degraded"
    assert component["exchanges"]["simulator"]["circuits_open"] == 1


def test_a_change_of_state_is_told_to_operators_once(user_factory, settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    admin = user_factory.create(role="admin")
    trader = user_factory.create(role="trader")
    for user in (admin, trader):
        notification_settings_set(user=user, data={"channels": {"email": {"enabled": True}}})
    beat_heartbeat()
    health.health_watch()  # first sight: nothing to compare with
    assert Delivery.objects.count() == 0
    health.health_watch()  # unchanged (degraded: no worker)
    assert Delivery.objects.count() == 0
    cache.set(health.LAST_STATUS_KEY, "healthy")
    report = health.health_watch(send_now=True)
    assert report["changed_from"] == "healthy"
    (delivery,) = Delivery.objects.all()
    assert delivery.user == admin and delivery.event_type == "health_change" and delivery.status == "sent"
    assert delivery.text.startswith("Engine health healthy -> degraded: workers: no worker answered")


@pytest.mark.slow
def test_workers_answer_then_a_stopped_worker_turns_health_degraded(transactional_db, celery_worker_app) -> None:
    beat_heartbeat()
    with start_worker(celery_worker_app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            report = health.system_health()
            if report["components"]["workers"]["status"] == "healthy":
                break
        assert report["components"]["workers"]["count"] >= 1
        assert report["status"] == "healthy", report
    stopped = health.system_health()
    assert stopped["status"] == "degraded"
    assert stopped["components"]["workers"]["reason"] == "no worker answered"
