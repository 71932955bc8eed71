"""Celery tasks of the analytics app: thin callers of the task framework. `analytics.run_task` is routed
to the `heavy` queue (settings `CELERY_TASK_ROUTES`), which only the heavy worker consumes
(docs/processes.md#heavy-worker)."""

from __future__ import annotations

from celery import shared_task

from . import tasks_framework
from .advisor import services as advisor_services


@shared_task(name=tasks_framework.RUN_TASK, queue=tasks_framework.HEAVY_QUEUE)
def run_task(task_id: str) -> None:
    """Run background task `task_id` (a `BackgroundTask` row) to its end."""
    tasks_framework.task_execute(task_id=task_id)


@shared_task(name="analytics.advisor_daily", queue=tasks_framework.HEAVY_QUEUE)
def advisor_daily() -> dict[str, int]:
    """The advisor's daily review of every user who has traded; does nothing while it is off
    (docs/advisor.md)."""
    return advisor_services.advisor_review_all()
