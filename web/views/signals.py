"""`/signals/`: every alert the user's webhook received, with its outcome (docs/web.md#signals).

Filters: outcome (a status such as `rejected`, or a classification such as `queued`), symbol (`BTCUSDT`,
`BTC/USDT`, ...), since (a date); pages of 50. A row opens to the stored body, whose secret was redacted
before it was stored (the raw secret is never kept)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from positions.choices import SignalClassification, SignalStatus
from positions.models import WebhookSignal

from ..acting import symbol_filter
from ..pages import AuthedRequest, Region, render_page

PAGE_SIZE = 50
OUTCOMES = [(value, label) for value, label in SignalStatus.choices] + [
    (value, label) for value, label in SignalClassification.choices if value
]


def parse_since(raw: str) -> tuple[datetime | None, str | None]:
    """A date (`2026-11-20`, from 00:00 in the server's zone) or a date-time; an error naming what is wrong."""
    text = raw.strip()
    if not text:
        return None, None
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, time.min) if day is not None else None
    except ValueError:
        moment = None
    if moment is None:
        return None, "must be a date (YYYY-MM-DD) or a date and time"
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment, None


def signal_rows(user: Any, params: Any) -> tuple[QuerySet[WebhookSignal], dict[str, str], dict[str, str]]:
    """The user's signals under the filters in `params`, the filters as given, and errors by field."""
    qs = WebhookSignal.objects.all()
    if not user.sees_everything:
        qs = qs.filter(user=user)
    filters = {name: (params.get(name) or "").strip() for name in ("outcome", "symbol", "since")}
    errors: dict[str, str] = {}
    outcome = filters["outcome"].lower()
    if outcome:
        if outcome not in dict(OUTCOMES):
            errors["outcome"] = f"unknown outcome; use one of {', '.join(v for v, _ in OUTCOMES)}"
        else:
            qs = qs.filter(Q(status=outcome) | Q(classification=outcome))
    if filters["symbol"]:
        qs = symbol_filter(qs, "symbol", filters["symbol"])
    since, problem = parse_since(filters["since"])
    if problem:
        errors["since"] = problem
    elif since is not None:
        qs = qs.filter(received_at__gte=since)
    return qs.order_by("-received_at"), filters, errors


def _signals(request: AuthedRequest) -> dict[str, Any]:
    qs, filters, errors = signal_rows(request.user, request.GET)
    page = Paginator(qs.select_related("group"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("partial", None)
    return {
        "page": page,
        "filters": filters,
        "filter_errors": errors,
        "outcomes": OUTCOMES,
        "query": query.urlencode(),
    }


REGIONS = {"signals": Region("web/partials/signal_table.html", _signals)}


@login_required
def signals(request: AuthedRequest) -> HttpResponse:
    return render_page(request, "web/signals.html", REGIONS)
