"""Reads of notifications: a user's channels as the API shows them (secrets masked), the delivery log."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User

from .choices import ChannelKind, EventType
from .models import Delivery, NotificationChannel, Report


def channel_view(channel: NotificationChannel | None, kind: str) -> dict[str, Any]:
    """One channel as the API and the settings page show it: the secret only masked."""
    if channel is None:
        return {"enabled": False, "events": [e for e in EventType.values if e != EventType.TEST], "configured": False}
    view: dict[str, Any] = {
        "enabled": channel.enabled,
        "events": channel.events,
        "configured": bool(channel.secret_encrypted) or kind == ChannelKind.EMAIL,
        "disabled_reason": channel.disabled_reason,
        "consecutive_failures": channel.consecutive_failures,
        "last_success_at": channel.last_success_at.isoformat() if channel.last_success_at else None,
        "last_failure_at": channel.last_failure_at.isoformat() if channel.last_failure_at else None,
    }
    if kind == ChannelKind.EMAIL:
        view["address"] = channel.address
    elif kind == ChannelKind.TELEGRAM:
        view["chat_id"] = channel.chat_id
        view["bot_token"] = channel.secret_masked
    else:
        view["webhook_url"] = channel.secret_masked
    return view


def notification_settings_get(*, user: User) -> dict[str, Any]:
    """`{"channels": {kind: {...}}, "event_types": [...]}` for GET /api/notifications."""
    channels = {c.kind: c for c in NotificationChannel.objects.filter(user=user)}
    return {
        "channels": {kind: channel_view(channels.get(kind), kind) for kind in ChannelKind.values},
        "event_types": [e for e in EventType.values if e != EventType.TEST],
    }


def delivery_list(*, user: User, limit: int = 50) -> QuerySet[Delivery]:
    return Delivery.objects.filter(user=user).select_related("channel").order_by("-created_at")[:limit]


def report_list(*, user: User, limit: int = 30) -> QuerySet[Report]:
    return Report.objects.filter(user=user).defer("chart_png").order_by("-day", "kind")[:limit]


def report_get(*, user: User, report_id: Any) -> Report | None:
    return Report.objects.filter(user=user, pk=report_id).first()
