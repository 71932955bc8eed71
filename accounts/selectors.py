"""Reads for accounts and logs."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from .models import AuditLog, SystemLog, User


def log_list_system(
    *,
    viewer: User,
    level: str | None = None,
    category: str | None = None,
    user_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    search: str | None = None,
) -> QuerySet[SystemLog]:
    """System logs the viewer may see: their own, or everyone's for managers and admins."""
    qs = SystemLog.objects.select_related("user")
    if not viewer.sees_everything:
        qs = qs.filter(user=viewer)
    elif user_id:
        qs = qs.filter(user_id=user_id)
    if level:
        qs = qs.filter(level=level.upper())
    if category:
        qs = qs.filter(category=category.upper())
    if start:
        qs = qs.filter(timestamp__gte=start)
    if end:
        qs = qs.filter(timestamp__lte=end)
    if search:
        qs = qs.filter(message__icontains=search)
    return qs.order_by("-timestamp")


def log_list_audit(
    *,
    viewer: User,
    user_id: str | None = None,
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[AuditLog]:
    qs = AuditLog.objects.select_related("user")
    if not viewer.sees_everything:
        qs = qs.filter(user=viewer)
    elif user_id:
        qs = qs.filter(user_id=user_id)
    if action:
        qs = qs.filter(action=action)
    if start:
        qs = qs.filter(timestamp__gte=start)
    if end:
        qs = qs.filter(timestamp__lte=end)
    return qs.order_by("-timestamp")
