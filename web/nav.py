"""The navigation bar: every page whose view exists, the current one marked (docs/web.md#pages).

A page appears once its URL is defined, so the strategies, backtests and performance pages show up when
their features land, without an edit here.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

PAGES = (
    ("Dashboard", "web:dashboard"),
    ("Positions", "web:positions"),
    ("Queue", "web:queue"),
    ("Risk", "web:risk"),
    ("Signals", "web:signals"),
    ("Strategies", "web:strategies"),
    ("Backtests", "web:backtests"),
    ("Performance", "web:performance"),
    ("Logs", "web:logs"),
    ("Settings", "web:settings"),
)


def _links() -> list[tuple[str, str]]:
    links = []
    for label, name in PAGES:
        try:
            links.append((label, reverse(name)))
        except NoReverseMatch:
            continue
    return links


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Context processor: `web_nav`, a list of {label, url, current}."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"web_nav": []}
    path = request.path
    items = []
    for label, url in _links():
        current = path == url if url == "/" else path.startswith(url)
        items.append({"label": label, "url": url, "current": current})
    return {"web_nav": items}
