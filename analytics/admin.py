"""Ops console: background tasks (read-only, with a revoke action calling the task framework) and stored
backtest runs (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import tasks_framework
from .advisor import admin as advisor_admin  # noqa: F401  the advisor's settings and reviews (docs/advisor.md)
from .ml import admin as ml_admin  # noqa: F401  the model registry's console (docs/ml.md#registry)
from .models import BackgroundTask, BacktestRun


@admin.register(BackgroundTask)
class BackgroundTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "owner", "status", "progress", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["owner__email", "id"]
    readonly_fields = [field.name for field in BackgroundTask._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks are started through the API, which validates their parameters

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[BackgroundTask]) -> None:
        for task in queryset:
            tasks_framework.task_revoke(task=task)
        self.message_user(request, f"{queryset.count()} tasks revoked.")


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "symbol", "timeframe", "exchange_name", "created_at"]
    list_filter = ["timeframe", "exchange_name"]
    search_fields = ["owner__email", "symbol"]
    readonly_fields = ["id", "owner", "task", "symbol", "timeframe", "exchange_name", "params", "metrics", "created_at"]
    exclude = ["deals", "equity", "fills"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
