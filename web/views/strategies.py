"""`/strategies/`: the user's strategy instances with their health; enable, disable, create, edit, delete
(docs/web.md#strategies). Reads are `strategies.selectors`; writes are `strategies.services`, whose validation
(`strategies.params` for the parameters) is the API's, so a bad field is named the same way."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils import timezone

from exchanges.candles.rules import TIMEFRAME_MS
from exchanges.models import ExchangeConfig
from strategies import selectors, services
from strategies.models import StrategyInstance
from strategies.params import SPECS
from strategies.rules import health_compute
from strategies.services import StrategyInputError

from ..acting import back, may_act, trader_action
from ..pages import AuthedRequest, Region, render_page

FIELDS = (
    "kind",
    "symbols",
    "timeframes",
    "confirm_timeframe",
    "exchange",
    "capital_usd",
    "correlation_guard",
    "max_correlation",
)


def _strategies(request: AuthedRequest) -> dict[str, Any]:
    instances = list(selectors.strategy_list(user=request.user))
    trades = services.strategy_trades_many(instances=instances)
    now = timezone.now()
    rows = [
        {"instance": item, "spec": SPECS.get(item.kind), "health": health_compute(trades[item.pk], now=now)}
        for item in instances
    ]
    return {"rows": rows, "may_act": may_act(request.user)}


REGIONS = {"strategies": Region("web/partials/strategy_table.html", _strategies)}


def _own(request: AuthedRequest, strategy_id: Any) -> StrategyInstance:
    instance = selectors.strategy_get(user=request.user, strategy_id=strategy_id)
    if instance is None:
        raise Http404("No such strategy.")
    return instance


def _values_of(instance: StrategyInstance) -> dict[str, Any]:
    return {
        "kind": instance.kind,
        "params": {name: str(value) for name, value in instance.params.items()},
        "symbols": ", ".join(instance.symbols),
        "timeframes": ", ".join(instance.timeframes),
        "confirm_timeframe": instance.confirm_timeframe,
        "exchange": instance.exchange_config.exchange_name,
        "capital_usd": f"{instance.capital_usd.normalize():f}",
        "correlation_guard": instance.correlation_guard,
        "max_correlation": f"{instance.max_correlation.normalize():f}",
        "enabled": instance.enabled,
    }


def _blank() -> dict[str, Any]:
    return {
        "kind": "rsi",
        "params": {},
        "symbols": "",
        "timeframes": "15m",
        "confirm_timeframe": "",
        "exchange": "",
        "capital_usd": "200",
        "correlation_guard": False,
        "max_correlation": "0.7",
        "enabled": True,
    }


def _form(
    request: AuthedRequest,
    *,
    instance: StrategyInstance | None,
    values: dict[str, Any],
    errors: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """What the create/edit form shows: each kind's parameters (the selected kind's open), the typed values
    and each field's errors (`params.<name>` beside that parameter)."""
    errors = errors or {}
    kinds = []
    for kind, spec in SPECS.items():
        selected = kind == values["kind"]
        params = [
            {
                "param": param,
                "name": f"p_{kind}_{param.name}",
                "value": values["params"].get(param.name, "") if selected else "",
                "errors": errors.get(f"params.{param.name}") if selected else None,
            }
            for param in spec.params
        ]
        kinds.append({"kind": kind, "spec": spec, "selected": selected, "params": params})
    shown = set(FIELDS) | {f"params.{p.name}" for k in kinds if k["selected"] for p in k["spec"].params}
    exchanges = list(
        ExchangeConfig.objects.filter(user=request.user, is_enabled=True)
        .order_by("exchange_name")
        .values_list("exchange_name", flat=True)
    )
    return {
        "instance": instance,
        "action": reverse("web:strategy-edit", args=[instance.pk]) if instance else reverse("web:strategy-new"),
        "values": values,
        "errors": errors,
        "other_errors": {name: reasons for name, reasons in errors.items() if name not in shown},
        "kinds": kinds,
        "exchanges": exchanges,
        "timeframe_choices": list(TIMEFRAME_MS),
    }


