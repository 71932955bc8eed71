"""Ops console of the advisor (docs/advisor.md#settings): its one settings row, whose API key is write-only
(a password input never pre-filled, a blank input keeps the stored key, only `****last4` is shown), saved
through `analytics.advisor.services`; and the stored reviews, read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.middleware import client_ip

from . import rules, services
from .models import AdvisorReview, AdvisorSettings


class AdvisorSettingsForm(forms.ModelForm):
    new_api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        max_length=services.MAX_KEY_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    allowed_actions = forms.MultipleChoiceField(
        choices=[(kind, kind) for kind in rules.ACTION_KINDS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Which suggested actions may run when acting is on.",
    )

    class Meta:
        model = AdvisorSettings
        fields = list(services.EDITABLE)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            services.advisor_settings_clean({name: data.get(name) for name in services.EDITABLE})
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return data


@admin.register(AdvisorSettings)
class AdvisorSettingsAdmin(admin.ModelAdmin):
    form = AdvisorSettingsForm
    list_display = ["__str__", "enabled", "base_url", "model", "monthly_cost_cap_usd", "may_act", "api_key_masked"]
    readonly_fields = ["api_key_masked", "updated_at", "updated_by"]
    fieldsets = [
        (None, {"fields": ["enabled", "base_url", "model", "timeout_seconds", "max_output_tokens"]}),
        ("API key (write-only)", {"fields": ["api_key_masked", "new_api_key", "clear_api_key"]}),
        ("Cost", {"fields": ["monthly_cost_cap_usd", "price_input_per_1k_usd", "price_output_per_1k_usd"]}),
        ("Acting", {"fields": ["may_act", "allowed_actions"]}),
        ("Changed", {"fields": ["updated_at", "updated_by"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not AdvisorSettings.objects.exists()  # one row

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # turn it off instead

    @admin.display(description="API key")
    def api_key_masked(self, obj: AdvisorSettings) -> str:
        return obj.api_key_masked or "-" if obj else "-"

    def save_model(self, request: HttpRequest, obj: AdvisorSettings, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = services.advisor_settings_update(
            actor=request.user,  # type: ignore[arg-type]
            api_key=data.get("new_api_key") or None,
            clear_api_key=bool(data.get("clear_api_key")),
            ip=client_ip(request),
            **{name: data.get(name) for name in services.EDITABLE},
        )
        # the admin goes on with `obj` (messages, log entry, redirect): give it the saved row
        for model_field in AdvisorSettings._meta.concrete_fields:
            setattr(obj, model_field.attname, getattr(saved, model_field.attname))
        obj._state.adding = False


@admin.register(AdvisorReview)
class AdvisorReviewAdmin(admin.ModelAdmin):
    list_display = ["day", "user", "status", "model", "cost_usd", "error", "created_at"]
    list_filter = ["status", "day"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    readonly_fields = [field.name for field in AdvisorReview._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written by the daily review

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
