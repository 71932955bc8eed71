"""`/backtests/`: run backtests and optimizations, watch their progress, read their results, compare two
runs, and the ML filter's models (docs/web.md#backtests).

Submitting goes through `analytics.tasks_framework.task_submit`, the function `POST /api/tasks/<kind>`
calls, with the same validation; its field errors are shown beside the fields with what was typed kept.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.choices import Role
from analytics import tasks_framework
from analytics.backtest_task import SOURCES
from analytics.ml import selectors as ml_selectors
from analytics.ml import services as ml_services
from analytics.ml.params import MLInputError
from analytics.models import BackgroundTask, BacktestRun
from analytics.optimize.search import GENERATOR_KEYS, OBJECTIVES, SEARCHABLE, apply_values
from analytics.selectors import backtest_get
from exchanges.candles import selectors as candle_selectors
from positions.config import ConfigError
from positions.services.configs import config_get, config_set
from strategies.params import SPECS

from ..acting import back, may_act, trader_action
from ..pages import AuthedRequest, Region, render_page

TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")
CHART_CANDLES = 3000  # the deals chart's candles at most (the run's period, evenly thinned)
RUN_FIELDS = ("source", "strategy", "strategy_params", "symbol", "timeframe", "exchange", "start", "end", "config")


# ------------------------------------------------------------------------------------------ reading


def _tasks(request: AuthedRequest, kind: str) -> list[BackgroundTask]:
    return tasks_framework.task_list(owner=request.user, kind=kind, limit=20)


def _runs(request: AuthedRequest) -> dict[str, Any]:
    runs = list(
        BacktestRun.objects.filter(owner=request.user).defer("deals", "equity", "fills").order_by("-created_at")[:50]
    )
    return {"runs": runs, "tasks": _tasks(request, "backtest"), "may_act": may_act(request.user)}


def _optimizations(request: AuthedRequest) -> dict[str, Any]:
    return {"tasks": _tasks(request, "optimize"), "may_act": may_act(request.user)}


def _models(request: AuthedRequest) -> dict[str, Any]:
    return {
        "models": list(ml_selectors.model_list()[:100]),
        "tasks": _tasks(request, "train"),
        "may_act": may_act(request.user),
        "operator": _operator(request.user),
    }


def _strategy_choices() -> list[dict[str, Any]]:
    return [{"kind": kind, "label": spec.title, "params": spec.defaults()} for kind, spec in SPECS.items()]


def _day(value: str) -> int | None:
    """A date field (YYYY-MM-DD) as epoch ms, or None."""
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        return -1  # refused by the task's own validation, which names the field


def _form_context(
    request: AuthedRequest, form: dict[str, Any] | None = None, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "form": form or {"source": "strategy", "strategy": "rsi", "exchange": "binance", "timeframe": "1h"},
        "errors": errors or {},
        "strategies": _strategy_choices(),
        "timeframes": TIMEFRAMES,
        "may_act": may_act(request.user),
        "objectives": OBJECTIVES,
        "searchable": sorted(SEARCHABLE) + [f"generator.{key}" for key in sorted(GENERATOR_KEYS)],
    }


REGIONS = {"runs": Region("web/partials/backtest_runs.html", _runs)}
OPTIMIZE_REGIONS = {"optimizations": Region("web/partials/optimize_tasks.html", _optimizations)}
MODEL_REGIONS = {"models": Region("web/partials/ml_models.html", _models)}


@login_required
def backtests(request: AuthedRequest) -> HttpResponse:
    return render_page(request, "web/backtests.html", REGIONS, _form_context(request))


# ----------------------------------------------------------------------------------------- submitting


def _request_data(post: Any, files: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's JSON body from the form, and the form's values to show again after an error."""
    form = {name: post.get(name, "").strip() for name in RUN_FIELDS}
    data: dict[str, Any] = {
        "symbol": form["symbol"],
        "timeframe": form["timeframe"],
        "exchange": form["exchange"] or "binance",
    }
    source = form["source"] or "strategy"
    if source == "strategy":
        data["strategy"] = form["strategy"]
        if form["strategy_params"]:
            try:
                data["strategy_params"] = json.loads(form["strategy_params"])
            except json.JSONDecodeError:
                data["strategy_params"] = form["strategy_params"]  # the validation names it
    elif source in SOURCES:
        upload = files.get("upload")
        data[source] = upload.read().decode("utf-8", errors="replace") if upload else post.get("csv_text", "")
        form["csv_text"] = "" if upload else post.get("csv_text", "")
    for name in ("start", "end"):
        if form[name]:
            data[name] = _day(form[name])
    if form["config"]:
        try:
            data["config"] = json.loads(form["config"])
        except json.JSONDecodeError:
            data["config"] = form["config"]
    if post.get("ml_filter"):
        data["ml_filter"] = True
        form["ml_filter"] = True
    return data, form


