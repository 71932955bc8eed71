"""System health (docs/processes.md#health): database, Redis, broker, workers answering, beat's heartbeat,
each enabled exchange (last good validation, circuit state, weight used this minute), queue depths and the
task backlog. Never returns secrets, URLs or hosts' credentials.

`critical`: a store (database, Redis, broker) is down. `degraded`: the engine runs but something needs an
operator (no worker answers, beat's heartbeat is late, an exchange's circuit is open, work piles up).
A change of the overall status is told to operators (`health_watch`): by the 15-minute task, and by the
beat process's own watcher, which still runs when every worker is down and then sends the message itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.logs import log_warning
from exchanges.circuit import CircuitBreaker
from exchanges.kv import kv_key, redis_client
from exchanges.models import ExchangeConfig
from notifications.choices import EventType
from notifications.services import delivery_send, notify_operators
from positions.choices import OrderStatus, ProcessingStatus
from positions.models import DCAOrder, ExitOrder, WebhookSignal

from .celery import app

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "tradingsite.beat_heartbeat"
HEARTBEAT_EVERY_S = 30
HEARTBEAT_LATE_S = 3 * HEARTBEAT_EVERY_S
HEARTBEAT_KEY = "health:beat_heartbeat"
LAST_STATUS_KEY = "health:last_status"
QUEUE_BACKLOG_DEGRADED = 500  # messages waiting in a celery queue
SIGNALS_PENDING_DEGRADED = 200  # accepted signals not yet processed
WATCH_EVERY_S = 60

Check = Callable[[], dict[str, Any]]


def _timed(check: Check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"status": "healthy", **(check() or {})}
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
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return {}


def queue_names() -> list[str]:
    names = {app.conf.task_default_queue or "celery"}
    for queue in app.conf.task_queues or ():
        names.add(queue.name)
    for route in (app.conf.task_routes or {}).values() if isinstance(app.conf.task_routes, dict) else ():
        if isinstance(route, dict) and route.get("queue"):
            names.add(str(route["queue"]))
    return sorted(names)


def _broker() -> dict[str, Any]:
    """The broker answers, and how many messages wait in each queue (Redis and RabbitMQ alike)."""
    depths: dict[str, int] = {}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        for name in queue_names():
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except Exception:  # a queue nobody declared yet (RabbitMQ): nothing waits in it
                depths[name] = 0
                channel = conn.channel()
        transport = conn.transport.driver_type
    result: dict[str, Any] = {"transport": transport, "queues": depths}
    if any(depth > QUEUE_BACKLOG_DEGRADED for depth in depths.values()):
        result["status"] = "degraded"
        result["reason"] = "work is piling up in a queue"
    return result


def _workers() -> dict[str, Any]:
    replies = app.control.ping(timeout=1.0) or []
    if not replies:
        return {"status": "degraded", "count": 0, "reason": "no worker answered"}
    return {"count": len(replies), "names": sorted(name for reply in replies for name in reply)}


def beat_heartbeat_record() -> None:
    """Written by the `tradingsite.beat_heartbeat` task, which beat sends every HEARTBEAT_EVERY_S."""
    cache.set(HEARTBEAT_KEY, time.time(), timeout=7 * 86400)


def _beat() -> dict[str, Any]:
    last = cache.get(HEARTBEAT_KEY)
    scheduled = PeriodicTask.objects.filter(task=HEARTBEAT_TASK, enabled=True).exists()
    if last is None:
        return {"status": "degraded", "reason": "no heartbeat yet", "scheduled": scheduled}
    age = time.time() - float(last)
    result: dict[str, Any] = {"last_heartbeat_s_ago": round(age, 1)}
    if age > HEARTBEAT_LATE_S:
        result.update(status="degraded", reason=f"heartbeat {age:.0f} s old (beat or every worker stopped)")
    return result


def _exchanges() -> dict[str, Any]:
    """Each enabled exchange: accounts validated, the worst circuit state among them, weight used this minute."""
    client = redis_client()
    per_exchange: dict[str, dict[str, Any]] = {}
    configs = ExchangeConfig.objects.filter(is_enabled=True).only(
        "id", "exchange_name", "is_validated", "last_validated"
    )
    for config in configs:
        entry = per_exchange.setdefault(
            config.exchange_name, {"accounts": 0, "validated": 0, "last_validation": None, "circuits_open": 0}
        )
        entry["accounts"] += 1
        entry["validated"] += int(config.is_validated)
        if config.last_validated and (
            entry["last_validation"] is None or config.last_validated.isoformat() > entry["last_validation"]
        ):
            entry["last_validation"] = config.last_validated.isoformat()
        state = client.hget(CircuitBreaker(f"config:{config.pk}").key, "state") or "closed"
        if state != "closed":
            entry["circuits_open"] += 1
    for name, entry in per_exchange.items():
        state = client.hget(CircuitBreaker(f"public:{name}").key, "state") or "closed"
        entry["public_circuit"] = state
    weights = weights_this_minute()
    result: dict[str, Any] = {"exchanges": per_exchange, "weight_used_this_minute": weights}
    if any(e["circuits_open"] or e["public_circuit"] != "closed" for e in per_exchange.values()):
        result["status"] = "degraded"
        result["reason"] = "an exchange's circuit breaker is open"
    return result


def weights_this_minute() -> dict[str, int]:
    """Request weight booked so far this minute, per exchange host (`exchanges.ratelimit.WeightBudget`'s keys)."""
    client = redis_client()
    minute = int(time.time() // 60)
    prefix, suffix = kv_key("rl", "w", ""), f":{minute}"
    weights: dict[str, int] = {}
    for key in client.scan_iter(match=kv_key("rl", "w", "*", minute), count=500):
        name = str(key)
        if name.startswith(prefix) and name.endswith(suffix):
            weights[name[len(prefix) : -len(suffix)]] = int(client.get(key) or 0)  # a host may hold a ':port'
    return weights


def _backlog() -> dict[str, Any]:
    pending_signals = WebhookSignal.objects.filter(processing_status=ProcessingStatus.PENDING).count()
    unsent = sum(
        table.objects.filter(status__in=[OrderStatus.PENDING, OrderStatus.UNKNOWN], submit_attempts__gt=0).count()
        for table in (DCAOrder, ExitOrder)
    )
    result: dict[str, Any] = {"signals_pending": pending_signals, "orders_unresolved": unsent}
    if pending_signals > SIGNALS_PENDING_DEGRADED:
        result.update(status="degraded", reason="signals wait to be processed")
    return result


CRITICAL = ("database", "redis", "broker")
CHECKS: dict[str, Check] = {
    "database": _database,
    "redis": _redis,
    "broker": _broker,
    "workers": _workers,
    "beat": _beat,
    "exchanges": _exchanges,
    "backlog": _backlog,
}
NEEDS_DATABASE = ("beat", "exchanges", "backlog")
NEEDS_REDIS = ("exchanges",)


def system_health(*, include_workers: bool = True) -> dict[str, Any]:
    """`{status, checked_at, components}`: `critical` if a store is down, `degraded` if anything else is."""
    components: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        if name == "workers" and not include_workers:
            continue
        down = [store for store in ("database", "redis") if components.get(store, {}).get("status") == "critical"]
        if (name in NEEDS_DATABASE and "database" in down) or (name in NEEDS_REDIS and "redis" in down):
            components[name] = {"status": "unknown", "reason": f"{' and '.join(down)} down"}
            continue
        components[name] = _timed(check)
        if name not in CRITICAL and components[name]["status"] == "critical":
            components[name]["status"] = "degraded"  # only the stores make the engine critical
    if any(components[name]["status"] == "critical" for name in CRITICAL):
        overall = "critical"
    elif any(c["status"] != "healthy" for c in components.values()):
        overall = "degraded"
    else:
        overall = "healthy"
    return {"status": overall, "checked_at": timezone.now().isoformat(), "components": components}


def _summary(report: dict[str, Any]) -> str:
    bad = [
        f"{name}: {c.get('reason') or c.get('error') or c['status']}"
        for name, c in report["components"].items()
        if c["status"] != "healthy"
    ]
    return "; ".join(bad) or "every component healthy"


def health_watch(*, send_now: bool = False) -> dict[str, Any]:
    """Check health; when the overall status differs from the last one seen, tell the operators.

    `send_now` sends the messages in this process (the beat watcher: the workers may be what is down);
    otherwise they go through the delivery task like every other message.
    """
    report = system_health()
    status = report["status"]
    try:
        previous = cache.get(LAST_STATUS_KEY)
        cache.set(LAST_STATUS_KEY, status, timeout=None)
    except Exception:  # Redis down: the report says so; nothing to compare with
        return report
    if previous is not None and previous != status:
        text = f"Engine health {previous} -> {status}: {_summary(report)}"
        log_warning("SYSTEM", text, details={"from": previous, "to": status})
        try:
            deliveries = notify_operators(event_type=EventType.HEALTH_CHANGE, text=text, dispatch=not send_now)
            if send_now:
                for delivery in deliveries:
                    delivery_send(delivery_id=delivery.pk)
        except Exception:  # the database may be what is down: the log line above stays
            logger.exception("could not notify operators of the health change")
    report["changed_from"] = previous if previous != status else None
    return report


class HealthWatcher(threading.Thread):
    """Runs `health_watch(send_now=True)` every WATCH_EVERY_S in the beat process (started by
    tradingsite.celery when beat starts), so a stopped worker is told within a minute."""

    def __init__(self, every_s: float = WATCH_EVERY_S) -> None:
        super().__init__(name="health-watch", daemon=True)
        self.every_s = every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                health_watch(send_now=True)
            except Exception:  # the watcher must outlive any one failed check
                logger.exception("health watch failed")
            finally:
                connection.close()


_public: tuple[float, dict[str, Any]] | None = None
_public_lock = threading.Lock()
PUBLIC_TTL_S = 5.0


def system_health_public() -> dict[str, Any]:
    """`system_health` for the unauthenticated `/api/health`: computed at most once per PUBLIC_TTL_S per
    process, so a flood of health requests cannot turn into a flood of worker pings and Redis scans."""
    global _public
    with _public_lock:
        if _public is None or time.monotonic() - _public[0] > PUBLIC_TTL_S:
            _public = (time.monotonic(), system_health())
        return _public[1]
