"""`/api/strategies` (docs/strategies.md#api): the user's instances; create, change, delete, enable,
disable. Another user's instance is a 404."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadOrTrader
from core.api import ApiError
from strategies import selectors, services
from strategies.models import StrategyInstance
from strategies.services import StrategyInputError

_SCHEMA: dict[str, Any] = {"type": "object"}
# For the OpenAPI schema only: `strategies.services` validates (and names each bad field).
_BODY = inline_serializer(
    name="StrategyBody",
    fields={
        "kind": serializers.ChoiceField(choices=["rsi", "macd", "bollinger", "volume", "stochastic"]),
        "params": serializers.DictField(required=False),
        "symbols": serializers.ListField(child=serializers.CharField()),
        "timeframes": serializers.ListField(child=serializers.CharField(), required=False),
        "confirm_timeframe": serializers.CharField(required=False, allow_blank=True),
        "exchange": serializers.CharField(),
        "capital_usd": serializers.DecimalField(max_digits=38, decimal_places=18, required=False),
        "correlation_guard": serializers.BooleanField(required=False),
        "max_correlation": serializers.DecimalField(max_digits=6, decimal_places=4, required=False),
        "enabled": serializers.BooleanField(required=False),
    },
)


def _invalid(exc: StrategyInputError) -> ApiError:
    return ApiError(status_code=400, code="invalid", detail=str(exc), fields=exc.fields)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError(status_code=400, code="invalid", detail="The body must be a JSON object.")
    return dict(request.data)


def _own(request: Request, strategy_id: str) -> StrategyInstance:
    instance = selectors.strategy_get(user=request.user, strategy_id=strategy_id)
    if instance is None:
        raise ApiError(status_code=404, code="not_found", detail="No such strategy.")
    return instance


class StrategyListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(operation_id="strategies_list", responses={200: {"type": "array", "items": _SCHEMA}})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        return Response(
            [selectors.strategy_describe(instance=item, now=now) for item in selectors.strategy_list(user=request.user)]
        )

    @extend_schema(request=_BODY, responses={201: _SCHEMA})
    def post(self, request: Request) -> Response:
        try:
            instance = services.strategy_create(user=request.user, data=_body(request))
        except StrategyInputError as exc:
            raise _invalid(exc) from None
        return Response(
            selectors.strategy_describe(instance=instance, now=timezone.now()), status=status.HTTP_201_CREATED
        )


class StrategyDetailView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses={200: _SCHEMA})
    def get(self, request: Request, strategy_id: str) -> Response:
        return Response(selectors.strategy_describe(instance=_own(request, strategy_id), now=timezone.now()))

    @extend_schema(request=_BODY, responses={200: _SCHEMA})
    def patch(self, request: Request, strategy_id: str) -> Response:
        instance = _own(request, strategy_id)
        try:
            instance = services.strategy_update(instance=instance, data=_body(request), actor=request.user)
        except StrategyInputError as exc:
            raise _invalid(exc) from None
        return Response(selectors.strategy_describe(instance=instance, now=timezone.now()))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, strategy_id: str) -> Response:
        services.strategy_delete(instance=_own(request, strategy_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StrategyEnableView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(request=None, responses={200: _SCHEMA})
    def post(self, request: Request, strategy_id: str) -> Response:
        instance = services.strategy_enable(instance=_own(request, strategy_id), actor=request.user)
        return Response(selectors.strategy_describe(instance=instance, now=timezone.now()))


class StrategyDisableView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(request=None, responses={200: _SCHEMA})
    def post(self, request: Request, strategy_id: str) -> Response:
        instance = services.strategy_disable(
            instance=_own(request, strategy_id), reason="disabled by its owner", actor=request.user
        )
        return Response(selectors.strategy_describe(instance=instance, now=timezone.now()))