def _page(request: AuthedRequest, form: dict[str, Any] | None = None, status: int = 200) -> HttpResponse:
    if form is None:
        editing = request.GET.get("edit")
        if editing:
            try:
                instance = _own(request, uuid.UUID(editing))
            except ValueError:
                raise Http404("No such strategy.") from None
            form = _form(request, instance=instance, values=_values_of(instance))
        else:
            form = _form(request, instance=None, values=_blank())
    return render_page(request, "web/strategies.html", REGIONS, {"form": form}, status=status)


@login_required
def strategies(request: AuthedRequest) -> HttpResponse:
    return _page(request)


def _typed(request: AuthedRequest) -> dict[str, Any]:
    """The form as typed, for showing it again."""
    post = request.POST
    kind = post.get("kind", "")
    params = {}
    if kind in SPECS:
        for param in SPECS[kind].params:
            params[param.name] = post.get(f"p_{kind}_{param.name}", "").strip()
    return {
        "kind": kind,
        "params": params,
        "symbols": post.get("symbols", ""),
        "timeframes": post.get("timeframes", ""),
        "confirm_timeframe": post.get("confirm_timeframe", ""),
        "exchange": post.get("exchange", ""),
        "capital_usd": post.get("capital_usd", ""),
        "correlation_guard": post.get("correlation_guard") == "on",
        "max_correlation": post.get("max_correlation", ""),
        "enabled": post.get("enabled") == "on",
    }


def _data(typed: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The typed form as the API's JSON body: empty fields left out (their defaults apply)."""
    data: dict[str, Any] = {
        "kind": typed["kind"],
        "params": {name: value for name, value in typed["params"].items() if value != ""},
        "symbols": typed["symbols"],
        "timeframes": typed["timeframes"] or "15m",
        "confirm_timeframe": typed["confirm_timeframe"],
        "exchange": typed["exchange"],
        "correlation_guard": typed["correlation_guard"],
    }
    for name in ("capital_usd", "max_correlation"):
        if typed[name].strip():
            data[name] = typed[name].strip()
    if creating:
        data["enabled"] = typed["enabled"]
    return data


def _refused(
    request: AuthedRequest, instance: StrategyInstance | None, typed: dict[str, Any], exc: StrategyInputError
) -> HttpResponse:
    messages.error(request, "Not saved: see the fields marked below.")
    if typed["kind"] not in SPECS:
        typed = {**typed, "kind": instance.kind if instance else "rsi", "params": {}}
    return _page(request, _form(request, instance=instance, values=typed, errors=exc.fields), status=400)


@trader_action
def strategy_new_view(request: AuthedRequest) -> HttpResponse:
    typed = _typed(request)
    try:
        instance = services.strategy_create(user=request.user, data=_data(typed, creating=True))
    except StrategyInputError as exc:
        return _refused(request, None, typed, exc)
    return back(
        request, "web:strategies", f"Strategy {instance.get_kind_display()} created on {', '.join(instance.symbols)}."
    )


@trader_action
def strategy_edit_view(request: AuthedRequest, strategy_id: uuid.UUID) -> HttpResponse:
    instance = _own(request, strategy_id)
    typed = _typed(request)
    try:
        services.strategy_update(instance=instance, data=_data(typed, creating=False), actor=request.user)
    except StrategyInputError as exc:
        return _refused(request, instance, typed, exc)
    return back(request, "web:strategies", f"Strategy {instance.get_kind_display()} saved.")


@trader_action
def strategy_enable_view(request: AuthedRequest, strategy_id: uuid.UUID) -> HttpResponse:
    instance = services.strategy_enable(instance=_own(request, strategy_id), actor=request.user)
    return back(request, "web:strategies", f"Strategy {instance.get_kind_display()} enabled.")


@trader_action
def strategy_disable_view(request: AuthedRequest, strategy_id: uuid.UUID) -> HttpResponse:
    instance = services.strategy_disable(
        instance=_own(request, strategy_id), reason="disabled by its owner", actor=request.user
    )
    return back(request, "web:strategies", f"Strategy {instance.get_kind_display()} disabled.")


@trader_action
def strategy_delete_view(request: AuthedRequest, strategy_id: uuid.UUID) -> HttpResponse:
    instance = _own(request, strategy_id)
    services.strategy_delete(instance=instance, actor=request.user)
    return back(request, "web:strategies", f"Strategy {instance.get_kind_display()} deleted.")
