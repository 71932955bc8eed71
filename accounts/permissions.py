"""Role permissions for the API: reuse these on every view."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .choices import Role


def _has(request, role: str) -> bool:  # type: ignore[no-untyped-def]
    user = request.user
    return bool(user and user.is_authenticated and user.is_active and user.has_role(role))


class IsViewerOrHigher(BasePermission):
    """Any active logged-in user."""

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        return _has(request, Role.VIEWER)


class IsTraderOrHigher(BasePermission):
    message = "This action needs the trader role."

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        return _has(request, Role.TRADER)


class ReadOrTrader(BasePermission):
    """Viewers read; changing anything needs trader or higher."""

    message = "Viewers can read but not change anything; this action needs the trader role."

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        if request.method in SAFE_METHODS:
            return _has(request, Role.VIEWER)
        return _has(request, Role.TRADER)


class IsManagerOrHigher(BasePermission):
    message = "This action needs the manager role."

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        return _has(request, Role.MANAGER)


class IsAdminRole(BasePermission):
    message = "This action needs the admin role."

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        return _has(request, Role.ADMIN)
