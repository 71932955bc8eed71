"""Background tasks (backtests, optimization, training, bulk analysis) and stored backtest runs
(docs/tasks.md)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .advisor.models import AdvisorReview, AdvisorSettings  # noqa: F401  the advisor's rows (docs/advisor.md)
from .choices import TaskKind, TaskStatus
from .ml.models import FilterModel, ModelStatus  # noqa: F401  the ML model registry lives with the ML code (docs/ml.md)


class BackgroundTask(models.Model):
    """One long job of a user, run on the heavy celery queue: its kind and parameters, its state
    (PENDING → STARTED → PROGRESS → SUCCESS / FAILURE / REVOKED), progress in percent, and its result or
    error. Written only by `analytics.tasks_framework`; the API and the websocket (`task.progress`) show
    it. `revoke_requested` is the flag a running job checks to stop."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="background_tasks")
    kind = models.CharField(max_length=32, choices=TaskKind.choices)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    params = models.JSONField(default=dict, blank=True, help_text="The validated request.")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    revoke_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "status"], name="bgtask_owner_status")]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="bgtask_progress_le_100"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} {self.progress}% ({self.id})"


class BacktestRun(models.Model):
    """A finished backtest: the request it answered, its metrics, deals, equity curve and fills. Written
    once, in one transaction, when its task succeeds; a failed or revoked task leaves none."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtest_runs")
    task = models.OneToOneField(
        BackgroundTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="backtest_run"
    )
    symbol = models.CharField(max_length=64)
    timeframe = models.CharField(max_length=8)
    exchange_name = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True, help_text="The request: source, period, config.")
    metrics = models.JSONField(default=dict, blank=True)
    deals = models.JSONField(default=list, blank=True)
    equity = models.JSONField(default=list, blank=True, help_text="[[time_ms, realized, marked], ...]")
    fills = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="backtestrun_owner_created")]

    def __str__(self) -> str:
        return f"backtest {self.symbol} {self.timeframe} ({self.id})"
