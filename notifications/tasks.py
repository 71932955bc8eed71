"""Celery tasks of notifications: thin callers of `notifications.services` and `notifications.reports`."""

from __future__ import annotations

import json

from celery import shared_task

from . import reports, rules, services


@shared_task(name="notifications.engine_event", ignore_result=True)
def engine_event(payload: str) -> int:
    """The messages of one engine event (fill, close, rejection, failure), one per enabled channel."""
    return len(services.engine_event_notify(payload=json.loads(payload)))


# Retries are counted by the delivery itself (services.MAX_ATTEMPTS); rate-limit waits are retries too,
# hence the generous task limit.
@shared_task(name="notifications.deliver", bind=True, max_retries=60, acks_late=True, ignore_result=True)
def deliver(self, delivery_id: str) -> str:  # type: ignore[no-untyped-def]
    outcome, wait_s = services.delivery_send(delivery_id=delivery_id)
    if outcome == rules.RETRY:
        if self.request.retries >= self.max_retries:
            services.delivery_give_up(delivery_id=delivery_id, reason="retries exhausted")
            return rules.FAILED
        raise self.retry(countdown=wait_s)
    return outcome


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
