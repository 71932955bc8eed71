"""Background tasks (docs/tasks.md): a registry of task kinds, their rows, and how one runs on the heavy
queue.

A kind is registered once (`task_kind_register`) with:

- `validate(owner, data) -> params`: checks the request and returns the JSON parameters to store, or raises
  `TaskInputError` naming each bad field (the API answers 400 with them);
- `run(context) -> outcome`: the work itself, on the heavy worker, outside any transaction; it reports
  with `context.progress(percent)`, which also raises `TaskRevokedError` once the owner revoked the task;
- `store(context, outcome) -> result`: optional; runs in the same transaction that marks the task
  SUCCESS and returns the JSON result shown by the API. A failed or revoked task never gets here, so it
  never leaves a half-written result.

States: PENDING (row written, message on the `heavy` queue) → STARTED (a heavy worker took it) →
PROGRESS (first progress report) → SUCCESS / FAILURE / REVOKED. Every change is published to the owner's
websocket group as `task.progress`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core.locks import advisory_key, advisory_lock_try
from positions.events import publish

from .choices import ACTIVE_STATUSES, FINISHED_STATUSES, TaskStatus
from .models import BackgroundTask

logger = logging.getLogger(__name__)

HEAVY_QUEUE = "heavy"
RUN_TASK = "analytics.run_task"  # the one celery task of the heavy queue (analytics/tasks.py)
PROGRESS_EVENT = "task.progress"
TASK_LOCK_NAMESPACE = 0x7A5C  # advisory locks of task submission, one per owner
TASK_RUN_NAMESPACE = 0x7A5D  # advisory locks held while a task runs, one per task
# A progress report writes the row and publishes at most this often (the last report always does).
PROGRESS_MIN_INTERVAL_S = 0.5
# How often a running task reads its row to see whether it was revoked.
REVOKE_CHECK_INTERVAL_S = 0.5


class TaskInputError(ValueError):
    """A request a kind refuses: `fields` maps each bad field to its reasons."""

    def __init__(self, fields: dict[str, list[str]], message: str | None = None):
        self.fields = fields
        first = next(iter(fields.items()), ("request", ["invalid"]))
        super().__init__(message or f"{first[0]}: {first[1][0]}")


class UnknownTaskKindError(LookupError):
    """No kind of this name is registered (yet)."""


class TaskLimitError(RuntimeError):
    """The owner already has as many unfinished tasks as allowed."""


class TaskRevokedError(Exception):
    """Raised inside a running task once its owner revoked it."""


class TaskFinishedError(RuntimeError):
    """The task already ended; there is nothing to revoke."""


@dataclass(frozen=True)
class TaskKindSpec:
    kind: str
    validate: Callable[[User, dict[str, Any]], dict[str, Any]]
    run: Callable[[TaskContext], Any]
    store: Callable[[TaskContext, Any], Any] | None = None


_KINDS: dict[str, TaskKindSpec] = {}


def task_kind_register(
    kind: str,
    *,
    validate: Callable[[User, dict[str, Any]], dict[str, Any]],
    run: Callable[[TaskContext], Any],
    store: Callable[[TaskContext, Any], Any] | None = None,
) -> None:
    """Make `kind` available to `POST /api/tasks/<kind>` and the heavy worker. Register at import of a
    module that `AnalyticsConfig.ready` imports, so the web and the workers know the same kinds."""
    _KINDS[kind] = TaskKindSpec(kind=kind, validate=validate, run=run, store=store)


def task_kinds() -> list[str]:
    return sorted(_KINDS)


def _spec(kind: str) -> TaskKindSpec:
    try:
        return _KINDS[kind]
    except KeyError:
        known = ", ".join(task_kinds()) or "none"
        raise UnknownTaskKindError(f"unknown task kind {kind!r} (available: {known})") from None


# --- progress and revocation inside a running task ------------------------------------------------


class TaskContext:
    """What a running kind sees: its task's id, owner and parameters, and `progress`."""

    def __init__(self, task: BackgroundTask, *, clock: Callable[[], float] = time.monotonic):
        self.task_id = task.pk
        self.owner_id = task.owner_id
        self.kind = task.kind
        self.params: dict[str, Any] = dict(task.params or {})
        self._clock = clock
        self._percent = 0
        self._written_at = -1e9
        self._checked_at = clock()

    @property
    def percent(self) -> int:
        return self._percent

    def __call__(self, done: float, total: float | None = None) -> None:
        """`progress(done, total)` or `progress(percent)`: a callable for runners that take one."""
        self.progress(done * 100 / total if total else done)

    def progress(self, percent: float) -> None:
        """Report `percent` (0-100). Written and published at most every PROGRESS_MIN_INTERVAL_S; raises
        `TaskRevokedError` when the task was revoked since the last look."""
        now = self._clock()
        value = max(0, min(100, int(percent)))
        if value > self._percent and (now - self._written_at >= PROGRESS_MIN_INTERVAL_S or value == 100):
            self._percent = value
            self._written_at = now
            _task_progress_write(task_id=self.task_id, percent=value)
        if now - self._checked_at >= REVOKE_CHECK_INTERVAL_S:
            self.check_revoked()

    def check_revoked(self) -> None:
        self._checked_at = self._clock()
        if BackgroundTask.objects.filter(pk=self.task_id, revoke_requested=True).exists():
            raise TaskRevokedError


