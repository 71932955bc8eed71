"""Celery tasks of notifications: thin callers of `notifications.services` and `notifications.reports`."""

from __future__ import annotations

import json

from celery import shared_task

from . import reports, services


@shared_task(name="notifications.engine_event", ignore_result=True)
def engine_event(payload: str) -> int:
    """The messages of one engine event (fill, close, rejection, failure), one per enabled channel."""
    return len(services.engine_event_notify(payload=json.loads(payload)))


@shared_task(name="notifications.deliver", ignore_result=True)
def deliver(delivery_id: str) -> str:
    """Hand the message to the worker's sender threads (services.delivery_dispatch): celery's own threads,
    which trading runs on, never wait for a notification service. Retries are sent back here with
    their countdown; the attempts are counted by the delivery itself (services.MAX_ATTEMPTS)."""
    services.delivery_dispatch(delivery_id=delivery_id)
    return "dispatched"


@shared_task(name="notifications.resume_stale", ignore_result=True)
def resume_stale() -> int:
    """Pending messages whose worker died mid-send are sent again."""
    return services.deliveries_resume()


@shared_task(name="notifications.telegram_register", ignore_result=True)
def telegram_register(channel_id: str) -> str:
    """Point the bot's webhook at this engine so the owner's chat can send commands."""
    return services.telegram_webhook_register(channel_id=channel_id)


@shared_task(name="notifications.daily_performance")
def daily_performance() -> dict[str, int]:
    return reports.daily_performance_run()


@shared_task(name="notifications.daily_portfolio")
def daily_portfolio() -> dict[str, int]:
    return reports.daily_portfolio_run()
