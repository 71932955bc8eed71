"""Ops console for exchange configs, market rules and paper accounts.

Secrets are write-only here: the form has empty password inputs that never render a value, a blank
input keeps the stored secret, and only the masked key (``****A4B1``) is ever shown. Saves and actions
call ``exchanges.services`` (market rules: ``exchanges.rules``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.middleware import client_ip

from . import rules, services
from .choices import ExchangeMode
from .exceptions import ExchangeError
from .models import ExchangeConfig, MarketRule, PaperAccount


class ExchangeConfigForm(forms.ModelForm):
    """Write-only secret inputs: never pre-filled, never echoed back after an error."""

    new_api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        max_length=services.MAX_SECRET_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the stored key.",
    )
    new_api_secret = forms.CharField(
        label="API secret",
        required=False,
        strip=True,
        max_length=services.MAX_SECRET_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the stored secret.",
    )
    new_password = forms.CharField(
        label="API password / passphrase",
        required=False,
        strip=True,
        max_length=services.MAX_SECRET_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Only for exchanges that need one (e.g. OKX). Leave blank to keep it.",
    )
    confirm_live = forms.BooleanField(
        required=False, label="Confirm live trading", help_text="Required to switch this config to live mode."
    )

    class Meta:
        model = ExchangeConfig
        fields = ["user", "exchange_name", "mode", "is_enabled"]

    def clean_exchange_name(self) -> str:
        try:
            return services.exchange_name_normalize(self.cleaned_data["exchange_name"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["exchange"]) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        adding = self.instance._state.adding
        if adding and not (data.get("new_api_key") and data.get("new_api_secret")):
            raise forms.ValidationError("A new config needs an API key and secret.")
        mode = data.get("mode")
        switching_to_live = mode == ExchangeMode.LIVE and (adding or self.instance.mode != ExchangeMode.LIVE)
        if switching_to_live and not data.get("confirm_live"):
            self.add_error("confirm_live", "Live mode trades real money: tick to confirm.")
        return data


@admin.register(ExchangeConfig)
class ExchangeConfigAdmin(admin.ModelAdmin):
    form = ExchangeConfigForm
    list_display = ["user", "exchange_name", "mode", "is_enabled", "is_validated", "last_validated", "api_key_masked"]
    list_filter = ["exchange_name", "mode", "is_enabled", "is_validated"]
    search_fields = ["user__email", "exchange_name"]
    list_select_related = ["user"]
    readonly_fields = [
        "api_key_masked",
        "is_validated",
        "last_validated",
        "validation_message",
        "live_confirmed_at",
        "created_at",
        "updated_at",
    ]
    actions = ["validate_configs", "enable_configs", "disable_configs", "switch_to_paper"]

    def get_fieldsets(self, request: HttpRequest, obj: ExchangeConfig | None = None) -> Any:
        return [
            (None, {"fields": ["user", "exchange_name", "mode", "confirm_live", "is_enabled"]}),
            (
                "Credentials (write-only)",
                {"fields": ["api_key_masked", "new_api_key", "new_api_secret", "new_password"]},
            ),
            (
                "Validation",
                {"fields": ["is_validated", "last_validated", "validation_message", "live_confirmed_at"]},
            ),
            ("Dates", {"fields": ["created_at", "updated_at"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: ExchangeConfig | None = None) -> Any:
        fields = list(self.readonly_fields)
        if obj is not None:
            fields += ["user", "exchange_name"]  # a config is one user's keys for one exchange
        return fields

    @admin.display(description="API key")
    def api_key_masked(self, obj: ExchangeConfig) -> str:
        return obj.api_key_masked if obj and obj.pk else "-"

    def save_model(self, request: HttpRequest, obj: ExchangeConfig, form: Any, change: bool) -> None:
        data = form.cleaned_data
        ip = client_ip(request)
        if change:
            saved = services.exchange_config_update(
                config=obj,
                actor=request.user,
                mode=data.get("mode"),
                confirm_live=bool(data.get("confirm_live")),
                is_enabled=data.get("is_enabled"),
                api_key=data.get("new_api_key") or None,
                api_secret=data.get("new_api_secret") or None,
                password=data.get("new_password") or None,
                ip=ip,
            )
        else:
            saved, _ = services.exchange_config_store(
                user=data["user"],
                exchange_name=data["exchange_name"],
                mode=data["mode"],
                api_key=data["new_api_key"],
                api_secret=data["new_api_secret"],
                password=data.get("new_password") or None,
                confirm_live=bool(data.get("confirm_live")),
                actor=request.user,
                ip=ip,
            )
            if not data.get("is_enabled", True):
                saved = services.exchange_config_set_enabled(config=saved, enabled=False, actor=request.user, ip=ip)
        # the admin goes on with `obj` (messages, log entry, redirect): give it the saved row
        for model_field in ExchangeConfig._meta.concrete_fields:
            setattr(obj, model_field.attname, getattr(saved, model_field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: ExchangeConfig) -> None:
        try:
            services.exchange_config_delete(config=obj, actor=request.user, ip=client_ip(request))
        except services.ExchangeConfigInUseError as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExchangeConfig]) -> None:
        for config in queryset:
            self.delete_model(request, config)

    @admin.action(description="Validate (authenticated test call)")
    def validate_configs(self, request: HttpRequest, queryset: QuerySet[ExchangeConfig]) -> None:
        good = bad = 0
        for config in queryset:
            result = services.exchange_config_validate(config=config, actor=request.user, ip=client_ip(request))
            if result.is_validated:
                good += 1
            else:
                bad += 1
        level = messages.SUCCESS if not bad else messages.WARNING
        self.message_user(request, f"{good} config(s) validated, {bad} failed (see their validation message).", level)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[ExchangeConfig], enabled: bool) -> None:
        for config in queryset:
            services.exchange_config_set_enabled(
                config=config, enabled=enabled, actor=request.user, ip=client_ip(request)
            )
        self.message_user(request, f"{queryset.count()} config(s) {'enabled' if enabled else 'disabled'}.")

    @admin.action(description="Enable")
    def enable_configs(self, request: HttpRequest, queryset: QuerySet[ExchangeConfig]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable")
    def disable_configs(self, request: HttpRequest, queryset: QuerySet[ExchangeConfig]) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Switch to paper")
    def switch_to_paper(self, request: HttpRequest, queryset: QuerySet[ExchangeConfig]) -> None:
        for config in queryset:
            services.exchange_config_set_mode(
                config=config, mode=ExchangeMode.PAPER, actor=request.user, ip=client_ip(request)
            )
        self.message_user(request, f"{queryset.count()} config(s) switched to paper.")


@admin.register(MarketRule)
class MarketRuleAdmin(admin.ModelAdmin):
    list_display = [
        "exchange_name",
        "symbol",
        "exchange_symbol",
        "tick_size",
        "step_size",
        "min_qty",
        "min_notional",
        "status",
        "updated_at",
    ]
    list_filter = ["exchange_name", "status"]
    search_fields = ["symbol", "exchange_symbol", "base", "quote"]
    actions = ["refresh_exchanges"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Refresh the market rules of these exchanges now")
    def refresh_exchanges(self, request: HttpRequest, queryset: QuerySet[MarketRule]) -> None:
        for name in sorted(set(queryset.values_list("exchange_name", flat=True))):
            try:
                count = rules.market_rules_refresh(exchange_name=name)
            except ExchangeError as exc:
                self.message_user(request, f"{name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{name}: {count} markets refreshed.")


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin):
    list_display = ["config", "balances_summary", "updated_at"]
    readonly_fields = ["config", "balances_summary", "open_orders", "created_at", "updated_at"]
    exclude = ["state"]
    actions = ["reset_accounts"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Balances (free + locked)")
    def balances_summary(self, obj: PaperAccount) -> str:
        balances = (obj.state or {}).get("balances", {})
        return ", ".join(f"{asset} {v.get('free')} + {v.get('locked')}" for asset, v in sorted(balances.items())) or "-"

    @admin.display(description="Open orders")
    def open_orders(self, obj: PaperAccount) -> int:
        return sum(1 for o in (obj.state or {}).get("orders", []) if o.get("status") in ("NEW", "PARTIALLY_FILLED"))

    @admin.action(description="Reset (default balances, no orders)")
    def reset_accounts(self, request: HttpRequest, queryset: QuerySet[PaperAccount]) -> None:
        for account in queryset.select_related("config"):
            services.paper_account_reset(config=account.config, actor=request.user, ip=client_ip(request))
        self.message_user(request, f"{queryset.count()} paper account(s) reset.")


# The candle store's admin lives with it; importing it registers its models.
from .candles import admin as candles_admin  # noqa: E402, F401
