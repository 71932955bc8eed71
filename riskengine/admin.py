"""Ops console for the risk engine: its actions, read-only (flags are set on groups through services)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import RiskAction


@admin.register(RiskAction)
class RiskActionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "status", "trigger", "repeats", "reason"]
    list_filter = ["kind", "status", "trigger"]
    search_fields = ["user__email", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in RiskAction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RiskAction | None = None) -> bool:
        return False