def task_describe(*, task: BackgroundTask) -> dict[str, Any]:
    """The API's and the websocket's view of a task (docs/tasks.md#api)."""
    body: dict[str, Any] = {
        "task_id": str(task.pk),
        "kind": task.kind,
        "status": task.status,
        "progress": task.progress,
        "created_at": _iso(task.created_at),
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
        "revoke_requested": task.revoke_requested,
        "params": _params_shown(task.params),
        "status_url": f"/api/tasks/{task.pk}",
    }
    if task.status == TaskStatus.FAILURE:
        body["error"] = task.error
    elif task.status == TaskStatus.REVOKED:
        body["error"] = task.error or "revoked"
    else:
        body["result"] = task.result
    return body


def _params_shown(params: Any) -> Any:
    """The parameters without uploaded files' text (a CSV can be half a megabyte): their size instead."""
    if not isinstance(params, dict):
        return params
    return {
        key: f"<{len(value.encode())} bytes>" if key.endswith("_csv") and isinstance(value, str) else value
        for key, value in params.items()
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _publish(task: BackgroundTask) -> None:
    data = {key: value for key, value in task_describe(task=task).items() if key != "params"}
    publish(task.owner_id, PROGRESS_EVENT, data)


def _task_progress_write(*, task_id: Any, percent: int) -> None:
    with transaction.atomic():
        task = BackgroundTask.objects.select_for_update().filter(pk=task_id, status__in=ACTIVE_STATUSES).first()
        if task is None:
            return
        task.progress = max(task.progress, percent)
        task.status = TaskStatus.PROGRESS
        task.save(update_fields=["progress", "status"])
        _publish(task)


# --- services -----------------------------------------------------------------------------------------


def task_submit(*, owner: User, kind: str, data: Any) -> BackgroundTask:
    """Validate `data` for `kind`, store a PENDING task and send it to the heavy queue after commit.

    Raises `UnknownTaskKindError`, `TaskInputError` (nothing stored) or `TaskLimitError` (the owner already
    has `TASK_MAX_ACTIVE_PER_USER` tasks pending or running)."""
    spec = _spec(kind)
    if not isinstance(data, dict):
        raise TaskInputError({"body": ["must be a JSON object"]})
    params = spec.validate(owner, data)
    limit = int(settings.TASK_MAX_ACTIVE_PER_USER)
    with transaction.atomic():
        # A lock per owner for this transaction makes count-then-insert safe against two requests at once
        # (an advisory lock, not the user's row, which trading may hold).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [TASK_LOCK_NAMESPACE, advisory_key(owner.pk)])
        active = BackgroundTask.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).count()
        if active >= limit:
            raise TaskLimitError(
                f"you already have {active} unfinished tasks (at most {limit}); wait for one to end or revoke one"
            )
        task = BackgroundTask.objects.create(owner=owner, kind=kind, params=params, status=TaskStatus.PENDING)
        task.celery_task_id = str(task.pk)
        task.save(update_fields=["celery_task_id"])
        task_id = str(task.pk)
        transaction.on_commit(
            lambda: current_app.send_task(RUN_TASK, args=[task_id], task_id=task_id, queue=HEAVY_QUEUE)
        )
        _publish(task)
    return task


