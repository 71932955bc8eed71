"""Every periodic task of the engine, defined here once and synced into django-celery-beat (SPEC §4)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Every:
    seconds: int


@dataclass(frozen=True)
class DailyAt:
    hour: int
    minute: int = 0


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    when: Every | DailyAt
    description: str


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("monitor order fills", "positions.monitor_fills", Every(10), "Poll open orders, record fills"),
    Schedule("check exits", "positions.check_exits", Every(15), "Take-profit, trailing and stop conditions"),
    Schedule("evaluate risk engine", "riskengine.evaluate", Every(30), "Offset losers with winners"),
    Schedule("reconcile orders", "positions.reconcile", Every(300), "DB and exchange back in agreement"),
    Schedule("validate exchange connections", "exchanges.validate_all", Every(300), "Authenticated ping"),
    Schedule("refresh market rules", "exchanges.refresh_market_rules", Every(3600), "Tick, step, minimums"),
    Schedule("system health check", "tradingsite.health_check", Every(900), "Stores, broker, workers"),
    Schedule("daily performance analysis", "analytics.daily_performance", DailyAt(1), "And strategy auto-disable"),
    Schedule("daily portfolio report", "analytics.daily_report", DailyAt(8), "Notifications"),
    Schedule("log cleanup", "accounts.cleanup_logs", DailyAt(2), "System > 30 days, audit > 90 days"),
)


def sync_schedules() -> dict[str, int]:
    """Create or update one PeriodicTask per schedule; tasks not yet registered are kept disabled."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    from tradingsite.celery import app

    app.loader.import_default_modules()
    registered = set(app.tasks.keys())
    counts = {"created": 0, "updated": 0, "disabled": 0}
    for item in SCHEDULES:
        fields: dict[str, object] = {"task": item.task, "description": item.description, "kwargs": json.dumps({})}
        if isinstance(item.when, Every):
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=item.when.seconds, period=IntervalSchedule.SECONDS
            )
            fields.update(interval=interval, crontab=None)
        else:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=str(item.when.minute),
                hour=str(item.when.hour),
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="UTC",
            )
            fields.update(crontab=crontab, interval=None)
        enabled = item.task in registered
        fields["enabled"] = enabled
        if not enabled:
            counts["disabled"] += 1
        _, created = PeriodicTask.objects.update_or_create(name=item.name, defaults=fields)
        counts["created" if created else "updated"] += 1
    return counts


def run_worker_start_hooks() -> None:
    """At worker start: reconcile orders with the exchanges (SPEC §4), when that task exists."""
    from tradingsite.celery import app

    if "positions.reconcile" in app.tasks:
        app.send_task("positions.reconcile")
