"""Waiting queue endpoints (docs/engine.md#pool-and-queue): list in priority order, promote, force-add, remove."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.middleware import client_ip
from accounts.permissions import AuthenticatedRequest, IsTraderOrHigher, ReadOrTrader
from core.api import ApiError

from ..config import engine_setting
from ..models import EngineConfig, QueuedSignal
from ..rules.pool import queued_loss_percent
from ..services.queue import (
    pool_used,
    queue_continuing,
    queue_delete,
    queue_ordered,
    queue_prices,
    queue_promote,
    queue_rules,
)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _row(
    entry: QueuedSignal, rank: int, *, prices: dict[str, Decimal], continuing: set[tuple[str, str]], now: datetime
) -> dict[str, Any]:
    price = prices.get(entry.symbol)
    return {
        "id": str(entry.pk),
        "rank": rank,
        "position": rank,
        "symbol": entry.symbol,
        "timeframe": entry.timeframe,
        "side": entry.side,
        "exchange": entry.exchange_config.exchange_name,
        "entry_price": _s(entry.entry_price),
        "current_price": _s(price),
        "loss_percent": _s(queued_loss_percent(entry, price).quantize(Decimal("0.0001"))) if price else None,
        "replacement_count": entry.replacement_count,
        "queued_at": entry.queued_at.isoformat(),
        "waiting_seconds": int((now - entry.queued_at).total_seconds()),
        "is_pyramid_continuation": (entry.symbol, entry.timeframe) in continuing,
        "signal_id": str(entry.signal_id),
        "blocked_reason": entry.blocked_reason or None,  # a guard passed it over at the last promotion
    }


def _entry(request: AuthenticatedRequest, entry_id: str) -> QueuedSignal:
    entry = QueuedSignal.objects.filter(pk=entry_id, user=request.user).first() if len(entry_id) == 36 else None
    if entry is None:
        raise ApiError(status_code=404, code="not_found", detail="No such queued signal.")
    return entry


class QueueListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: AuthenticatedRequest) -> Response:
        user_id = request.user.pk
        entries = list(QueuedSignal.objects.filter(user_id=user_id).select_related("exchange_config"))
        rules = queue_rules(user_id=user_id)
        prices = queue_prices(entries=entries) if entries else {}
        ordered = queue_ordered(user=user_id, prices=prices)
        continuing = queue_continuing(user_id=user_id)
        stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first()
        now = timezone.now()
        return Response(
            {
                "pool": {"used": pool_used(user_id=user_id), "max": engine_setting(stored, "max_open_groups")},
                "rules": rules,
                "entries": [
                    _row(e, i + 1, prices=prices, continuing=continuing, now=now) for i, e in enumerate(ordered)
                ],
            }
        )


class QueuePromoteView(APIView):
    permission_classes = [IsTraderOrHigher]
    force = False

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest, entry_id: str) -> Response:
        entry = _entry(request, entry_id)
        refusals: dict[str, str] = {}
        promoted = queue_promote(
            user_id=request.user.pk, entry_id=entry.pk, force=self.force, actor=request.user, refusals=refusals
        )
        if not promoted and str(entry.pk) in refusals:
            raise ApiError(
                status_code=409,
                code="guard_refused",
                detail=f"A guard keeps it queued: {refusals[str(entry.pk)]}.",
            )
        if not promoted:
            raise ApiError(
                status_code=409,
                code="pool_full",
                detail="The execution pool is full; use force-add to ignore the cap once.",
            )
        return Response({"success": True, "group_id": promoted[0]})


class QueueForceAddView(QueuePromoteView):
    force = True


class QueueDeleteView(APIView):
    permission_classes = [IsTraderOrHigher]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def delete(self, request: AuthenticatedRequest, entry_id: str) -> Response:
        queue_delete(entry=_entry(request, entry_id), actor=request.user, ip=client_ip(request))
        return Response({"success": True})
