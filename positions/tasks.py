"""Celery tasks: load by id, call a service. Temporary trouble retries with backoff."""

from __future__ import annotations

from celery import shared_task

from .services import exits, monitor, orders, processing, queue
from .services import reconcile as reconciliation


@shared_task(name="positions.process_signal", bind=True, max_retries=12, acks_late=True, ignore_result=True)
def process_signal(self, signal_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return processing.signal_process(signal_id=signal_id)
    except processing.RetryLaterError as exc:
        raise self.retry(exc=exc, countdown=min(60, 0.5 * 2**self.request.retries)) from exc


@shared_task(name="positions.submit_order", bind=True, max_retries=12, acks_late=True, ignore_result=True)
def submit_order(self, order_id: str) -> str:  # type: ignore[no-untyped-def]
    outcome = orders.order_submit(order_id=order_id)
    if outcome in (orders.RETRY, orders.UNKNOWN):
        raise self.retry(countdown=min(60, 0.5 * 2**self.request.retries))
    return outcome


@shared_task(name="positions.close_group", bind=True, max_retries=20, acks_late=True, ignore_result=True)
def close_group(self, group_id: str, purpose: str = "manual") -> str:  # type: ignore[no-untyped-def]
    started = exits.group_close(group_id=group_id, purpose=purpose)
    return "closing" if started else exits.group_close_continue(group_id=group_id)


@shared_task(name="positions.monitor_fills")
def monitor_fills() -> dict:
    return monitor.monitor_fills().as_dict()


@shared_task(name="positions.check_exits")
def check_exits() -> dict:
    return monitor.check_exits()


@shared_task(name="positions.reconcile")
def reconcile() -> dict:
    return reconciliation.reconcile().as_dict()


@shared_task(name="positions.promote_queue", ignore_result=True)
def promote_queue(user_id: str) -> list[str]:
    """A pool slot was freed: open groups for queued signals while there is room."""
    return queue.queue_promote(user_id=user_id)


@shared_task(name="positions.expire_queue", ignore_result=True)
def expire_queue() -> int:
    """Drop queued signals older than their user's `queue_max_age_minutes`."""
    return queue.queue_expire_all()


@shared_task(name="positions.retry_market_rules", ignore_result=True)
def retry_market_rules() -> dict[str, int]:
    """Groups waiting for their market's rules: reload the rules, place the grid once they are there, fail
    a group that waited past its `queue_max_age_minutes` (docs/engine.md#group-states)."""
    return processing.market_rules_waiting_retry()
