"""Ops console for signals, groups, pyramids, orders and fills. Ledgers are read-only; actions call services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages

from accounts.roles import trade_refusal, user_may_trade

from .choices import GroupStatus
from .config import ConfigError, parse_engine_config
from .models import (
    DCAOrder,
    EngineConfig,
    ExitOrder,
    Fill,
    GroupEvent,
    PositionGroup,
    Pyramid,
    QueuedSignal,
    TradingGuard,
    WebhookSignal,
)
from .services import orders, queue
from .services.configs import config_set
from .services.flags import group_set_risk_flags
from .services.guards import guard_daily_loss_reset, guard_pause_set
from .services.operator import OrderSettledError, order_cancel_by_operator
from .tasks import close_group


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class PyramidInline(ReadOnlyInline):
    model = Pyramid
    fields = ("index", "entry_price", "capital_usd", "entry_order_type", "created_at", "submitted_at")
    readonly_fields = fields


class DCAOrderInline(ReadOnlyInline):
    model = DCAOrder
    fk_name = "group"
    fields = (
        "pyramid_level",
        "dca_level",
        "order_type",
        "price",
        "quantity",
        "filled_quantity",
        "filled_price",
        "status",
        "client_order_id",
        "exchange_order_id",
    )
    readonly_fields = fields


class ExitOrderInline(ReadOnlyInline):
    model = ExitOrder
    fk_name = "group"
    fields = (
        "purpose",
        "order_type",
        "price",
        "quantity",
        "filled_quantity",
        "filled_price",
        "status",
        "client_order_id",
        "slippage_percent",
    )
    readonly_fields = fields


class FillInline(ReadOnlyInline):
    model = Fill
    fields = ("executed_at", "side", "price", "quantity", "fee", "fee_asset", "fee_quote_value", "trade_id")
    readonly_fields = fields


class EventInline(ReadOnlyInline):
    model = GroupEvent
    fields = ("at", "kind", "message")
    readonly_fields = fields


@admin.register(PositionGroup)
class PositionGroupAdmin(admin.ModelAdmin):
    list_display = [
        "symbol",
        "timeframe",
        "side",
        "status",
        "user",
        "pyramid_count",
        "filled_quantity",
        "avg_entry_price",
        "realized_pnl",
        "created_at",
    ]
    list_filter = ["status", "side", "timeframe", "tp_mode", "exchange_config__exchange_name"]
    search_fields = ["symbol", "user__email", "id"]
    date_hierarchy = "created_at"
    # Every field, the risk flags too: they change only through the actions below (services, audited).
    readonly_fields = [f.name for f in PositionGroup._meta.fields]
    inlines = [PyramidInline, DCAOrderInline, ExitOrderInline, FillInline, EventInline]
    actions = ["close_at_market", "block_from_risk", "unblock_from_risk", "skip_risk_once"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Close at market (cancel open orders, sell what is held)")
    def close_at_market(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        count = 0
        for group in queryset.exclude(status__in=[GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED]):
            close_group.delay(str(group.pk), "manual")
            count += 1
        self.message_user(request, f"Close requested for {count} group(s).", messages.SUCCESS)

    @admin.action(description="Block from the risk engine")
    def block_from_risk(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for group in queryset:
            group_set_risk_flags(group_id=group.pk, blocked=True, actor=request.user)

    @admin.action(description="Unblock from the risk engine")
    def unblock_from_risk(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for group in queryset:
            group_set_risk_flags(group_id=group.pk, blocked=False, actor=request.user)

    @admin.action(description="Skip once in the next risk cycle")
    def skip_risk_once(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for group in queryset:
            group_set_risk_flags(group_id=group.pk, skip_once=True, actor=request.user)


class LedgerAdmin(admin.ModelAdmin):
    """Read-only rows of the order and signal ledgers; orders can be cancelled through the service."""

    @admin.action(description="Cancel on the exchange (audited; looked up first when unknown)")
    def cancel_on_exchange(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        ip = request.META.get("REMOTE_ADDR")
        for order in queryset:
            try:
                result = order_cancel_by_operator(order_id=order.pk, actor=request.user, ip=ip)
            except OrderSettledError as exc:
                self.message_user(request, f"{order.client_order_id}: nothing to cancel, {exc}.", messages.WARNING)
                continue
            if result == orders.RETRY:
                self.message_user(request, f"{order.client_order_id}: not settled yet, try again.", messages.WARNING)
            else:
                self.message_user(request, f"{order.client_order_id}: cancelled (or found filled).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(DCAOrder)
class DCAOrderAdmin(LedgerAdmin):
    list_display = [
        "symbol",
        "pyramid_level",
        "dca_level",
        "order_type",
        "price",
        "quantity",
        "filled_quantity",
        "status",
        "client_order_id",
        "created_at",
    ]
    list_filter = ["status", "order_type", "exchange_config__exchange_name"]
    search_fields = ["client_order_id", "exchange_order_id", "symbol", "group__id"]
    actions = ["cancel_on_exchange"]


@admin.register(ExitOrder)
class ExitOrderAdmin(LedgerAdmin):
    list_display = [
        "symbol",
        "purpose",
        "order_type",
        "price",
        "quantity",
        "filled_quantity",
        "status",
        "client_order_id",
        "created_at",
    ]
    list_filter = ["status", "purpose"]
    search_fields = ["client_order_id", "exchange_order_id", "symbol", "group__id"]
    actions = ["cancel_on_exchange"]


@admin.register(Fill)
class FillAdmin(LedgerAdmin):
    list_display = [
        "executed_at",
        "group",
        "side",
        "price",
        "quantity",
        "fee",
        "fee_asset",
        "fee_quote_value",
        "trade_id",
    ]
    list_filter = ["side"]
    search_fields = ["trade_id", "group__symbol"]


@admin.register(WebhookSignal)
class WebhookSignalAdmin(LedgerAdmin):
    list_display = [
        "received_at",
        "user",
        "symbol",
        "action",
        "classification",
        "status",
        "http_status",
        "reason",
        "ack_ms",
    ]
    list_filter = ["status", "classification", "http_status", "source"]
    search_fields = ["symbol", "trade_id", "user__email", "reason"]
    date_hierarchy = "received_at"


class EngineConfigForm(forms.ModelForm):
    """The stored config as JSON, saved through the API's own validation (`config_set`, PUT semantics):
    an invalid value is refused with every bad field named, and nothing is stored."""

    class Meta:
        model = EngineConfig
        fields = ["data"]
        widgets = {"data": forms.Textarea(attrs={"rows": 24, "cols": 100})}

    def clean_data(self) -> Any:
        data = self.cleaned_data.get("data") or {}
        if not isinstance(data, dict):
            raise forms.ValidationError("must be a JSON object")
        try:  # validation only; `save_model` stores through `config_set`, which validates the same way
            parse_engine_config({k: v for k, v in data.items() if v is not None})
        except ConfigError as exc:
            raise forms.ValidationError([f"{field}: {', '.join(why)}" for field, why in exc.errors.items()]) from None
        return data


@admin.register(EngineConfig)
class EngineConfigAdmin(admin.ModelAdmin):
    list_display = ["user", "updated_at"]
    search_fields = ["user__email"]
    readonly_fields = ["user", "updated_at"]
    form = EngineConfigForm

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # a config row exists once its user saves one (API, settings page)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        config_set(user=obj.user, data=form.cleaned_data["data"], partial=False, ip=request.META.get("REMOTE_ADDR"))
        obj.refresh_from_db()


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

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        """Through the queue service: audited, and the owner's queue page hears of it."""
        queue.queue_delete(entry=obj, actor=request.user, ip=request.META.get("REMOTE_ADDR"))

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for entry in queryset:
            self.delete_model(request, entry)

    def _may_trade(self, request, queryset) -> list:  # type: ignore[no-untyped-def]
        """The entries whose owner may trade (accounts.roles: the one role check); the others are named."""
        entries = list(queryset.select_related("user"))
        allowed = [entry for entry in entries if user_may_trade(user=entry.user)]
        for entry in entries:
            if entry not in allowed:
                self.message_user(request, f"{entry.user}: {trade_refusal(entry.user.role)}", messages.WARNING)
        return allowed

    @admin.action(description="Promote (if the pool has room)")
    def promote(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        done = sum(
            len(queue.queue_promote(user_id=e.user_id, entry_id=e.pk, actor=request.user))
            for e in self._may_trade(request, queryset)
        )
        self.message_user(request, f"{done} promoted.", messages.SUCCESS)

    @admin.action(description="Force-add (ignore the pool cap once)")
    def force_add(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        done = sum(
            len(queue.queue_promote(user_id=e.user_id, entry_id=e.pk, force=True, actor=request.user))
            for e in self._may_trade(request, queryset)
        )
        self.message_user(request, f"{done} force-added.", messages.SUCCESS)


@admin.register(TradingGuard)
class TradingGuardAdmin(admin.ModelAdmin):
    """Pause switches (a user's, or everyone's when the user is empty); changed only by the actions
    (`positions.services.guards`, audited)."""

    list_display = ["__str__", "paused", "paused_reason", "daily_loss_reset_at", "updated_at"]
    readonly_fields = [f.name for f in TradingGuard._meta.fields]
    actions = ["pause", "resume", "reset_daily_loss"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Pause new groups (an empty user: everyone)")
    def pause(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for row in queryset:
            guard_pause_set(user=row.user, paused=True, actor=request.user, reason="operator")

    @admin.action(description="Resume new groups")
    def resume(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for row in queryset:
            guard_pause_set(user=row.user, paused=False, actor=request.user)

    @admin.action(description="Reset today's daily loss")
    def reset_daily_loss(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for row in queryset:
            guard_daily_loss_reset(user=row.user, actor=request.user)
