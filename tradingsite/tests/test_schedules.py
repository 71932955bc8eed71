"""Schedules: each names a registered task, and the sync makes django-celery-beat match the code."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tradingsite.celery import app
from tradingsite.schedules import SCHEDULES, Every, Schedule, UnregisteredTaskError, sync_schedules


def test_every_schedule_names_a_registered_task() -> None:
    app.loader.import_default_modules()
    missing = [(item.name, item.task) for item in SCHEDULES if item.task not in app.tasks]
    assert missing == []


def test_schedule_names_are_unique() -> None:
    names = [item.name for item in SCHEDULES]
    assert len(names) == len(set(names))


def _stale(name: str, task: str, *, enabled: bool = True) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name=name, task=task, interval=interval, kwargs=json.dumps({}), enabled=enabled)


@pytest.mark.django_db
def test_sync_removes_what_the_code_no_longer_defines() -> None:
    # An existing database from before: a schedule for a task that was never built, one for a real task
    # that the code no longer schedules, and celery's own cleanup entry.
    _stale("evaluate risk engine", "riskengine.never_built")
    _stale("old fills poll", "positions.monitor_fills")
    _stale("celery.backend_cleanup", "celery.backend_cleanup")
    # A schedule the code defines but that was disabled (e.g. by an older sync whose task was missing).
    _stale("log cleanup", "accounts.cleanup_logs", enabled=False)

    counts = sync_schedules()

    tasks = {task.name: task for task in PeriodicTask.objects.all()}
    assert "evaluate risk engine" not in tasks
    assert tasks["old fills poll"].enabled is False
    assert tasks["celery.backend_cleanup"].enabled is True
    assert tasks["log cleanup"].enabled is True
    assert tasks["log cleanup"].crontab is not None and tasks["log cleanup"].interval is None
    for item in SCHEDULES:
        assert tasks[item.name].task == item.task and tasks[item.name].enabled, item.name
    assert counts == {"created": len(SCHEDULES) - 1, "updated": 1, "disabled": 1, "deleted": 1}

    # A second sync changes nothing more.
    assert sync_schedules() == {"created": 0, "updated": len(SCHEDULES), "disabled": 0, "deleted": 0}


@pytest.mark.django_db
def test_sync_refuses_a_schedule_for_a_missing_task() -> None:
    broken = (*SCHEDULES, Schedule("ghost", "nowhere.ghost", Every(60), "a task nobody wrote"))
    with pytest.raises(UnregisteredTaskError, match="nowhere.ghost"):
        sync_schedules(schedules=broken)
    assert not PeriodicTask.objects.exists()  # refused before writing anything


@pytest.mark.django_db
def test_sync_command_reports_counts(capsys: pytest.CaptureFixture[str]) -> None:
    _stale("daily portfolio report", "analytics.daily_report")
    call_command("sync_schedules")
    out = capsys.readouterr().out
    assert f"{len(SCHEDULES)} created" in out and "1 deleted" in out
    assert not PeriodicTask.objects.filter(task="analytics.daily_report").exists()
