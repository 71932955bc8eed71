"""Positions, engine config and grid preview endpoints (docs/engine.md#config, docs/engine.md#grid)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.middleware import client_ip
from accounts.permissions import AuthenticatedRequest, IsTraderOrHigher, ReadOrTrader
from core.api import ApiError
from core.validation import InvalidValueError, decimal_bounded

from .. import selectors
from ..choices import GroupStatus
from ..config import ConfigError
from ..grid import GridConfigError, GridError, compute_grid, legs_to_json
from ..models import PositionGroup
from ..services import configs
from ..services.exits import CloseRefusedError, group_close_request
from . import serializers as s


def _prices(groups) -> dict[str, Decimal]:  # type: ignore[no-untyped-def]
    return selectors.last_prices(groups=groups)


class PositionListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=s.GroupListSerializer(many=True))
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status and status != "open" and status not in GroupStatus.values:
            raise ApiError(
                status_code=400,
                code="invalid",
                detail=f"unknown status {status!r}",
                fields={"status": [f"must be open or one of {', '.join(GroupStatus.values)}"]},
            )
        groups = list(
            selectors.group_list(viewer=request.user, status=status, symbol=request.query_params.get("symbol"))[:500]
        )
        prices = _prices(groups)
        pnl = {str(g.pk): selectors.group_pnl(group=g, price=prices.get(g.symbol)) for g in groups}
        return Response(s.GroupListSerializer(groups, many=True, context={"pnl": pnl}).data)


class PositionDetailView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=s.GroupDetailSerializer)
    def get(self, request: Request, group_id: str) -> Response:
        group = selectors.group_detail(viewer=request.user, group_id=_uuid(group_id))
        if group is None:
            raise ApiError(status_code=404, code="not_found", detail="No such position.")
        price = _prices([group]).get(group.symbol)
        pnl = {str(group.pk): selectors.group_pnl(group=group, price=price)}
        breakdown = selectors.leg_and_pyramid_pnl(group=group, price=price)
        return Response(s.GroupDetailSerializer(group, context={"pnl": pnl, "breakdown": breakdown}).data)


def _uuid(raw: str) -> uuid.UUID:

    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise ApiError(status_code=404, code="not_found", detail="No such position.") from exc


class PositionCloseView(APIView):
    permission_classes = [IsTraderOrHigher]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest, group_id: str) -> Response:
        group = PositionGroup.objects.filter(pk=_uuid(group_id), user=request.user).first()
        if group is None:
            raise ApiError(status_code=404, code="not_found", detail="No such position.")
        try:
            group_close_request(group=group, actor=request.user, ip=client_ip(request))
        except CloseRefusedError as exc:
            raise ApiError(
                status_code=409, code="conflict", detail=str(exc), fields={"status": [group.status]}
            ) from exc
        return Response(
            {
                "success": True,
                "group_id": str(group.pk),
                "status": "closing",
                "message": "Close requested: open orders will be cancelled and the position sold at market",
            },
            status=202,
        )


class ConfigView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(configs.config_get(user=request.user))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request: Request) -> Response:
        return self._save(request, partial=False)

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def patch(self, request: Request) -> Response:
        return self._save(request, partial=True)

    def _save(self, request: Request, *, partial: bool) -> Response:
        try:
            data = configs.config_set(user=request.user, data=request.data, partial=partial, ip=client_ip(request))
        except ConfigError as exc:
            raise ApiError(status_code=400, code="invalid", detail=str(exc), fields=exc.errors) from exc
        return Response(data)


class GridPreviewView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        errors: dict[str, list[str]] = {}
        for key in ("entry_price", "exchange", "symbol"):
            if data.get(key) in (None, ""):
                errors[key] = ["is required"]
        unknown = set(data) - {"config", "entry_price", "exchange", "symbol", "pyramid_index"}
        for key in unknown:
            errors[key] = ["unknown field"]
        entry = Decimal(0)
        try:
            entry = decimal_bounded(data.get("entry_price"))
        except InvalidValueError as exc:
            errors.setdefault("entry_price", [exc.reason])
        if entry <= 0:
            errors.setdefault("entry_price", ["must be a positive number"])
        pyramid_index = data.get("pyramid_index")
        if pyramid_index is None:
            pyramid_index = 0
        elif isinstance(pyramid_index, str) and pyramid_index.isascii() and pyramid_index.isdigit():
            pyramid_index = int(pyramid_index)
        elif isinstance(pyramid_index, bool) or not isinstance(pyramid_index, int) or pyramid_index < 0:
            errors["pyramid_index"] = ["must be a whole number >= 0"]
        if errors:
            raise ApiError(status_code=400, code="invalid", detail="Invalid grid preview request.", fields=errors)
        try:
            grid = configs.grid_for_preview(user=request.user, config=data.get("config"))
        except (ConfigError, GridConfigError) as exc:
            raise ApiError(
                status_code=400,
                code="invalid",
                detail=str(exc),
                fields={f"config.{k}": v for k, v in exc.errors.items()},
            ) from exc
        rules = configs.rules_for_preview(user=request.user, exchange=str(data["exchange"]), symbol=str(data["symbol"]))
        try:
            legs = compute_grid(config=grid, pyramid_index=pyramid_index, entry_price=entry, rules=rules)
        except GridError as exc:
            raise ApiError(status_code=400, code=exc.code, detail=exc.reason, fields={"config": [exc.reason]}) from exc
        return Response(legs_to_json(legs, rules))
