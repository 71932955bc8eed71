"""Waiting queue endpoints (docs/engine.md#pool-and-queue): list in priority order, promote, force-add, remove."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.middleware import client_ip
from accounts.permissions import AuthenticatedRequest, IsTraderOrHigher, ReadOrTrader
from core.api import ApiError

from ..models import QueuedSignal
from ..services.queue import queue_delete, queue_ordered, queue_promote


def _row(entry: QueuedSignal, position: int) -> dict:
    return {
        "id": str(entry.pk),
        "position": position,
        "symbol": entry.symbol,
        "timeframe": entry.timeframe,
        "side": entry.side,
        "exchange": entry.exchange_config.exchange_name,
        "entry_price": f"{entry.entry_price.normalize():f}",
        "replacement_count": entry.replacement_count,
        "queued_at": entry.queued_at.isoformat(),
        "signal_id": str(entry.signal_id),
    }


def _entry(request: AuthenticatedRequest, entry_id: str) -> QueuedSignal:
    entry = QueuedSignal.objects.filter(pk=entry_id, user=request.user).first() if len(entry_id) == 36 else None
    if entry is None:
        raise ApiError(status_code=404, code="not_found", detail="No such queued signal.")
    return entry


class QueueListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response([_row(e, i + 1) for i, e in enumerate(queue_ordered(user=request.user))])


class QueuePromoteView(APIView):
    permission_classes = [IsTraderOrHigher]
    force = False

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest, entry_id: str) -> Response:
        entry = _entry(request, entry_id)
        promoted = queue_promote(user_id=request.user.pk, entry_id=entry.pk, force=self.force, actor=request.user)
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
