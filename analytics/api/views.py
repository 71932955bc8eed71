"""`/api/tasks` (background tasks), `/api/backtests` (stored runs) and `/api/metrics/performance` (the
live account's numbers); docs/tasks.md#api and docs/performance.md. Another user's task or run is a 404."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import AuthenticatedRequest, ReadOrTrader
from core.api import ApiError

from .. import performance, selectors, tasks_framework
from ..tasks_framework import TaskFinishedError, TaskInputError, TaskLimitError, UnknownTaskKindError

_SCHEMA: dict[str, Any] = {"type": "object"}
# For the OpenAPI schema only: each kind validates its own body (and names each bad field).
_BACKTEST_BODY = inline_serializer(
    name="BacktestTaskBody",
    fields={
        "strategy": serializers.JSONField(required=False),
        "strategy_params": serializers.DictField(required=False),
        "signals_csv": serializers.CharField(required=False),
        "tv_trades_csv": serializers.CharField(required=False),
        "symbol": serializers.CharField(),
        "timeframe": serializers.CharField(),
        "exchange": serializers.CharField(),
        "start": serializers.CharField(required=False),
        "end": serializers.CharField(required=False),
        "config": serializers.DictField(required=False),
        "detail_timeframe": serializers.CharField(required=False),
    },
)


def _body(request: Request) -> dict[str, Any]:
    data = request.data
    if hasattr(data, "dict"):  # a form or multipart upload: one value per field, files included
        return {**data.dict(), **{name: request.FILES[name] for name in request.FILES}}
    if not isinstance(data, dict):
        raise ApiError(status_code=400, code="invalid", detail="The body must be a JSON object.")
    return dict(data)


def _own_task(request: AuthenticatedRequest, task_id: Any) -> Any:
    task = tasks_framework.task_get(owner=request.user, task_id=task_id)
    if task is None:
        raise ApiError(status_code=404, code="not_found", detail="No such task.")
    return task


class TaskSubmitView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(
        operation_id="tasks_submit",
        request=_BACKTEST_BODY,
        responses={202: _SCHEMA, 400: _SCHEMA, 429: _SCHEMA},
    )
    def post(self, request: AuthenticatedRequest, kind: str) -> Response:
        try:
            task = tasks_framework.task_submit(owner=request.user, kind=kind, data=_body(request))
        except UnknownTaskKindError as exc:
            raise ApiError(
                status_code=400, code="unknown_task_kind", detail=str(exc), fields={"kind": [str(exc)]}
            ) from None
        except TaskInputError as exc:
            raise ApiError(status_code=400, code="invalid", detail=str(exc), fields=exc.fields) from None
        except TaskLimitError as exc:
            raise ApiError(status_code=429, code="too_many_tasks", detail=str(exc)) from None
        return Response(
            {"task_id": str(task.pk), "status": task.status, "status_url": f"/api/tasks/{task.pk}"},
            status=status.HTTP_202_ACCEPTED,
        )


class TaskListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(
        operation_id="tasks_list",
        parameters=[OpenApiParameter("kind", str), OpenApiParameter("status", str)],
        responses={200: {"type": "array", "items": _SCHEMA}},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        tasks = tasks_framework.task_list(
            owner=request.user, kind=request.query_params.get("kind"), status=request.query_params.get("status")
        )
        return Response([tasks_framework.task_describe(task=task) for task in tasks])


class TaskDetailView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses={200: _SCHEMA})
    def get(self, request: AuthenticatedRequest, task_id: Any) -> Response:
        return Response(tasks_framework.task_describe(task=_own_task(request, task_id)))

    @extend_schema(responses={202: _SCHEMA, 409: _SCHEMA})
    def delete(self, request: AuthenticatedRequest, task_id: Any) -> Response:
        try:
            task = tasks_framework.task_revoke(task=_own_task(request, task_id))
        except TaskFinishedError as exc:
            raise ApiError(status_code=409, code="conflict", detail=str(exc)) from None
        return Response(tasks_framework.task_describe(task=task), status=status.HTTP_202_ACCEPTED)


class BacktestListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(operation_id="backtests_list", responses={200: {"type": "array", "items": _SCHEMA}})
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response([selectors.backtest_describe(run=run) for run in selectors.backtest_list(owner=request.user)])


class BacktestDetailView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses={200: _SCHEMA})
    def get(self, request: AuthenticatedRequest, backtest_id: Any) -> Response:
        run = selectors.backtest_get(owner=request.user, backtest_id=backtest_id)
        if run is None:
            raise ApiError(status_code=404, code="not_found", detail="No such backtest.")
        return Response(selectors.backtest_describe(run=run, detail=True))


class _FormatIsOurs(DefaultContentNegotiation):
    """`?format=` picks csv or png here, not one of DRF's renderers (which would answer 404 to csv)."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class PerformanceView(APIView):
    """The user's live performance (docs/performance.md); `?format=csv` the numbers and the daily curve,
    `?format=png` the equity chart."""

    permission_classes = [ReadOrTrader]
    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        operation_id="metrics_performance",
        parameters=[OpenApiParameter("format", str, enum=["json", "csv", "png"])],
        responses={200: _SCHEMA},
    )
    def get(self, request: AuthenticatedRequest) -> Response | HttpResponse:
        wanted = (request.query_params.get("format") or "json").lower()
        if wanted not in ("json", "csv", "png"):
            raise ApiError(
                status_code=400,
                code="invalid",
                detail="format: json, csv or png",
                fields={"format": ["json, csv or png"]},
            )
        numbers = performance.performance_compute(user=request.user, now=timezone.now())
        if wanted == "png":
            response = HttpResponse(performance.performance_chart_png(numbers), content_type="image/png")
            response["Content-Disposition"] = 'inline; filename="performance.png"'
            return response
        if wanted == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            for row in performance.performance_csv_rows(numbers):
                writer.writerow(row)
            response = HttpResponse(out.getvalue(), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="performance.csv"'
            return response
        return Response(numbers)
