"""The celery application: configuration from Django settings, tasks discovered in every app."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings.dev")

app = Celery("tradingsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _add_worker_steps() -> None:
    from positions.dispatch import DispatcherStep

    app.steps["worker"].add(DispatcherStep)


_add_worker_steps()


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):  # type: ignore[no-untyped-def]
    """Once a worker is up: reconcile orders with the exchanges, e.g. after a crash
    (docs/engine.md#reconciliation)."""
    if "positions.reconcile" in app.tasks:
        app.send_task("positions.reconcile")


@beat_init.connect
def _on_beat_init(sender=None, **kwargs):  # type: ignore[no-untyped-def]
    """Beat also watches health every minute and tells operators of a change itself, so that a stopped
    worker is reported even when no worker is left to run the 15-minute check (docs/processes.md#health)."""
    from .health import HealthWatcher  # imports models: Django is set up only once beat runs

    HealthWatcher().start()