def _errors(fields: dict[str, list[str]]) -> dict[str, str]:
    """Field errors keyed by the form's field (`config.tp_mode` → config, `strategy.length` → strategy_params)."""
    shown: dict[str, list[str]] = {}
    for name, reasons in fields.items():
        head = name.split(".", 1)[0].split(" ", 1)[0]
        key = {"strategy": "strategy_params" if "." in name else "strategy", **{s: "upload" for s in SOURCES}}.get(
            head, head
        )
        shown.setdefault(key, []).extend(f"{name}: {reason}" if name != key else reason for reason in reasons)
    return {key: "; ".join(reasons) for key, reasons in shown.items()}


def _submit(request: AuthedRequest, kind: str, data: dict[str, Any]) -> tuple[BackgroundTask | None, dict[str, str]]:
    try:
        return tasks_framework.task_submit(owner=request.user, kind=kind, data=data), {}
    except tasks_framework.TaskInputError as exc:
        return None, _errors(exc.fields)
    except tasks_framework.TaskLimitError as exc:
        return None, {"form": str(exc)}


@trader_action
def backtest_submit(request: AuthedRequest) -> HttpResponse:
    data, form = _request_data(request.POST, request.FILES)
    task, errors = _submit(request, "backtest", data)
    if task is None:
        context = {**_form_context(request, form, errors), **_runs(request)}
        return render(request, "web/backtests.html", context, status=400)
    return back(request, "web:backtests", "Backtest started: its progress shows below.")


@trader_action
def task_revoke_view(request: AuthedRequest, task_id: Any) -> HttpResponse:
    task = tasks_framework.task_get(owner=request.user, task_id=task_id)
    if task is None:
        raise Http404("No such task.")
    try:
        tasks_framework.task_revoke(task=task)
    except tasks_framework.TaskFinishedError as exc:
        return back(request, "web:backtests", str(exc), level=messages.WARNING)
    return back(request, "web:backtests", "Task stopped.")


# ------------------------------------------------------------------------------------------ one run


def _run(request: AuthedRequest, backtest_id: Any) -> BacktestRun:
    run = backtest_get(owner=request.user, backtest_id=backtest_id)
    if run is None:
        raise Http404("No such backtest.")
    return run


