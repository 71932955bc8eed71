"""`/`: the dashboard (docs/web.md#dashboard)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from accounts.choices import LogLevel
from accounts.models import SystemLog
from positions.config import resolve_engine_config
from positions.models import EngineConfig, QueuedSignal, WebhookSignal
from positions.selectors import group_list
from positions.services.guards import guard_status
from positions.services.queue import pool_used
from riskengine.models import RiskAction

from ..data import ZERO, capital_locked, equity_points, group_rows, open_groups, realized_total
from ..pages import AuthedRequest, Region, render_page


def _mine(qs, user):  # type: ignore[no-untyped-def]
    return qs if user.sees_everything else qs.filter(user=user)


def _groups(request: AuthedRequest) -> dict[str, Any]:
    rows = group_rows(open_groups(request.user, limit=50))
    return {"group_rows": rows}


def _summary(request: AuthedRequest) -> dict[str, Any]:
    user = request.user
    # Every open group's PnL for the totals: the few columns `group_pnl` reads, not the table's legs join.
    groups = list(
        group_list(viewer=user, status="open")
        .select_related(None)
        .only(
            "exchange_config_id",
            "symbol",
            "filled_quantity",
            "avg_entry_price",
            "total_cost",
            "sold_quantity",
            "realized_pnl",
        )
    )
    unrealized = sum((row["unrealized"] or ZERO for row in group_rows(groups)), ZERO)
    realized = realized_total(user)
    invested = sum((g.total_cost for g in groups), ZERO)
    stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first() or {}
    config = resolve_engine_config({k: v for k, v in stored.items() if k != "overrides"})
    total = realized + unrealized
    return {
        "pool_used": pool_used(user_id=user.pk),
        "pool_max": config["max_open_groups"],
        "queued": _mine(QueuedSignal.objects, user).count(),
        "realized": realized,
        "unrealized": unrealized,
        "total_pnl": total,
        "unrealized_percent": (unrealized / invested * 100) if invested else None,
        "capital_locked": capital_locked(user),
        "last_signal": _mine(WebhookSignal.objects, user).order_by("-received_at").first(),
        "guards": guard_status(user=user),
        "last_risk": _mine(RiskAction.objects, user).order_by("-last_seen_at").first(),
        "errors": list(
            _mine(SystemLog.objects, user)
            .filter(level__in=(LogLevel.ERROR, LogLevel.CRITICAL))
            .order_by("-timestamp")[:5]
        ),
    }


REGIONS = {
    "summary": Region("web/partials/dashboard_summary.html", _summary),
    "groups": Region("web/partials/group_table.html", _groups),
}


@login_required
def dashboard(request: AuthedRequest) -> HttpResponse:
    return render_page(request, "web/dashboard.html", REGIONS, {"equity": equity_points(request.user)})
