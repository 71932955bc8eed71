"""System health: database, Redis, broker, workers, beat. Never returns secrets or URLs."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone


def _timed(check) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        extra = check() or {}
        result = {"status": "healthy", **extra}
    except Exception as exc:  # each failing component is reported, never raised
        result = {"status": "critical", "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _redis() -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    client.ping()
    return {}


def _broker() -> dict[str, Any]:
    from tradingsite.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        transport = conn.transport_cls
    return {"transport": str(transport)}


def _beat() -> dict[str, Any]:
    from django_celery_beat.models import PeriodicTasks

    changed = PeriodicTasks.last_change()
    return {"schedule_changed": changed.isoformat() if changed else None}


def _workers() -> dict[str, Any]:
    from tradingsite.celery import app

    replies = app.control.ping(timeout=0.5) or []
    if not replies:
        raise RuntimeError("no worker answered")
    return {"count": len(replies)}


CRITICAL = ("database", "redis", "broker")


def system_health(*, include_workers: bool = True) -> dict[str, Any]:
    """Health of every component; `critical` if a store is down, `degraded` if only workers are."""
    components = {
        "database": _timed(_database),
        "redis": _timed(_redis),
        "broker": _timed(_broker),
        "beat": _timed(_beat),
    }
    if include_workers:
        components["workers"] = _timed(_workers)
        if components["workers"]["status"] != "healthy":
            components["workers"]["status"] = "degraded"
    if any(components[name]["status"] == "critical" for name in CRITICAL):
        overall = "critical"
    elif any(c["status"] != "healthy" for c in components.values()):
        overall = "degraded"
    else:
        overall = "healthy"
    return {"status": overall, "checked_at": timezone.now().isoformat(), "components": components}
