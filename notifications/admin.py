"""Ops console: channels (secrets masked, never editable here), the delivery log, stored reports."""

from __future__ import annotations

from django.contrib import admin

from .models import Delivery, NotificationChannel, Report


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "enabled", "consecutive_failures", "disabled_reason", "last_success_at")
    list_filter = ("kind", "enabled")
    search_fields = ("user__email",)
    readonly_fields = (
        "user",
        "kind",
        "secret_masked",
        "consecutive_failures",
        "disabled_reason",
        "last_success_at",
        "last_failure_at",
    )
    fields = ("user", "kind", "enabled", "events", "address", "chat_id", *readonly_fields[2:])

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # channels are set by their owner (settings page or API): secrets are entered there


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "channel", "event_type", "status", "attempts", "latency_ms", "error")
    list_filter = ("status", "event_type", "channel__kind")
    search_fields = ("user__email", "text")
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("day", "kind", "user", "created_at")
    list_filter = ("kind",)
    readonly_fields = ("user", "kind", "day", "data", "created_at")
    exclude = ("chart_png",)