def _drawdown(equity: list[list[float]]) -> list[dict[str, float]]:
    peak = float("-inf")
    points = []
    for time_ms, _realized, marked in equity:
        peak = max(peak, marked)
        points.append({"time": int(time_ms // 1000), "value": -(peak - marked) / peak * 100 if peak > 0 else 0.0})
    return points


def _chart_data(run: BacktestRun) -> dict[str, Any]:
    equity = run.equity or []
    markers = []
    for fill in run.fills or []:
        buy = fill["side"] == "buy"
        markers.append(
            {
                "time": int(fill["time_ms"] // 1000),
                "position": "belowBar" if buy else "aboveBar",
                "color": "#1a7f37" if buy else "#cf222e",
                "shape": "arrowUp" if buy else "arrowDown",
                # Entries, legs and take-profits are many and speak for themselves; exits are named.
                "text": "" if fill["kind"] in ("entry", "dca", "tp") else fill["kind"],
            }
        )
    return {
        "equity": [{"time": int(t // 1000), "realized": r, "marked": m} for t, r, m in equity],
        "drawdown": _drawdown(equity),
        "markers": sorted(markers, key=lambda m: m["time"]),
    }


@login_required
def backtest_detail(request: AuthedRequest, backtest_id: Any) -> HttpResponse:
    run = _run(request, backtest_id)
    deals = run.deals or []
    return render(
        request,
        "web/backtest_detail.html",
        {"run": run, "m": run.metrics or {}, "deals": deals[:500], "deal_count": len(deals), "chart": _chart_data(run)},
    )


@login_required
def backtest_candles(request: AuthedRequest, backtest_id: Any) -> JsonResponse:
    """The run's candles for the deals chart, from the candle store (at most CHART_CANDLES, evenly kept)."""
    run = _run(request, backtest_id)
    params = run.params or {}
    rows = candle_selectors.candles_range(
        exchange_name=run.exchange_name,
        symbol=run.symbol,
        timeframe=run.timeframe,
        start_ms=params.get("start"),
        end_ms=params.get("end"),
    )
    step = max(1, len(rows) // CHART_CANDLES)
    kept = rows[::step]
    return JsonResponse(
        {
            "candles": [
                {
                    "time": r.open_ms // 1000,
                    "open": float(r.open),
                    "high": float(r.high),
                    "low": float(r.low),
                    "close": float(r.close),
                }
                for r in kept
            ],
            "thinned": step > 1,
        }
    )


@login_required
def backtest_compare(request: AuthedRequest) -> HttpResponse:
    ids = [value for value in request.GET.getlist("run") if value][:2]
    if len(ids) != 2:
        messages.warning(request, "Pick two runs to compare.")
        return back(request, "web:backtests")
    runs = [_run(request, run_id) for run_id in ids]
    keys = sorted(set(runs[0].metrics or {}) | set(runs[1].metrics or {}))
    rows = [
        {"key": key, "a": (runs[0].metrics or {}).get(key), "b": (runs[1].metrics or {}).get(key)}
        for key in keys
        if not isinstance((runs[0].metrics or {}).get(key), dict | list)
    ]
    charts = {"a": _chart_data(runs[0])["equity"], "b": _chart_data(runs[1])["equity"]}
    return render(request, "web/backtest_compare.html", {"runs": runs, "rows": rows, "charts": charts})


# ------------------------------------------------------------------------------------------ optimization


@login_required
def optimizations(request: AuthedRequest) -> HttpResponse:
    context = _form_context(request)
    context["form"].update(
        {"objective": "return", "method": "grid", "space": '{"tp_aggregate_percent": ["1", "2", "3"]}'}
    )
    return render_page(request, "web/optimize.html", OPTIMIZE_REGIONS, context)


@trader_action
def optimize_submit(request: AuthedRequest) -> HttpResponse:
    data, form = _request_data(request.POST, request.FILES)
    extra = {
        name: request.POST.get(name, "").strip()
        for name in ("space", "objective", "method", "samples", "seed", "train_days", "test_days")
    }
    form.update(extra)
    try:
        data["space"] = json.loads(extra["space"] or "{}")
    except json.JSONDecodeError as exc:
        data["space"] = None
        errors = {"space": f"not valid JSON: {exc.msg}"}
        return render_page(
            request, "web/optimize.html", OPTIMIZE_REGIONS, _form_context(request, form, errors), status=400
        )
    data["objective"] = extra["objective"] or "return"
    data["method"] = extra["method"] or "grid"
    for name in ("samples", "seed"):
        if extra[name]:
            data[name] = int(extra[name]) if extra[name].isdigit() else extra[name]
    if extra["train_days"] or extra["test_days"]:
        data["walk_forward"] = {
            name: int(extra[name]) if extra[name].isdigit() else extra[name] for name in ("train_days", "test_days")
        }
    task, errors = _submit(request, "optimize", data)
    if task is None:
        errors = {("train_days" if k == "walk_forward" else k): v for k, v in errors.items()}
        return render_page(
            request, "web/optimize.html", OPTIMIZE_REGIONS, _form_context(request, form, errors), status=400
        )
    return back(request, "web:optimizations", "Optimization started: its progress shows below.")


def _optimization(request: AuthedRequest, task_id: Any) -> BackgroundTask:
    task = tasks_framework.task_get(owner=request.user, task_id=task_id)
    if task is None or task.kind != "optimize":
        raise Http404("No such optimization.")
    return task


def _diff(current: dict[str, Any], values: dict[str, Any]) -> list[dict[str, Any]]:
    proposed = apply_values(current, values)
    keys = sorted(set(values) | ({"generator"} if any(k.startswith("generator.") for k in values) else set()))
    rows = []
    for key in keys:
        if key.startswith("generator."):
            continue
        before, after = current.get(key), proposed.get(key)
        rows.append({"key": key, "before": before, "after": after, "changed": str(before) != str(after)})
    for key, value in values.items():
        if key.startswith("generator."):
            name = key.split(".", 1)[1]
            before = (current.get("generator") or {}).get(name)
            rows.append({"key": key, "before": before, "after": value, "changed": str(before) != str(value)})
    return rows


@login_required
def optimization_detail(request: AuthedRequest, task_id: Any) -> HttpResponse:
    task = _optimization(request, task_id)
    result = task.result or {}
    current = config_get(user=request.user)
    top = (result.get("results") or [])[:20]
    for item in top:
        item["diff"] = _diff(current, item["values"])
    heat = result.get("heatmap")
    if heat:
        finite = [v for row in heat["z"] for v in row if v is not None]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        heat["rows"] = [
            {
                "y": y,
                "cells": [
                    {"value": v, "shade": 0 if v is None or high == low else (v - low) / (high - low)} for v in row
                ],
            }
            for y, row in zip(heat["y_values"], heat["z"], strict=True)
        ]
    return render(
        request,
        "web/optimize_detail.html",
        {"task": task, "result": result, "top": top, "heat": heat, "may_act": may_act(request.user)},
    )


@trader_action
def optimization_apply(request: AuthedRequest, task_id: Any, rank: int) -> HttpResponse:
    task = _optimization(request, task_id)
    results = (task.result or {}).get("results") or []
    chosen = next((item for item in results if item.get("rank") == rank), None)
    target = reverse("web:optimization", args=[task.pk])
    if chosen is None:
        raise Http404("No such result.")
    current = config_get(user=request.user)
    try:
        config_set(user=request.user, data=apply_values(current, chosen["values"]), partial=False)
    except ConfigError as exc:
        messages.error(request, f"Not applied: {exc}")
        return HttpResponseRedirect(target)
    messages.success(request, f"Your engine config now uses result #{rank}'s values: {chosen['values']}.")
    return HttpResponseRedirect(target)


# ------------------------------------------------------------------------------------------ ML models


@login_required
def models(request: AuthedRequest) -> HttpResponse:
    context = _form_context(request)
    context["form"].update({"horizon": "12", "timeframe": "1h"})
    context["operator"] = _operator(request.user)
    return render_page(request, "web/ml_models.html", MODEL_REGIONS, context)


def _operator(user: Any) -> bool:
    """Deploy and roll back need the manager role, as `/api/ml/models` asks (`IsManagerOrHigher`)."""
    return bool(user.is_superuser or getattr(user, "role", "") in (Role.MANAGER, Role.ADMIN))


@trader_action
def train_submit(request: AuthedRequest) -> HttpResponse:
    form = {
        name: request.POST.get(name, "").strip()
        for name in ("symbol", "timeframe", "exchange", "horizon", "start", "end")
    }
    data: dict[str, Any] = {
        "symbol": form["symbol"],
        "timeframe": form["timeframe"],
        "exchange": form["exchange"] or "binance",
    }
    data["horizon"] = int(form["horizon"]) if form["horizon"].isdigit() else form["horizon"]
    for name in ("start", "end"):
        if form[name]:
            data[name] = _day(form[name])
    task, errors = _submit(request, "train", data)
    if task is None:
        context = {**_form_context(request, form, errors), "operator": _operator(request.user)}
        return render_page(request, "web/ml_models.html", MODEL_REGIONS, context, status=400)
    return back(request, "web:models", "Training started: its progress shows below.")


@trader_action
def model_action(request: AuthedRequest, model_id: Any, action: str) -> HttpResponse:
    if not _operator(request.user):
        raise PermissionDenied("Only an operator deploys or rolls back models.")
    model = ml_selectors.model_get(model_id=model_id)
    if model is None:
        raise Http404("No such model.")
    try:
        if action == "deploy":
            ml_services.model_deploy(model_id=model.pk, reason=f"deployed by {request.user.email}")
            done = f"Model {model.pk} deployed for {model.symbol} {model.timeframe}."
        elif action == "rollback":
            back_to = ml_services.model_rollback(symbol=model.symbol, timeframe=model.timeframe)
            done = f"Rolled back: model {back_to.pk} is deployed again for {model.symbol} {model.timeframe}."
        else:
            raise Http404("No such action.")
    except MLInputError as exc:
        return back(request, "web:models", str(exc), level=messages.WARNING)
    return back(request, "web:models", done)
