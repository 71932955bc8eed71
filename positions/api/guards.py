"""Guard endpoints (docs/engine.md#guards): state and settings, flatten, stop averaging a group."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.middleware import client_ip
from accounts.permissions import AuthenticatedRequest, IsManagerOrHigher, IsTraderOrHigher, ReadOrTrader
from core.api import ApiError

from ..config import ConfigError
from ..models import PositionGroup
from ..services import configs
from ..services.guards import (
    GUARD_KEYS,
    GuardRefusedError,
    group_stop_averaging,
    guard_daily_loss_reset,
    guard_flatten,
    guard_pause_set,
    guard_status,
)

SETTING_KEYS = GUARD_KEYS
SWITCHES = ("paused", "reset_daily_loss", "system_paused")  # system_paused: managers and admins only


class GuardsView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(guard_status(user=request.user))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request: AuthenticatedRequest) -> Response:
        data: Any = request.data
        if not isinstance(data, dict):
            raise ApiError(
                status_code=400, code="invalid", detail="Send a JSON object.", fields={"body": ["not an object"]}
            )
        unknown = sorted(set(data) - set(SETTING_KEYS) - set(SWITCHES))
        fields: dict[str, list[str]] = {key: ["unknown field"] for key in unknown}
        for key in SWITCHES:
            if key in data and not isinstance(data[key], bool):
                fields[key] = ["must be true or false"]
        if fields:
            raise ApiError(status_code=400, code="invalid", detail="Invalid guard settings.", fields=fields)
        if "system_paused" in data and not IsManagerOrHigher().has_permission(request, self):
            raise ApiError(status_code=403, code="forbidden", detail="Pausing everyone needs the manager role.")
        settings = {key: data[key] for key in SETTING_KEYS if key in data}
        ip = client_ip(request)
        if settings:
            try:
                configs.config_set(user=request.user, data=settings, partial=True, ip=ip)
            except ConfigError as exc:
                raise ApiError(status_code=400, code="invalid", detail=str(exc), fields=exc.errors) from exc
        if "paused" in data:
            guard_pause_set(user=request.user, paused=data["paused"], actor=request.user, reason="by the user", ip=ip)
        if "system_paused" in data:
            guard_pause_set(user=None, paused=data["system_paused"], actor=request.user, reason="operator", ip=ip)
        if data.get("reset_daily_loss"):
            guard_daily_loss_reset(user=request.user, actor=request.user, ip=ip)
        return Response(guard_status(user=request.user))


class FlattenView(APIView):
    permission_classes = [IsTraderOrHigher]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest) -> Response:
        data: Any = request.data
        if not isinstance(data, dict) or data.get("confirm") is not True:
            raise ApiError(
                status_code=400,
                code="confirm_required",
                detail='Flatten closes every open group at market: send {"confirm": true}.',
                fields={"confirm": ["must be true"]},
            )
        everyone = data.get("scope") == "system"
        if everyone and not IsManagerOrHigher().has_permission(request, self):
            raise ApiError(status_code=403, code="forbidden", detail="Flattening everyone needs the manager role.")
        closing = guard_flatten(user=None if everyone else request.user, actor=request.user, ip=client_ip(request))
        return Response({"success": True, "paused": True, "closing": closing})


class StopAveragingView(APIView):
    permission_classes = [IsTraderOrHigher]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest, group_id: str) -> Response:
        try:
            group = PositionGroup.objects.filter(pk=uuid.UUID(group_id), user=request.user).first()
        except ValueError:
            group = None
        if group is None:
            raise ApiError(status_code=404, code="not_found", detail="No such position group.")
        try:
            cancelled = group_stop_averaging(group=group, actor=request.user, ip=client_ip(request))
        except GuardRefusedError as exc:
            raise ApiError(status_code=409, code="group_not_open", detail=f"Cannot stop averaging: {exc}.") from exc
        return Response({"group_id": str(group.pk), "cancelled_legs": cancelled})
