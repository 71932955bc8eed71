"""Formatting for the pages (docs/web.md#design): money, quantities, PnL colour, times in the viewer's zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.logs import scrub

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
def avg_price(value: Any) -> str:
    """An average price (a quotient, stored with up to 18 decimals) shown with 8 significant digits at
    most, without trailing zeros: `65065.06506506506` → `65065.065`."""
    number = _decimal(value)
    if number is None:
        return "—"
    if number == 0 or not number.is_finite():
        return f"{number:f}"
    places = max(0, 8 - (number.adjusted() + 1))
    return f"{number.quantize(Decimal(1).scaleb(-places)).normalize():f}"


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


@register.filter
def duration(seconds: Any) -> str:
    """`3725` → `1 h 2 min`; `42` → `42 s` (a wait or a timer, whole seconds)."""
    number = _decimal(seconds)
    if number is None:
        return "—"
    total = max(0, int(number))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if minutes < 10 and secs else f"{minutes} min"
    return f"{secs} s"


@register.filter
def pretty_json(value: Any) -> str:
    """A stored JSON body, indented, with secret-named keys and secret-looking strings redacted once more
    (`accounts.logs.scrub`: bodies are stored redacted; a page never shows a secret)."""
    return json.dumps(scrub(value), indent=2, ensure_ascii=False, default=str)


@register.filter
def ms_time(value: Any) -> SafeString | str:
    """Epoch milliseconds (a backtest's times) as `{% when %}` shows a datetime."""
    if value is None or value == "":
        return "—"
    return when(datetime.fromtimestamp(int(value) / 1000, tz=UTC))
