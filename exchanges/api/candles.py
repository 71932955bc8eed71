"""Candle endpoints (docs/market-data.md#api): `GET /api/candles` (stored candles, built from a lower
timeframe when needed) and `POST /api/candles/backfill` (202, a task; its row carries the progress)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadOrTrader
from core.api import ApiError
from exchanges.candles import selectors, services
from exchanges.candles.services import CandleInputError
from exchanges.candles.tasks import backfill_candles

MAX_CANDLES = 100_000


def _invalid(exc: CandleInputError) -> ApiError:
    return ApiError(status_code=400, code="invalid", detail=str(exc), fields={exc.field_name: [str(exc)]})


MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last moment a datetime holds


def _time_ms(raw: str | None, name: str) -> int | None:
    """Epoch ms, or an ISO 8601 time."""
    if raw in (None, ""):
        return None
    assert raw is not None
    try:
        if raw.isdigit():
            value = int(raw)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            value = int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
    except (ValueError, OverflowError):
        raise ApiError(
            status_code=400, code="invalid", detail=f"{name}: not a time", fields={name: ["epoch ms or ISO 8601"]}
        ) from None
    if not 0 <= value <= MAX_TIME_MS:  # a number no date holds (found by tradingsite/tests/test_fuzz.py)
        raise ApiError(
            status_code=400,
            code="invalid",
            detail=f"{name}: out of range",
            fields={name: [f"epoch ms from 0 to {MAX_TIME_MS} (year 9999)"]},
        )
    return value


def _required(request: Request, name: str, data: Any) -> str:
    value = str(data.get(name) or "").strip()
    if not value:
        raise ApiError(status_code=400, code="invalid", detail=f"{name} is required", fields={name: ["is required"]})
    return value


class CandleListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(
        parameters=[
            OpenApiParameter(name, str, required=name in ("exchange", "symbol", "timeframe"))
            for name in ("exchange", "symbol", "timeframe", "start", "end", "limit")
        ],
        responses={200: {"type": "array", "items": {"type": "array"}}},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            exchange = services.candle_exchange_check(_required(request, "exchange", params))
            timeframe = services.candle_timeframe_check(_required(request, "timeframe", params))
            symbol = services.candle_symbol_resolve(exchange_name=exchange, raw=_required(request, "symbol", params))
        except CandleInputError as exc:
            raise _invalid(exc) from None
        start, end = _time_ms(params.get("start"), "start"), _time_ms(params.get("end"), "end")
        try:
            limit = min(int(params.get("limit") or MAX_CANDLES), MAX_CANDLES)
        except ValueError:
            raise ApiError(
                status_code=400, code="invalid", detail="limit: not a number", fields={"limit": ["integer"]}
            ) from None
        rows = selectors.candles_range(
            exchange_name=exchange, symbol=symbol, timeframe=timeframe, start_ms=start, end_ms=end, limit=limit
        )
        return Response(
            [[row.open_ms, str(row.open), str(row.high), str(row.low), str(row.close), str(row.volume)] for row in rows]
        )


class CandleBackfillView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(
        request=inline_serializer(
            name="CandleBackfillBody",
            fields={
                "exchange": serializers.CharField(),
                "symbol": serializers.CharField(),
                "timeframe": serializers.CharField(),
                "since": serializers.CharField(help_text="epoch ms or ISO 8601"),
                "until": serializers.CharField(required=False, help_text="epoch ms or ISO 8601; default now"),
            },
        ),
        responses={202: {"type": "object"}},
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):  # a JSON array or scalar (found by tradingsite/tests/test_fuzz.py)
            raise ApiError(status_code=400, code="invalid", detail="The body must be a JSON object.", fields={})
        since = _time_ms(str(data.get("since") or ""), "since")
        if since is None:
            raise ApiError(status_code=400, code="invalid", detail="since is required", fields={"since": ["required"]})
        until = _time_ms(str(data.get("until") or ""), "until")
        try:
            job = services.candle_backfill_start(
                exchange_name=_required(request, "exchange", data),
                symbol=_required(request, "symbol", data),
                timeframe=_required(request, "timeframe", data),
                since=datetime.fromtimestamp(since / 1000, tz=UTC),
                until=datetime.fromtimestamp(until / 1000, tz=UTC) if until is not None else None,
            )
        except CandleInputError as exc:
            raise _invalid(exc) from None
        transaction.on_commit(lambda: backfill_candles.delay(str(job.pk)))
        return Response(
            {"task_id": str(job.pk), "status": "PENDING", "status_url": f"/api/candles/backfill/{job.pk}"},
            status=status.HTTP_202_ACCEPTED,
        )


class CandleBackfillDetailView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses={200: {"type": "object"}})
    def get(self, request: Request, backfill_id: str) -> Response:
        job = selectors.candle_backfill_get(backfill_id=backfill_id)
        if job is None:
            raise ApiError(status_code=404, code="not_found", detail="No such backfill.")
        return Response(
            {
                "task_id": str(job.pk),
                "status": job.status,
                "progress": job.progress,
                "fetched": job.fetched,
                "cursor": job.cursor.isoformat(),
                "error": job.error,
                "exchange": job.exchange_name,
                "symbol": job.symbol,
                "timeframe": job.timeframe,
            }
        )
