"""Role permissions for the API: reuse these on every view."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .choices import Role
from .models import User
from .roles import user_may_trade


class AuthenticatedRequest(Request):
    """The request of a view behind one of these permissions, for the type checker: its user is signed in.

    Views annotate `request: AuthenticatedRequest`; at run time it is DRF's `Request` as always."""

    user: User


def _has(request: Request, role: str) -> bool:
    user = request.user
    return isinstance(user, User) and user.is_active and user.has_role(role)


class IsViewerOrHigher(BasePermission):
    """Any active logged-in user."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return _has(request, Role.VIEWER)


class IsTraderOrHigher(BasePermission):
    """May trade: the one role check (`accounts.roles.user_may_trade`)."""

    message = "This action needs the trader role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return isinstance(user, User) and user_may_trade(user=user)


class ReadOrTrader(BasePermission):
    """Viewers read; changing anything needs trader or higher."""

    message = "Viewers can read but not change anything; this action needs the trader role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS:
            return _has(request, Role.VIEWER)
        user = request.user
        return isinstance(user, User) and user_may_trade(user=user)


class IsManagerOrHigher(BasePermission):
    message = "This action needs the manager role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return _has(request, Role.MANAGER)


class IsAdminRole(BasePermission):
    message = "This action needs the admin role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return _has(request, Role.ADMIN)
