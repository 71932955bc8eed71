"""`/performance/`: the live account's numbers (docs/web.md#performance), from the fills ledger through
`analytics.performance.performance_compute`, the function `GET /api/metrics/performance` serves; the
exports are that endpoint's CSV and PNG."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.utils import timezone

from analytics.advisor.selectors import review_describe, review_list
from analytics.performance import performance_compute

from ..pages import AuthedRequest, Region, render_page

EXPOSURE_SHOWN = 20


def _bars(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows with a bar width (% of the largest absolute value) for the CSS bars of the PnL tables."""
    values = [abs(Decimal(row[key] or "0")) for row in rows]
    top = max(values, default=Decimal("0")) or Decimal("1")
    return [
        {"label": row.get("day") or row.get("period"), "pnl": row[key], "width": float(value / top * 100)}
        for row, value in zip(rows, values, strict=True)
    ]


def _numbers(request: AuthedRequest) -> dict[str, Any]:
    numbers = performance_compute(user=request.user, now=timezone.now())
    equity = [
        {"time": row["day"], "realized": float(row["realized"]), "total": float(row["total"])}
        for row in numbers["equity"]
    ]
    histogram = numbers["return_histogram"]
    best_ids = {deal["group_id"] for deal in numbers["best_deals"]}
    extremes = numbers["best_deals"] + [deal for deal in numbers["worst_deals"] if deal["group_id"] not in best_ids]
    for deal in extremes:
        deal["closed"] = datetime.fromisoformat(deal["closed_at"]) if deal.get("closed_at") else None
    top = max((bucket.get("count", 0) for bucket in histogram), default=0) or 1
    # The largest holdings by value; the rest counted below the table (the API lists every pair).
    exposure = sorted(numbers["exposure"], key=lambda row: -abs(Decimal(row["value"] or "0")))
    return {
        "perf": numbers,
        "exposure_rows": exposure[:EXPOSURE_SHOWN],
        "exposure_more": max(len(exposure) - EXPOSURE_SHOWN, 0),
        "equity_points": equity,
        "by_day": _bars(numbers["pnl_by_day"][-31:][::-1], "pnl"),
        "by_week": _bars(numbers["pnl_by_week"][-12:][::-1], "pnl"),
        "by_month": _bars(numbers["pnl_by_month"][-12:][::-1], "pnl"),
        "extreme_deals": extremes,
        "histogram": [
            {"low": b["from"], "high": b["to"], "count": b["count"], "height": b["count"] / top * 100}
            for b in histogram
        ],
        # the advisor's newest reviews (docs/advisor.md#shown): one query; no section while there are none
        "advisor_reviews": [review_describe(review) for review in review_list(user=request.user)],
    }


REGIONS = {"numbers": Region("web/partials/performance_numbers.html", _numbers)}


@login_required
def performance(request: AuthedRequest) -> HttpResponse:
    return render_page(request, "web/performance.html", REGIONS)
