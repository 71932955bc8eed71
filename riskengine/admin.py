from django.contrib import admin, messages

from .models import QueuedSignal
from .services import queue_promote


@admin.register(QueuedSignal)
class QueuedSignalAdmin(admin.ModelAdmin):
    list_display = ["symbol", "timeframe", "side", "user", "entry_price", "replacement_count", "queued_at"]
    list_filter = ["timeframe", "exchange_config__exchange_name"]
    search_fields = ["symbol", "user__email"]
    readonly_fields = [
        "user",
        "exchange_config",
        "signal",
        "symbol",
        "timeframe",
        "side",
        "entry_price",
        "replacement_count",
        "queued_at",
        "updated_at",
    ]
    actions = ["promote", "force_add"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Promote (if the pool has room)")
    def promote(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        done = sum(len(queue_promote(user_id=e.user_id, entry_id=e.pk, actor=request.user)) for e in queryset)
        self.message_user(request, f"{done} promoted.", messages.SUCCESS)

    @admin.action(description="Force-add (ignore the pool cap once)")
    def force_add(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        done = sum(
            len(queue_promote(user_id=e.user_id, entry_id=e.pk, force=True, actor=request.user)) for e in queryset
        )
        self.message_user(request, f"{done} force-added.", messages.SUCCESS)
