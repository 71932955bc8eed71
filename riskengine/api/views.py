"""Risk engine endpoints (docs/engine.md#risk-engine): status and preview, run now, operator flags."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import AuthenticatedRequest, IsTraderOrHigher, ReadOrTrader
from core.api import ApiError
from positions.models import PositionGroup

from ..models import RiskAction
from ..rules import GroupRisk
from ..services import (
    FlagRefusedError,
    RiskBusyError,
    risk_action_json,
    risk_evaluate,
    risk_flag_set,
    risk_preview,
)

RISK_KEYS = (
    "risk_enabled",
    "risk_eligibility",
    "post_full_wait_minutes",
    "loss_threshold_percent",
    "age_threshold_minutes",
    "max_winners_to_combine",
    "min_close_notional",
    "risk_timer_reset_on_pyramid",
    "risk_evaluate_on_fill",
)


def _s(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def _group_row(risk: GroupRisk) -> dict[str, Any]:
    view, why = risk.view, risk.eligibility
    return {
        "group_id": view.group_id,
        "symbol": view.symbol,
        "status": view.status,
        "held": _s(view.held),
        "cost": _s(view.cost),
        "avg_entry": _s(view.avg_entry),
        "price": _s(risk.price),
        "unrealized": _s(risk.unrealized),
        "loss_percent": _s(risk.loss_percent.quantize(Decimal("0.0001")) if risk.loss_percent is not None else None),
        "eligible": why.eligible,
        "why_not": list(why.why_not),
        "timer_started_at": view.timer_started_at.isoformat() if view.timer_started_at else None,
        "timer_remaining_seconds": why.timer_remaining_seconds,
        "pyramids": view.pyramids,
        "max_pyramids": view.max_pyramids,
        "blocked": view.blocked,
        "skip_once": view.skip_once,
    }


class RiskView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: AuthenticatedRequest) -> Response:
        decision, settings, config = risk_preview(user_id=request.user.pk)
        actions = RiskAction.objects.filter(user_id=request.user.pk).order_by("-created_at")[:50]
        return Response(
            {
                "enabled": settings.enabled,
                "config": {key: config.get(key) for key in RISK_KEYS},
                "groups": [_group_row(g) for g in decision.groups],
                "plan": decision.plan.as_json() if decision.plan is not None else None,
                "would_offset": decision.offset,
                "reason": decision.reason,
                "actions": [risk_action_json(a) for a in actions],
            }
        )


class RiskRunView(APIView):
    permission_classes = [IsTraderOrHigher]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest) -> Response:
        try:
            action = risk_evaluate(user_id=request.user.pk, trigger="run_now", actor=request.user)
        except RiskBusyError as exc:
            raise ApiError(
                status_code=409, code="busy", detail="A risk cycle is running for you now; try again."
            ) from exc
        return Response(risk_action_json(action))


class RiskFlagView(APIView):
    permission_classes = [IsTraderOrHigher]
    flag: ClassVar[str] = "blocked"
    value: ClassVar[bool] = True

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest, group_id: str) -> Response:
        try:
            group = PositionGroup.objects.filter(pk=uuid.UUID(group_id), user=request.user).first()
        except ValueError:
            group = None
        if group is None:
            raise ApiError(status_code=404, code="not_found", detail="No such position group.")
        try:
            updated = risk_flag_set(group=group, flag=self.flag, value=self.value, actor=request.user)
        except FlagRefusedError as exc:
            raise ApiError(
                status_code=409, code="group_not_open", detail=f"Cannot change its risk flags: {exc}."
            ) from exc
        return Response(
            {"group_id": str(updated.pk), "blocked": updated.risk_blocked, "skip_once": updated.risk_skip_once}
        )
