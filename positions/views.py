"""The TradingView webhook (CONTRACT §3.1): no session, no CSRF, no exchange call.

Async so that daphne serves many webhooks at once: the database work runs in a thread pool that is
not pinned to one thread (Django's default for sync views would run every webhook in one thread).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.middleware import client_ip

from .services.intake import IntakeResult, signal_receive

OVERSIZED = b"x" * (64 * 1024 + 1)


def _receive(user_id: str, raw: bytes, content_type: str, ip: str | None) -> IntakeResult:
    close_old_connections()  # honour CONN_MAX_AGE / health checks in this pool thread
    try:
        return signal_receive(user_id=user_id, raw=raw, content_type=content_type, ip=ip)
    finally:
        close_old_connections()


@csrf_exempt
@require_POST
async def webhook(request: HttpRequest, user_id: str) -> JsonResponse:
    announced = request.META.get("CONTENT_LENGTH") or "0"
    # Refuse an announced oversized body without reading it.
    raw = OVERSIZED if announced.isdigit() and int(announced) > len(OVERSIZED) - 1 else request.body
    result = await sync_to_async(_receive, thread_sensitive=False)(
        user_id, raw, request.META.get("CONTENT_TYPE", ""), client_ip(request)
    )
    return JsonResponse(result.body, status=result.status)
