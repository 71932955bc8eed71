"""Ops console: strategy instances with enable/disable actions (calling `strategies.services`) and the
signals they sent."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import StrategyInstance, StrategySignal


@admin.register(StrategyInstance)
class StrategyInstanceAdmin(admin.ModelAdmin):
    list_display = ["kind", "user", "exchange_config", "symbols", "timeframes", "enabled", "disabled_reason"]
    list_filter = ["kind", "enabled"]
    search_fields = ["user__email"]
    readonly_fields = ["enabled", "disabled_reason", "disabled_at", "created_at", "updated_at"]
    actions = ["enable", "disable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # instances are created through the API, which validates kind, params and symbols

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[StrategyInstance]) -> None:
        for instance in queryset:
            services.strategy_enable(instance=instance, actor=request.user)
        self.message_user(request, f"{queryset.count()} strategies enabled.")

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[StrategyInstance]) -> None:
        for instance in queryset:
            services.strategy_disable(instance=instance, reason="disabled by an operator", actor=request.user)
        self.message_user(request, f"{queryset.count()} strategies disabled.")


@admin.register(StrategySignal)
class StrategySignalAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "instance",
        "symbol",
        "timeframe",
        "candle_open",
        "action",
        "price",
        "outcome",
        "reason",
    ]
    list_filter = ["action", "outcome"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
