"""`/logs/`: the system log (and, for managers and admins, the audit log) with filters, a live tail and
export (docs/web.md#logs). Reads are `accounts.selectors` (a user sees only their own rows unless a manager
or admin); the export streams the rows `POST /api/logs/export` would (`accounts.api.exports`)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts import selectors
from accounts.api.exports import log_export_rows
from accounts.choices import LogCategory, LogLevel
from accounts.logs import audit
from accounts.middleware import client_ip
from accounts.models import AuditLog, SystemLog

from ..pages import AuthedRequest, Region, render_page

TAIL = 100  # rows per page of the tail
# Events whose work writes log rows: the tail re-reads on them (no event is published per log row).
LOG_EVENTS = "log group.updated order.updated signal.received queue.updated risk.action guard.changed strategy.updated"
FILTERS = ("kind", "level", "category", "pair", "start", "end", "q")


def _moment(raw: str, *, end: bool) -> tuple[datetime | None, str | None]:
    """A date (a whole day: from its start, or up to its end) or a date-time, in the server's zone."""
    text = raw.strip()
    if not text:
        return None, None
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            if day is not None:
                moment = datetime.combine(day, time.min) + (timedelta(days=1, microseconds=-1) if end else timedelta())
    except ValueError:
        moment = None
    if moment is None:
        return None, "must be a date (YYYY-MM-DD) or a date and time"
    return (timezone.make_aware(moment) if timezone.is_naive(moment) else moment), None


def pair_pattern(raw: str) -> str:
    """A case-insensitive pattern for a pair however it is written in a message: `BTCUSDT` also finds
    `BTC/USDT` and `BTC-USDT` (any one separator between any two characters)."""
    chars = [c for c in raw.upper() if c.isalnum()]
    return "[/:_-]?".join(re.escape(c) for c in chars)


def log_rows(user: Any, params: Any) -> tuple[QuerySet[Any], str, dict[str, str], dict[str, str]]:
    """The rows the filters in `params` select, their kind (`system`/`audit`), the filters as given, and
    errors by field. Audit rows only for managers and admins."""
    filters = {name: (params.get(name) or "").strip() for name in FILTERS}
    errors: dict[str, str] = {}
    kind = "audit" if filters["kind"] == "audit" and user.sees_everything else "system"
    level, category = filters["level"].upper(), filters["category"].upper()
    if level and level not in LogLevel.values:
        errors["level"] = f"unknown level; use one of {', '.join(LogLevel.values)}"
    if category and category not in LogCategory.values:
        errors["category"] = f"unknown category; use one of {', '.join(LogCategory.values)}"
    start, problem = _moment(filters["start"], end=False)
    if problem:
        errors["start"] = problem
    end, problem = _moment(filters["end"], end=True)
    if problem:
        errors["end"] = problem
    qs: QuerySet[Any]
    text_fields: tuple[str, ...]
    if kind == "audit":
        qs = selectors.log_list_audit(viewer=user, start=start, end=end)
        text_fields = ("action", "resource", "resource_id")
    else:
        qs = selectors.log_list_system(
            viewer=user,
            level=None if "level" in errors else level or None,
            category=None if "category" in errors else category or None,
            start=start,
            end=end,
        )
        text_fields = ("message",)
    qs = qs.alias(details_text=Cast("details", TextField()))
    if filters["pair"] and pair_pattern(filters["pair"]):
        pattern = pair_pattern(filters["pair"])
        qs = qs.filter(Q(details_text__iregex=pattern) | Q(**{f"{text_fields[0]}__iregex": pattern}))
    if filters["q"]:
        words = Q(details_text__icontains=filters["q"])
        for name in text_fields:
            words |= Q(**{f"{name}__icontains": filters["q"]})
        qs = qs.filter(words)
    return qs, kind, filters, errors


def _logs(request: AuthedRequest) -> dict[str, Any]:
    qs, kind, filters, errors = log_rows(request.user, request.GET)
    page = Paginator(qs, TAIL).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    rows.reverse()  # a tail: oldest at the top, the newest at the bottom
    query = request.GET.copy()
    for name in ("page", "partial", "export"):
        query.pop(name, None)
    return {
        "page": page,
        "rows": rows,
        "kind": kind,
        "filters": filters,
        "filter_errors": errors,
        "query": query.urlencode(),
        "show_user": request.user.sees_everything,  # whose row it is, when the viewer sees everyone's
    }


REGIONS = {"logs": Region("web/partials/log_tail.html", _logs)}


@login_required
def logs(request: AuthedRequest) -> HttpResponse | StreamingHttpResponse:
    fmt = request.GET.get("export")
    if fmt in ("csv", "json"):
        return _export(request, fmt)
    context = {
        "levels": LogLevel.values,
        "categories": LogCategory.values,
        "sees_audit": request.user.sees_everything,
        "live_events": LOG_EVENTS,
    }
    return render_page(request, "web/logs.html", REGIONS, context)


def _export(request: AuthedRequest, fmt: str) -> HttpResponse | StreamingHttpResponse:
    qs, kind, _, errors = log_rows(request.user, request.GET)
    if errors:
        return HttpResponse(
            "; ".join(f"{name}: {reason}" for name, reason in errors.items()), status=400, content_type="text/plain"
        )
    audit(
        user=request.user,
        action="logs_export",
        resource=f"{kind}_log",
        details={"format": fmt, "page": True},
        ip=client_ip(request),
    )
    rows: QuerySet[SystemLog] | QuerySet[AuditLog] = qs
    response = StreamingHttpResponse(
        log_export_rows(kind, fmt, rows), content_type="text/csv" if fmt == "csv" else "application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{kind}_logs.{fmt}"'
    return response
