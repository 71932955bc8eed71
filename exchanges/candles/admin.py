"""Ops console of the candle store: candles (read-only; quarantined ones filterable), quality findings,
backfills with their progress and a resume action (which calls the service)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import Candle, CandleBackfill, CandleIssue
from . import services


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Candle)
class CandleAdmin(_ReadOnly):
    list_display = ["exchange_name", "symbol", "timeframe", "open_time", "open", "high", "low", "close", "volume"]
    list_filter = ["exchange_name", "timeframe", "quarantined"]
    search_fields = ["symbol"]
    date_hierarchy = "open_time"
    show_full_result_count = False  # the table holds millions of rows: no COUNT(*) per page


@admin.register(CandleIssue)
class CandleIssueAdmin(_ReadOnly):
    list_display = ["created_at", "exchange_name", "symbol", "timeframe", "kind", "open_time", "detail"]
    list_filter = ["kind", "exchange_name", "timeframe"]
    search_fields = ["symbol"]


@admin.register(CandleBackfill)
class CandleBackfillAdmin(_ReadOnly):
    list_display = ["created_at", "exchange_name", "symbol", "timeframe", "status", "progress", "fetched", "cursor"]
    list_filter = ["status", "exchange_name"]
    actions = ["resume"]

    @admin.action(description="Resume (fetch from the cursor to the end)")
    def resume(self, request: HttpRequest, queryset: QuerySet[CandleBackfill]) -> None:
        for job in queryset.exclude(status="done"):
            done = services.candles_backfill(exchange_name="", symbol="", timeframe="", backfill_id=job.pk)
            level = messages.SUCCESS if done.status == "done" else messages.ERROR
            self.message_user(request, f"{done}: {done.fetched} candles fetched. {done.error}", level)
