"""Formatting for the pages (docs/web.md#design): money, quantities, PnL colour, times in the viewer's zone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@register.filter
def money(value: Any, places: int = 2) -> str:
    """`1234.5` → `1,234.50`; empty for no value."""
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number:,.{int(places)}f}"


@register.filter
def signed(value: Any, places: int = 2) -> str:
    """`12.3` → `+12.30`, `-4` → `-4.00`."""
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number:+,.{int(places)}f}"


@register.filter
def qty(value: Any) -> str:
    """A quantity or price as stored, without trailing zeros: `0.01000000` → `0.01`."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = f"{number.normalize():f}"
    return text


@register.filter
def pnl_class(value: Any) -> str:
    """`pos` / `neg` / empty, for colouring."""
    number = _decimal(value)
    if number is None or number == 0:
        return ""
    return "pos" if number > 0 else "neg"


@register.filter
def pct(value: Any, places: int = 2) -> str:
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number:+.{int(places)}f} %"


@register.simple_tag
def when(value: datetime | None, fmt: str = "datetime") -> SafeString | str:
    """A `<time>` element that static/js/live.js shows in the browser's time zone (UTC until it runs)."""
    if value is None:
        return "—"
    return format_html(
        '<time datetime="{}" data-format="{}">{}</time>',
        value.isoformat(),
        fmt,
        value.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


STATUS_BADGES = {
    "live": "info",
    "waiting": "",
    "partially_filled": "info",
    "active": "good",
    "closing": "warn",
    "closed": "",
    "failed": "bad",
    "open": "info",
    "filled": "good",
    "canceled": "",
    "rejected": "bad",
    "pending": "warn",
    "unknown": "warn",
    "accepted": "good",
    "queued": "info",
    "skipped": "warn",
    "error": "bad",
    "offset": "good",
    "none": "",
}


@register.simple_tag
def status_badge(status: str, label: str | None = None) -> SafeString:
    kind = STATUS_BADGES.get(str(status).lower(), "")
    return format_html('<span class="badge {}">{}</span>', kind, label or str(status).replace("_", " "))
