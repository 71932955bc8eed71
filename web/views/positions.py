"""`/positions/`: every group of the user, filtered by status, symbol (as traders type it) and timeframe,
searched, 50 to a page (docs/web.md#positions). Reads through `positions.selectors.group_list`, as
`GET /api/positions` does."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse

from exchanges.candles.rules import TIMEFRAME_MS
from exchanges.precision import compact_symbol
from positions.choices import FINAL_GROUP_STATUSES
from positions.selectors import group_list

from ..data import group_rows, groups_with_legs
from ..pages import AuthedRequest, Region, render_page

PER_PAGE = 50
STATUSES = (("all", "All"), ("open", "Open"), ("closed", "Closed"))
SEARCH_MAX = 64


def _filters(request: AuthedRequest) -> tuple[dict[str, str], dict[str, str]]:
    """The filters as typed, and an error per field whose value is not one we know (that filter is then
    left out, the rest still apply)."""
    values = {
        "status": request.GET.get("status", "all").strip() or "all",
        "symbol": request.GET.get("symbol", "").strip(),
        "timeframe": request.GET.get("timeframe", "").strip(),
        "q": request.GET.get("q", "").strip(),
    }
    errors: dict[str, str] = {}
    if values["status"] not in dict(STATUSES):
        errors["status"] = "Choose all, open or closed."
    if values["timeframe"] and values["timeframe"] not in TIMEFRAME_MS:
        errors["timeframe"] = f"Unknown timeframe; one of {', '.join(TIMEFRAME_MS)}."
    if len(values["symbol"]) > 32:
        errors["symbol"] = "At most 32 characters."
    if len(values["q"]) > SEARCH_MAX:
        errors["q"] = f"At most {SEARCH_MAX} characters."
    return values, errors


def _groups(request: AuthedRequest) -> dict[str, Any]:
    values, errors = _filters(request)
    symbol = values["symbol"] if "symbol" not in errors else None
    qs = group_list(viewer=request.user, symbol=symbol or None)
    status = values["status"] if "status" not in errors else "all"
    if status == "open":
        qs = qs.exclude(status__in=FINAL_GROUP_STATUSES)
    elif status == "closed":
        qs = qs.filter(status__in=FINAL_GROUP_STATUSES)
    if values["timeframe"] and "timeframe" not in errors:
        qs = qs.filter(timeframe=values["timeframe"])
    if values["q"] and "q" not in errors:
        text = values["q"]
        match = Q(symbol__icontains=text) | Q(status__icontains=text) | Q(close_reason__icontains=text)
        compact = compact_symbol(text)
        if compact:
            match |= Q(exchange_symbol__icontains=compact)
        qs = qs.filter(match)
    page = Paginator(groups_with_legs(qs), PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("partial", None)
    return {
        "group_rows": group_rows(list(page.object_list)),
        "page": page,
        "page_query": query.urlencode(),
        "show_closed": True,
        "empty_message": "No positions match these filters."
        if request.GET
        else "No positions yet: a TradingView alert to your webhook opens one.",
        "filters": values,
        "filter_errors": errors,
    }


REGIONS = {"groups": Region("web/partials/positions_table.html", _groups)}


@login_required
def positions(request: AuthedRequest) -> HttpResponse:
    _, errors = _filters(request)
    return render_page(
        request,
        "web/positions.html",
        REGIONS,
        {"statuses": STATUSES, "timeframes": list(TIMEFRAME_MS)},
        status=400 if errors else 200,
    )