def task_revoke(*, task: BackgroundTask) -> BackgroundTask:
    """Stop a task: a PENDING one is REVOKED at once (the worker that takes its message skips it); a
    running one is flagged, and stops at its next progress report. Raises `TaskFinishedError` when it ended."""
    with transaction.atomic():
        row = BackgroundTask.objects.select_for_update().get(pk=task.pk)
        if row.status in FINISHED_STATUSES:
            raise TaskFinishedError(f"the task already ended ({row.status})")
        row.revoke_requested = True
        fields = ["revoke_requested"]
        if row.status == TaskStatus.PENDING:
            row.status, row.error = TaskStatus.REVOKED, "revoked before it started"
        elif not _running_somewhere(row.pk):
            # Started, but no worker holds its run lock: its worker died and nothing will stop it.
            row.status, row.error = TaskStatus.REVOKED, "revoked; no worker was running it"
        if row.status == TaskStatus.REVOKED:
            row.finished_at = timezone.now()
            fields += ["status", "error", "finished_at"]
        row.save(update_fields=fields)
        _publish(row)
        celery_id = row.celery_task_id
    if celery_id:
        # Drops the message if no worker took it yet; a running one stops on the flag (no terminate: a
        # killed process could die between two writes).
        current_app.control.revoke(celery_id)
    return row


def _running_somewhere(task_id: Any) -> bool:
    """Whether a worker holds the task's run lock (`task_execute`) now."""
    with advisory_lock_try(TASK_RUN_NAMESPACE, task_id) as free:
        return not free


def task_execute(*, task_id: str) -> None:
    """Run one task on the heavy worker (called by `analytics.run_task`). Safe to run twice: a finished
    task is left alone; a task whose worker died is run again from the start, one a live worker still runs
    (the broker redelivers a message unacknowledged for longer than its visibility timeout) is not."""
    with advisory_lock_try(TASK_RUN_NAMESPACE, task_id) as ours:
        if ours:
            _task_execute(task_id=task_id)
        else:
            logger.info("background task %s is already running elsewhere", task_id)


def _task_execute(*, task_id: str) -> None:
    with transaction.atomic():
        task = BackgroundTask.objects.select_for_update().filter(pk=task_id).first()
        if task is None or task.status in FINISHED_STATUSES:
            return
        if task.revoke_requested:
            _finish(task, TaskStatus.REVOKED, error="revoked before it started")
            return
        task.status = TaskStatus.STARTED
        task.progress = 0
        task.started_at = timezone.now()
        task.save(update_fields=["status", "progress", "started_at"])
        _publish(task)
    context = TaskContext(task)
    try:
        spec = _spec(task.kind)
        outcome = spec.run(context)
        context.check_revoked()
    except TaskRevokedError:
        _task_end(task_id=task_id, status=TaskStatus.REVOKED, error="revoked while running")
        return
    except TaskInputError as exc:
        _task_end(task_id=task_id, status=TaskStatus.FAILURE, error=str(exc))
        return
    except Exception as exc:
        logger.exception("background task %s (%s) failed", task_id, task.kind)
        _task_end(task_id=task_id, status=TaskStatus.FAILURE, error=f"{type(exc).__name__}: {exc}")
        return
    try:
        with transaction.atomic():
            row = BackgroundTask.objects.select_for_update().get(pk=task_id)
            if row.status in FINISHED_STATUSES:
                return
            if row.revoke_requested:
                _finish(row, TaskStatus.REVOKED, error="revoked while running")
                return
            result = spec.store(context, outcome) if spec.store is not None else outcome
            _finish(row, TaskStatus.SUCCESS, result=result)
    except Exception as exc:  # storing failed: the transaction rolled back, so nothing half-written stays
        logger.exception("background task %s (%s) could not store its result", task_id, task.kind)
        _task_end(task_id=task_id, status=TaskStatus.FAILURE, error=f"{type(exc).__name__}: {exc}")


def _task_end(*, task_id: str, status: str, error: str) -> None:
    with transaction.atomic():
        row = BackgroundTask.objects.select_for_update().get(pk=task_id)
        if row.status not in FINISHED_STATUSES:
            _finish(row, status, error=error)


def _finish(task: BackgroundTask, status: str, *, error: str = "", result: Any = None) -> None:
    task.status = status
    task.error = error[:5000]
    task.result = result
    task.finished_at = timezone.now()
    if status == TaskStatus.SUCCESS:
        task.progress = 100
    task.save(update_fields=["status", "error", "result", "finished_at", "progress"])
    _publish(task)


# --- selectors --------------------------------------------------------------------------------------


def task_list(
    *, owner: User, kind: str | None = None, status: str | None = None, limit: int = 100
) -> list[BackgroundTask]:
    qs = BackgroundTask.objects.filter(owner=owner)
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status.upper())
    return list(qs.order_by("-created_at")[:limit])


def task_get(*, owner: User, task_id: Any) -> BackgroundTask | None:
    """The owner's task, or None (another user's task is not found either)."""
    return BackgroundTask.objects.filter(owner=owner, pk=task_id).first()
