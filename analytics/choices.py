"""Choices of the analytics app: background task kinds and states (docs/tasks.md)."""

from django.db import models


class TaskKind(models.TextChoices):
    BACKTEST = "backtest", "Backtest"
    OPTIMIZE = "optimize", "Optimization"
    TRAIN = "train", "Model training"
    BULK_ANALYSIS = "bulk-analysis", "Bulk analysis"


class TaskStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    STARTED = "STARTED", "Started"
    PROGRESS = "PROGRESS", "In progress"
    SUCCESS = "SUCCESS", "Succeeded"
    FAILURE = "FAILURE", "Failed"
    REVOKED = "REVOKED", "Revoked"


ACTIVE_STATUSES = (TaskStatus.PENDING, TaskStatus.STARTED, TaskStatus.PROGRESS)
FINISHED_STATUSES = (TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.REVOKED)
