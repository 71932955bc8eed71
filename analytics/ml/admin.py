"""Ops console of the model registry (docs/ml.md#registry): models are read-only here (they are written by
training); the actions deploy a chosen model (whatever its score: a roll back, or an operator's choice)
and roll a market back to the model it had before, both through `analytics.ml.services`."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import FilterModel
from .params import MLInputError


@admin.register(FilterModel)
class FilterModelAdmin(admin.ModelAdmin):
    list_display = ["symbol", "timeframe", "horizon", "score", "status", "status_reason", "trained_at", "deployed_at"]
    list_filter = ["status", "timeframe", "symbol"]
    search_fields = ["symbol", "id"]
    exclude = ["booster"]
    readonly_fields = [field.name for field in FilterModel._meta.fields if field.name != "booster"]
    actions = ["deploy", "roll_back"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FilterModel]:
        return super().get_queryset(request).defer("booster")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models come from training (`POST /api/tasks/train`)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Deploy this model (replaces the deployed one of its market)")
    def deploy(self, request: HttpRequest, queryset: QuerySet[FilterModel]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one model to deploy.", level=messages.ERROR)
            return
        model = services.model_deploy(model_id=queryset.get().pk, reason=f"deployed by {request.user} in the admin")
        self.message_user(request, f"Deployed {model}.")

    @admin.action(description="Roll back: deploy again the model each chosen market had before")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[FilterModel]) -> None:
        for symbol, timeframe in sorted(set(queryset.values_list("symbol", "timeframe"))):
            try:
                model = services.model_rollback(symbol=symbol, timeframe=timeframe)
            except MLInputError as exc:
                self.message_user(request, str(exc), level=messages.WARNING)
            else:
                self.message_user(request, f"Rolled back {symbol} {timeframe} to {model}.")
