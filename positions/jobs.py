"""Work handed to celery once the current transaction commits, by task name.

Services enqueue through here instead of importing `positions.tasks`, which imports the services:
the tasks stay thin callers of services and no service module needs the tasks module. Celery routes
by name either way (docs/processes.md#worker).
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

PROCESS_SIGNAL = "positions.process_signal"
SUBMIT_ORDER = "positions.submit_order"
PROMOTE_QUEUE = "positions.promote_queue"


def enqueue(task_name: str, *args: str) -> None:
    """Send `task_name(*args)` to celery now."""
    current_app.send_task(task_name, args=args)


def enqueue_after_commit(task_name: str, *args: str) -> None:
    """Send `task_name(*args)` to celery on commit (at once when no transaction is open)."""
    transaction.on_commit(lambda: current_app.send_task(task_name, args=args))
