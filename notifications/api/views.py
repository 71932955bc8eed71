"""`/api/notifications`: channels and event switches (secrets masked), "send test", the delivery log,
stored reports, and the Telegram bot's webhook for the owner's commands."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import AuthenticatedRequest
from core.api import ApiError

from .. import commands, selectors, services
from ..choices import ChannelKind


def _settings_error(exc: services.ChannelSettingsError) -> ApiError:
    named = ", ".join(sorted(exc.fields))
    return ApiError(status_code=400, code="validation_error", detail=f"Invalid settings: {named}.", fields=exc.fields)


class NotificationSettingsView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(selectors.notification_settings_get(user=request.user))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request: AuthenticatedRequest) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        try:
            services.notification_settings_set(user=request.user, data=data)
        except services.ChannelSettingsError as exc:
            raise _settings_error(exc) from None
        return Response(selectors.notification_settings_get(user=request.user))


class NotificationTestView(APIView):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest) -> Response:
        kind = request.data.get("channel") if isinstance(request.data, dict) else None
        if kind not in ChannelKind.values:
            raise ApiError(
                status_code=400,
                code="validation_error",
                detail="Name the channel to test.",
                fields={"channel": f"one of {', '.join(ChannelKind.values)}"},
            )
        try:
            delivery = services.channel_test(user=request.user, kind=kind)
        except services.ChannelSettingsError as exc:
            raise _settings_error(exc) from None
        return Response(
            {"channel": kind, "status": delivery.status, "error": delivery.error, "delivery_id": str(delivery.pk)}
        )


class DeliveryListView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: AuthenticatedRequest) -> Response:
        rows = [
            {
                "id": str(d.pk),
                "channel": d.channel.kind,
                "event_type": d.event_type,
                "text": d.text,
                "status": d.status,
                "attempts": d.attempts,
                "error": d.error,
                "created_at": d.created_at.isoformat(),
                "sent_at": d.sent_at.isoformat() if d.sent_at else None,
                "latency_ms": d.latency_ms,
            }
            for d in selectors.delivery_list(user=request.user)
        ]
        return Response(rows)


class ReportListView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: AuthenticatedRequest) -> Response:
        rows = [
            {
                "id": str(r.pk),
                "kind": r.kind,
                "day": r.day.isoformat(),
                "data": r.data,
                "chart_url": f"/api/notifications/reports/{r.pk}/chart.png" if r.kind == "portfolio" else None,
            }
            for r in selectors.report_list(user=request.user)
        ]
        return Response(rows)


class ReportChartView(APIView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request: AuthenticatedRequest, report_id: str) -> HttpResponse:
        try:
            key = uuid.UUID(report_id)
        except ValueError:
            key = None
        report = selectors.report_get(user=request.user, report_id=key) if key else None
        if report is None or not report.chart_png:
            raise ApiError(status_code=404, code="not_found", detail="No such report chart.")
        return HttpResponse(bytes(report.chart_png), content_type="image/png")


@csrf_exempt
@require_POST
def telegram_update(request: HttpRequest, channel_id: str) -> JsonResponse:
    """Telegram's webhook for one channel: authenticated by the secret Telegram sends in its header.

    Always 200 to Telegram once authenticated (it would otherwise resend the update), 403 without the secret.
    """
    try:
        key: Any = uuid.UUID(channel_id)
        update = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"ok": False}, status=400)
    token = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    outcome = commands.telegram_update_handle(
        channel_id=key, token=token, update=update if isinstance(update, dict) else {}
    )
    if outcome == "forbidden":
        return JsonResponse({"ok": False}, status=403)
    return JsonResponse({"ok": True, "handled": outcome})
