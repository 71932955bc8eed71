"""Every periodic task of the engine, defined here once and synced into django-celery-beat.

A schedule names a task that is registered with celery (tradingsite/tests/test_schedules.py checks it);
a task still to be built gets its schedule together with its code. The sync makes the database match
this list: what the list no longer defines stops beating.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tradingsite.celery import app

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
    Schedule("risk engine cycle", "riskengine.evaluate", Every(30), "Offset eligible losers with winners"),
    Schedule("expire queued signals", "positions.expire_queue", Every(60), "queue_max_age_minutes"),
    Schedule(
        "groups waiting for market rules",
        "positions.retry_market_rules",
        Every(60),
        "Reload the rules and place the grid; fail past queue_max_age_minutes",
    ),
    Schedule("reconcile orders", "positions.reconcile", Every(300), "DB and exchange back in agreement"),
    Schedule("validate exchange connections", "exchanges.validate_all", Every(300), "Authenticated ping"),
    Schedule("refresh market rules", "exchanges.refresh_market_rules", Every(3600), "Tick, step, minimums"),
    Schedule(
        "candle sync and strategies",
        "strategies.tick",
        Every(60),
        "Each closed candle of an enabled strategy's series: stored, evaluated, signals to the intake",
    ),
    Schedule("system health check", "tradingsite.health_check", Every(900), "Tells operators when health changes"),
    Schedule("beat heartbeat", "tradingsite.beat_heartbeat", Every(30), "Proves beat, broker and a worker run"),
    Schedule("resume stale notifications", "notifications.resume_stale", Every(300), "Messages a dead worker held"),
    Schedule("daily performance", "notifications.daily_performance", DailyAt(1), "Yesterday's deals per user"),
    Schedule(
        "advisor review", "analytics.advisor_daily", DailyAt(1, 30), "LLM review of yesterday per user, when enabled"
    ),
    Schedule("log cleanup", "accounts.cleanup_logs", DailyAt(2), "System > 30 days, audit > 90 days"),
    Schedule("database backup", "tradingsite.backup", DailyAt(3), "pg_dump into BACKUP_DIR when it is set"),
    Schedule("portfolio report", "notifications.daily_portfolio", DailyAt(8), "Balances, PnL, equity chart"),
)


class UnregisteredTaskError(RuntimeError):
    """A schedule names a task celery does not know: beat would send it every time to no one."""


def sync_schedules(*, schedules: Sequence[Schedule] = SCHEDULES) -> dict[str, int]:
    """Make django-celery-beat's PeriodicTasks match `schedules` (the engine's SCHEDULES).

    One enabled PeriodicTask per schedule (created or updated). A PeriodicTask that SCHEDULES no longer
    defines is deleted when its task is not registered (it can only fail) and disabled otherwise (an
    operator's own entry stays visible in the admin, but schedules live here); celery's own entries
    (`celery.*`, such as `celery.backend_cleanup` that beat adds itself) are left alone.
    Raises `UnregisteredTaskError` before writing anything when a schedule names an unknown task.
    """
    app.loader.import_default_modules()
    registered = set(app.tasks.keys())
    missing = sorted({item.task for item in schedules} - registered)
    if missing:
        raise UnregisteredTaskError(f"schedules name tasks that are not registered: {', '.join(missing)}")
    counts = {"created": 0, "updated": 0, "disabled": 0, "deleted": 0}
    with transaction.atomic():
        for item in schedules:
            fields: dict[str, object] = {
                "task": item.task,
                "description": item.description,
                "kwargs": json.dumps({}),
                "enabled": True,
            }
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
            _, created = PeriodicTask.objects.update_or_create(name=item.name, defaults=fields)
            counts["created" if created else "updated"] += 1
        stale = PeriodicTask.objects.exclude(name__in=[item.name for item in schedules]).exclude(
            task__startswith="celery."
        )
        for task in stale:
            if task.task not in registered:
                logger.info("deleting periodic task %r: its task %r is not registered", task.name, task.task)
                task.delete()
                counts["deleted"] += 1
            elif task.enabled:
                logger.info("disabling periodic task %r: not defined in tradingsite/schedules.py", task.name)
                task.enabled = False
                task.save(update_fields=["enabled"])
                counts["disabled"] += 1
    return counts
