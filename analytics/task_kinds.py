"""Every background task kind, registered with the task framework when the app is ready
(`AnalyticsConfig.ready`): a kind's module calls `tasks_framework.task_kind_register` at import. Add a
kind's module here."""

from __future__ import annotations

from . import backtest_task as backtest_task
from . import optimize_task as optimize_task  # docs/optimization.md
from .ml import task_kinds as ml_task_kinds  # noqa: F401  train and bulk-analysis (docs/ml.md#tasks)
