"""Prometheus metrics at `/metrics` (docs/processes.md#metrics), behind `METRICS_TOKEN`.

Everything is read when Prometheus scrapes, from what the engine already stores, so no request pays for
it: webhook outcomes and acknowledgement latency (each stored signal's `ack_ms`), order placement
latency (sent -> acknowledged) and outcomes, exchange weight used this minute, open groups, the waiting
queue and celery's queues. Task durations are the one thing measured on the way: each worker process
adds them up in memory and a background thread flushes the sums to Redis every few seconds, so every
worker on every machine lands in one histogram and no task waits for Redis.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.db.models import Count, F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from core.api import error_response
from exchanges.kv import kv_key, redis_client
from positions.choices import FINAL_GROUP_STATUSES
from positions.models import DCAOrder, ExitOrder, PositionGroup, QueuedSignal, WebhookSignal

from .celery import app
from .health import queue_names, weights_this_minute

WINDOW_S = 300  # outcomes and latencies of the last five minutes
QUANTILES = (0.5, 0.9, 0.99)
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FLUSH_EVERY_S = 5.0


def _quantiles(values: list[float]) -> dict[float, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in QUANTILES}


# ----------------------------------------------------------------------------------------- task durations


class TaskDurations:
    """Per-process sums of task durations, flushed to one Redis hash per task name by a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._pending: dict[str, list[float]] = {}
        self._thread: threading.Thread | None = None

    def start(self, task_id: str) -> None:
        self._started[task_id] = time.perf_counter()

    def stop(self, task_id: str, name: str) -> None:
        began = self._started.pop(task_id, None)
        if began is None:
            return
        with self._lock:
            self._pending.setdefault(name, []).append(time.perf_counter() - began)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="task-metrics", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            try:
                self.flush()
            except Exception:  # Redis away: the sums wait for the next flush
                continue

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        pipe = redis_client().pipeline(transaction=False)
        for name, durations in batch.items():
            key = kv_key("metrics", "task", name)
            for seconds in durations:
                bucket = next((str(b) for b in TASK_BUCKETS if seconds <= b), "+Inf")
                pipe.hincrby(key, bucket, 1)
            pipe.hincrby(key, "count", len(durations))
            pipe.hincrbyfloat(key, "sum", sum(durations))
            pipe.sadd(kv_key("metrics", "tasks"), name)
        pipe.execute()


DURATIONS = TaskDurations()


@task_prerun.connect
def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        DURATIONS.start(task_id)


@task_postrun.connect
def _task_ended(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id and task is not None:
        DURATIONS.stop(task_id, str(task.name))


# ----------------------------------------------------------------------------------------- collector


class EngineCollector(Collector):
    """Reads the engine's state when scraped."""

    def collect(self) -> Iterator[Any]:
        since = timezone.now() - timedelta(seconds=WINDOW_S)
        yield from self._webhooks(since)
        yield from self._orders(since)
        yield from self._state()
        yield from self._tasks()

    def _webhooks(self, since: Any) -> Iterator[Any]:
        outcomes = GaugeMetricFamily(
            "engine_webhooks_recent", f"Webhooks received in the last {WINDOW_S} s by outcome", labels=["status"]
        )
        rows = WebhookSignal.objects.filter(received_at__gte=since).values("status").annotate(n=Count("id"))
        for row in rows:
            outcomes.add_metric([row["status"]], row["n"])
        yield outcomes
        latency = GaugeMetricFamily(
            "engine_webhook_ack_seconds",
            f"Webhook acknowledgement time over the last {WINDOW_S} s",
            labels=["quantile"],
        )
        acks = [
            ms / 1000
            for ms in WebhookSignal.objects.filter(received_at__gte=since, ack_ms__isnull=False).values_list(
                "ack_ms", flat=True
            )
            if ms is not None
        ]
        for q, value in _quantiles(acks).items():
            latency.add_metric([str(q)], value)
        yield latency

    def _orders(self, since: Any) -> Iterator[Any]:
        outcomes = GaugeMetricFamily(
            "engine_orders_recent", f"Orders created in the last {WINDOW_S} s by status", labels=["kind", "status"]
        )
        latencies: list[float] = []
        for kind, table in (("entry", DCAOrder), ("exit", ExitOrder)):
            for row in table.objects.filter(created_at__gte=since).values("status").annotate(n=Count("id")):
                outcomes.add_metric([kind, row["status"]], row["n"])
            placed = table.objects.filter(
                submitted_at__gte=since, acknowledged_at__isnull=False, acknowledged_at__gte=F("submitted_at")
            ).values_list("submitted_at", "acknowledged_at")
            latencies += [(ack - sent).total_seconds() for sent, ack in placed if sent is not None and ack is not None]
        yield outcomes
        latency = GaugeMetricFamily(
            "engine_order_placement_seconds",
            f"Order sent -> acknowledged by the exchange over the last {WINDOW_S} s",
            labels=["quantile"],
        )
        for q, value in _quantiles(latencies).items():
            latency.add_metric([str(q)], value)
        yield latency

    def _state(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "engine_open_groups",
            "Position groups not closed or failed",
            value=PositionGroup.objects.exclude(status__in=FINAL_GROUP_STATUSES).count(),
        )
        yield GaugeMetricFamily(
            "engine_waiting_queue", "Signals waiting for a pool slot", value=QueuedSignal.objects.count()
        )
        depths = GaugeMetricFamily("engine_task_queue_depth", "Messages waiting in a celery queue", labels=["queue"])
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                for name in queue_names():
                    try:
                        depths.add_metric(
                            [name], conn.default_channel.queue_declare(queue=name, passive=True).message_count
                        )
                    except Exception:  # a queue nobody declared yet: nothing waits in it
                        depths.add_metric([name], 0)
        except Exception:  # broker away: /api/health says so; the other metrics still scrape
            pass
        yield depths
        weight = GaugeMetricFamily(
            "engine_exchange_weight_used", "Exchange request weight booked this minute", labels=["host"]
        )
        for host, used in weights_this_minute().items():
            weight.add_metric([host], used)
        yield weight

    def _tasks(self) -> Iterator[Any]:
        DURATIONS.flush()  # this process's own tasks (a worker serving /metrics in tests) count too
        family = HistogramMetricFamily("engine_task_duration_seconds", "Celery task run time", labels=["task"])
        client = redis_client()
        for name in sorted(client.smembers(kv_key("metrics", "tasks"))):
            stored = client.hgetall(kv_key("metrics", "task", name))
            cumulative, buckets = 0, []
            for bound in (*[str(b) for b in TASK_BUCKETS], "+Inf"):
                cumulative += int(stored.get(bound, 0))
                buckets.append((bound, cumulative))
            family.add_metric([str(name)], buckets, float(stored.get("sum", 0)))
        yield family


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(EngineCollector())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; `Authorization: Bearer <METRICS_TOKEN>`, 403 while no token is configured."""
    token = str(getattr(settings, "METRICS_TOKEN", "") or "")
    if not token:
        return error_response(403, "forbidden", "Metrics are off: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error_response(401, "unauthorized", "A bearer token is required.")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
