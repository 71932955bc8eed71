"""`/api/ml/models`: the model registry (docs/ml.md#registry). Anyone signed in reads it; deploying a
model or rolling a market back changes the filter of every user of that market, so it needs the manager
role."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsManagerOrHigher, IsViewerOrHigher
from core.api import ApiError

from . import selectors, services
from .params import MLInputError, name_checked

_SCHEMA: dict[str, Any] = {"type": "object"}
LIST_LIMIT = 200
_ROLLBACK_BODY = inline_serializer(
    name="ModelRollbackBody", fields={"symbol": serializers.CharField(), "timeframe": serializers.CharField()}
)


def _query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is None:
        return None
    try:
        return name_checked(value, field_name=name)
    except MLInputError as exc:
        raise ApiError(status_code=400, code="invalid", detail=str(exc), fields={name: [str(exc)]}) from None


def _model(model_id: Any) -> Any:
    model = selectors.model_get(model_id=model_id)
    if model is None:
        raise ApiError(status_code=404, code="not_found", detail="No such model.")
    return model


class ModelListView(APIView):
    permission_classes = [IsViewerOrHigher]

    @extend_schema(
        operation_id="ml_models_list",
        parameters=[OpenApiParameter("symbol", str), OpenApiParameter("timeframe", str)],
        responses={200: _SCHEMA},
    )
    def get(self, request: Request) -> Response:
        symbol, timeframe = (_query(request, name) for name in ("symbol", "timeframe"))
        found = selectors.model_list(symbol=symbol, timeframe=timeframe)[:LIST_LIMIT]
        return Response({"models": [selectors.model_describe(model) for model in found]})


class ModelDetailView(APIView):
    permission_classes = [IsViewerOrHigher]

    @extend_schema(responses={200: _SCHEMA})
    def get(self, request: Request, model_id: Any) -> Response:
        return Response(selectors.model_describe(_model(model_id)))


class ModelDeployView(APIView):
    """Deploy this model whatever its score (the deployed one of its market is retired)."""

    permission_classes = [IsManagerOrHigher]

    @extend_schema(request=None, responses={200: _SCHEMA})
    def post(self, request: Request, model_id: Any) -> Response:
        model = _model(model_id)
        deployed = services.model_deploy(model_id=model.pk, reason=f"deployed by {request.user} through the API")
        return Response(selectors.model_describe(deployed))


class ModelRollbackView(APIView):
    """`{symbol, timeframe}`: deploy again the model that market had before its current one."""

    permission_classes = [IsManagerOrHigher]

    @extend_schema(request=_ROLLBACK_BODY, responses={200: _SCHEMA})
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        try:
            symbol, timeframe = (name_checked(data.get(name), field_name=name) for name in ("symbol", "timeframe"))
            model = services.model_rollback(symbol=symbol, timeframe=timeframe)
        except MLInputError as exc:
            raise ApiError(
                status_code=400, code="invalid", detail=str(exc), fields={exc.field_name: [str(exc)]}
            ) from None
        return Response(selectors.model_describe(model))
