"""The celery application: configuration from Django settings, tasks discovered in every app."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

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
    """Hooks that must run once a worker is up (e.g. reconciliation after a crash)."""
    from tradingsite.schedules import run_worker_start_hooks

    run_worker_start_hooks()
