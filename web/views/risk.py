"""`/risk/`: the risk engine's view of each group, the projected offset, recent actions, and the guard
switches (docs/web.md#risk). Reads are `riskengine.services.risk_preview` and `guard_status`, as `GET /api/risk`
and `GET /api/guards`; actions call the services the API calls (run now, flags, pause, flatten, reset, limits)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse

from accounts.middleware import client_ip
from positions.api.guards import SETTING_KEYS
from positions.config import ConfigError, resolve_engine_config
from positions.models import EngineConfig, PositionGroup
from positions.services import configs
from positions.services.guards import guard_daily_loss_reset, guard_flatten, guard_pause_set, guard_status
from riskengine.models import RiskAction
from riskengine.services import FlagRefusedError, RiskBusyError, risk_evaluate, risk_flag_set, risk_preview

from ..acting import back, may_act, trader_action
from ..pages import AuthedRequest, Region, render_page

FLAGS = {"block": ("blocked", True), "unblock": ("blocked", False), "skip-once": ("skip_once", True)}
FLATTEN_WORD = "FLATTEN"
PER_PAGE = 50
LIMIT_FIELDS = (
    ("max_total_exposure_usd", "Exposure cap (USD)", "Filled cost plus resting entry legs; empty: no cap."),
    ("exposure_action", "Over the cap", "Queue or reject a new group that would pass the cap."),
    ("daily_loss_limit_usd", "Daily loss limit (USD)", "Realized loss since 00:00 UTC; empty: off."),
    ("cooldown_minutes_after_loss", "Cooldown after a loss (min)", "No new group on that symbol for so long; 0: off."),
    ("max_alert_lag_seconds", "Stale alert after (s)", "Older alerts are ignored; 0: off."),
    ("pause_blocks_pyramids", "Pause blocks pyramids too", ""),
)
_WHOLE = re.compile(r"-?[0-9]+")
WHOLE_KEYS = ("cooldown_minutes_after_loss", "max_alert_lag_seconds")  # whole numbers in the JSON


def _risk(request: AuthedRequest) -> dict[str, Any]:
    decision, settings, config = risk_preview(user_id=request.user.pk)
    # The engine weighs every open group; the table shows them a page at a time (rendering hundreds of rows
    # was most of the page's time), in the decision's order.
    page = Paginator(decision.groups, PER_PAGE).get_page(request.GET.get("page"))
    ids = [row.view.group_id for row in page.object_list]
    timeframes = dict(PositionGroup.objects.filter(pk__in=ids).values_list("pk", "timeframe")) if ids else {}
    rows = [{"risk": row, "timeframe": timeframes.get(uuid.UUID(row.view.group_id), "")} for row in page.object_list]
    query = request.GET.copy()
    for name in ("page", "partial"):
        query.pop(name, None)
    actions = list(RiskAction.objects.filter(user_id=request.user.pk).order_by("-last_seen_at")[:20])
    return {
        "enabled": settings.enabled,
        "risk_config": settings,
        "risk_groups": rows,
        "page": page,
        "page_query": query.urlencode(),
        "plan": decision.plan,
        "would_offset": decision.offset,
        "decision_reason": decision.reason,
        "risk_actions": actions,
        "may_act": may_act(request.user),
    }


def _guards(request: AuthedRequest) -> dict[str, Any]:
    return {"guards": guard_status(user=request.user), "may_act": may_act(request.user), "flatten_word": FLATTEN_WORD}


REGIONS = {
    "guards": Region("web/partials/risk_guards.html", _guards),
    "risk": Region("web/partials/risk_groups.html", _risk),
}


def _limit_values(user: Any) -> dict[str, Any]:
    """The guard settings as stored (defaults filled in), for the limits form."""
    stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first() or {}
    config = resolve_engine_config({k: v for k, v in stored.items() if k != "overrides"})
    return {key: config.get(key) for key in SETTING_KEYS}


def _page(
    request: AuthedRequest,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    current = values if values is not None else _limit_values(request.user)
    fields = [
        {
            "name": name,
            "label": label,
            "help": help_text,
            "value": current.get(name),
            "errors": (errors or {}).get(name),
        }
        for name, label, help_text in LIMIT_FIELDS
    ]
    context = {"limit_fields": fields, "limit_errors": errors or {}}
    return render_page(request, "web/risk.html", REGIONS, context, status=status)


@login_required
def risk(request: AuthedRequest) -> HttpResponse:
    return _page(request)


@trader_action
def risk_run_view(request: AuthedRequest) -> HttpResponse:
    try:
        action = risk_evaluate(user_id=request.user.pk, trigger="run_now", actor=request.user)
    except RiskBusyError:
        return back(request, "web:risk", "A risk cycle is running for you now; try again.", level=messages.ERROR)
    what = "Offset sent" if action.kind == "offset" else "Nothing done"
    return back(request, "web:risk", f"{what}: {action.reason}", level=messages.SUCCESS)


@trader_action
def risk_flag_view(request: AuthedRequest, group_id: uuid.UUID, flag: str) -> HttpResponse:
    if flag not in FLAGS:
        raise Http404("No such flag.")
    group = PositionGroup.objects.filter(pk=group_id, user_id=request.user.pk).first()
    if group is None:
        raise Http404("No such position group.")
    name, value = FLAGS[flag]
    try:
        risk_flag_set(group=group, flag=name, value=value, actor=request.user)
    except FlagRefusedError as exc:
        return back(request, "web:risk", f"Cannot change its risk flags: {exc}.", level=messages.ERROR)
    done = {
        "block": "blocked: never a loser nor a winner",
        "unblock": "unblocked",
        "skip-once": "skipped by the next cycle",
    }[flag]
    return back(request, "web:risk", f"{group.symbol} {group.timeframe} {done}.")


@trader_action
def guard_pause_view(request: AuthedRequest) -> HttpResponse:
    paused = request.POST.get("paused") == "true"
    guard_pause_set(user=request.user, paused=paused, actor=request.user, reason="by the user", ip=client_ip(request))
    text = (
        "Trading paused: no new groups; running grids and take-profits keep working." if paused else "Trading resumed."
    )
    return back(request, "web:risk", text)


@trader_action
def guard_flatten_view(request: AuthedRequest) -> HttpResponse:
    typed = request.POST.get("confirm", "").strip()
    if typed != FLATTEN_WORD:
        return back(
            request,
            "web:risk",
            f"Nothing closed: type {FLATTEN_WORD} in the confirm field to flatten everything.",
            level=messages.ERROR,
        )
    closing = guard_flatten(user=request.user, actor=request.user, ip=client_ip(request))
    return back(
        request,
        "web:risk",
        f"Flatten: closing {len(closing)} group(s) at market; trading paused.",
        level=messages.WARNING,
    )


@trader_action
def guard_reset_view(request: AuthedRequest) -> HttpResponse:
    guard_daily_loss_reset(user=request.user, actor=request.user, ip=client_ip(request))
    return back(request, "web:risk", "Daily loss reset: losses realized before now no longer count today.")


def _form_value(name: str, raw: str | None) -> Any:
    """A form field as `PUT /api/guards` would receive it in JSON: empty → null (no limit / default),
    a checkbox → true/false, whole-number keys → int, anything else as typed (the parser names what is wrong)."""
    if name == "pause_blocks_pyramids":
        return raw in ("on", "true", "1")
    text = (raw or "").strip()
    if not text:
        return None
    return int(text) if name in WHOLE_KEYS and _WHOLE.fullmatch(text) else text


@trader_action
def guard_limits_view(request: AuthedRequest) -> HttpResponse:
    data = {name: _form_value(name, request.POST.get(name)) for name in SETTING_KEYS}
    try:
        configs.config_set(user=request.user, data=data, partial=True, ip=client_ip(request))
    except ConfigError as exc:
        typed = {name: request.POST.get(name, "") for name in SETTING_KEYS}
        typed["pause_blocks_pyramids"] = data["pause_blocks_pyramids"]
        messages.error(request, "The guard limits were not saved: see the fields marked below.")
        return _page(request, values=typed, errors=exc.errors, status=400)
    return back(request, "web:risk", "Guard limits saved.")
