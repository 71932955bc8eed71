"""The TradingView webhook through Django (docs/webhook.md): no session, no CSRF, no exchange call.

Under daphne, `positions.ingress` answers webhook POSTs before Django sees them; this view serves the
same intake wherever Django routes the request itself (the test client, a WSGI deployment) and answers
405 to other methods. The database work runs in a thread pool that is not pinned to one thread.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.middleware import client_ip

from .ingress import receive_in_thread


@csrf_exempt
@require_POST
async def webhook(request: HttpRequest, user_id: str) -> JsonResponse:
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    announced = request.META.get("CONTENT_LENGTH") or "0"
    # Refuse an announced oversized body without reading it: one byte over the cap is enough for the
    # intake to answer 413 (the same cap as the ASGI route's, `positions.ingress`).
    # A body without an announced length (chunked) is cut one byte over the cap.
    raw = b"x" * (limit + 1) if announced.isdigit() and int(announced) > limit else request.read(limit + 1)
    result = await sync_to_async(receive_in_thread, thread_sensitive=False)(
        user_id, raw, request.META.get("CONTENT_TYPE", ""), client_ip(request)
    )
    return JsonResponse(result.body, status=result.status)
