"""Platform plumbing: health, OpenAPI, schedules, migrations, production settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tradingsite.tasks import beat_heartbeat

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_health_reports_components_without_secrets(client, settings, monkeypatch):
    from tradingsite import health

    beat_heartbeat()  # beat is healthy once its heartbeat task has run (docs/processes.md#health)
    monkeypatch.setattr(health, "_public", None)  # not an answer an earlier test's request left cached
    response = client.get("/api/health")
    body = response.json()
    assert body["status"] in {"healthy", "degraded"}  # no worker runs in this test
    for name in ("database", "redis", "broker", "beat"):
        assert body["components"][name]["status"] == "healthy", name
    assert settings.REDIS_URL not in response.content.decode()
    assert "password" not in response.content.decode().lower()


@pytest.mark.django_db
def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/auth/login" in schema.content
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_periodic_tasks_are_synced_from_code():
    from django_celery_beat.models import PeriodicTask

    from tradingsite.schedules import SCHEDULES

    call_command("sync_schedules")
    call_command("sync_schedules")  # idempotent
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {s.name for s in SCHEDULES} <= names
    cleanup = PeriodicTask.objects.get(name="log cleanup")
    assert cleanup.enabled and cleanup.crontab.hour == "2"


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _production_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ENCRYPTION_KEYS")}
    env.update(DJANGO_SETTINGS_MODULE="tradingsite.settings.production", **extra)
    return env


def test_check_deploy_is_clean_with_production_settings():
    env = _production_env(
        SECRET_KEY="x" * 30 + "production-secret-key-for-the-check-only-0123456789",
        ENCRYPTION_KEYS="a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
        ALLOWED_HOSTS="engine.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_secrets():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=_production_env(), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
