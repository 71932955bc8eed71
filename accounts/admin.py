"""Ops console for users, sessions and logs. Logs are read-only ledgers."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .auth import user_tokens_revoke
from .choices import Role
from .middleware import client_ip
from .models import AuditLog, SystemLog, User, UserSession
from .services import user_set_role, webhook_secret_regenerate


class UserSessionInline(admin.TabularInline):
    model = UserSession
    extra = 0
    can_delete = False
    fields = ("kind", "created_at", "expires_at", "ended_at", "ip_address", "user_agent")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["-created_at"]
    list_display = ["email", "username", "role", "is_active", "is_staff", "created_at", "last_login"]
    list_filter = ["role", "is_active", "is_staff"]
    search_fields = ["email", "username"]
    readonly_fields = ["id", "created_at", "last_login", "webhook_secret_masked"]
    fieldsets = [
        (None, {"fields": ["id", "email", "username", "password"]}),
        ("Access", {"fields": ["role", "is_active", "is_staff", "is_superuser"]}),
        ("Webhook", {"fields": ["webhook_secret_masked"]}),
        ("Dates", {"fields": ["created_at", "last_login"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "username", "role", "password1", "password2"]})]
    inlines = [UserSessionInline]
    actions = ["regenerate_webhook_secret", "make_viewer", "make_trader", "make_manager"]

    @admin.display(description="Webhook secret")
    def webhook_secret_masked(self, obj: User) -> str:
        return f"****{obj.webhook_secret[-4:]}" if obj.webhook_secret else "-"

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        # Role changes go through the service so they are audited.
        if change and "role" in form.changed_data:
            new_role = obj.role
            obj.role = form.initial.get("role", obj.role)
            super().save_model(request, obj, form, change)
            user_set_role(user=obj, role=new_role, actor=request.user, ip=client_ip(request))
            obj.refresh_from_db()
        else:
            super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            user_tokens_revoke(user_id=obj.pk)  # a deactivated user's tokens die now (accounts.auth)

    def _set_role(self, request, queryset, role: str) -> None:  # type: ignore[no-untyped-def]
        for user in queryset:
            user_set_role(user=user, role=role, actor=request.user, ip=client_ip(request))
        self.message_user(request, f"{queryset.count()} user(s) now {role}.", messages.SUCCESS)

    @admin.action(description="Set role: viewer")
    def make_viewer(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        self._set_role(request, queryset, Role.VIEWER)

    @admin.action(description="Set role: trader")
    def make_trader(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        self._set_role(request, queryset, Role.TRADER)

    @admin.action(description="Set role: manager")
    def make_manager(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        self._set_role(request, queryset, Role.MANAGER)

    @admin.action(description="Regenerate webhook secret")
    def regenerate_webhook_secret(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for user in queryset:
            webhook_secret_regenerate(user=user, ip=client_ip(request))
        self.message_user(request, "Webhook secrets regenerated.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(SystemLog)
class SystemLogAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "level", "category", "user", "message", "ip_address"]
    list_filter = [
        "level",
        "category",
        ("timestamp", admin.DateFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["message", "user__email"]
    date_hierarchy = "timestamp"


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "user", "action", "resource", "resource_id", "ip_address"]
    list_filter = [
        "action",
        "resource",
        ("timestamp", admin.DateFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["action", "resource", "resource_id", "user__email"]
    date_hierarchy = "timestamp"


@admin.register(UserSession)
class UserSessionAdmin(ReadOnlyAdmin):
    list_display = ["user", "kind", "created_at", "expires_at", "ended_at", "ip_address"]
    list_filter = ["kind"]
    search_fields = ["user__email", "ip_address"]
