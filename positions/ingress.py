"""The webhook's own ASGI route: `POST /api/webhook/<user_id>` without Django's request machinery.

TradingView gives up on an alert after 3 s, and a burst of alerts is exactly when every millisecond of
web CPU counts (CONTRACT §6 `webhook_ack`). Django's ASGI handler, its middleware stack and the
sync/async hand-offs cost about as much CPU as the whole intake, and the webhook needs none of them: no
session, no CSRF, no templates. So the ASGI application sends webhook POSTs here and everything else to
Django. The intake itself (`services.intake.signal_receive`) is the same code Django's view calls, run
in a small thread pool of its own because it uses the database. The live events it commits come back
with its answer and are sent from the event loop, gathered over a few milliseconds (`events.LoopBatcher`).

Non-POST requests to the webhook path go to Django, which answers 405 as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from accounts.middleware import client_ip_from

from . import events
from .services.intake import IntakeResult, signal_receive

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]], Any]
WEBHOOK_PATH = re.compile(r"^/api/webhook/(?P<user_id>[^/]+)/?$")
RESPONSE_HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]


def warm_webhook_path() -> None:
    """Import what the intake imports lazily, so that it is loaded (and frozen, see `tradingsite.asgi`)
    before the first alert rather than during it."""
    import exchanges.models  # noqa: F401
    import riskengine.services  # noqa: F401

    from .services import sql  # noqa: F401


class _TooLargeError(Exception):
    pass


# A connection that finished a webhook this recently needs no health check (CONN_HEALTH_CHECKS) before
# the next one: Django checks once per request with a `SELECT 1` round trip, which under a burst of
# alerts was one statement in five. A connection that went stale while idle is still checked.
HEALTHY_AFTER_USE_S = 1.0


# When the intake itself fails (the database is unreachable, say) the outcome may be unknown: the sender
# is told so, and that a copy of the alert is recognised as a duplicate if the first one was stored.
UNAVAILABLE = IntakeResult(
    503,
    {
        "error": "unavailable",
        "detail": "The signal could not be confirmed as stored; sending it again is safe (copies are recognised).",
        "fields": {},
    },
)


def receive_in_thread(user_id: str, raw: bytes, content_type: str, ip: str | None) -> IntakeResult:
    """The intake, from a worker thread (this route's pool, or the thread pool of Django's view); 503 when
    it fails."""
    try:
        close_old_connections()  # honour CONN_MAX_AGE, errors and health checks in this pool thread
        if time.monotonic() - getattr(connection, "_webhook_served_at", -HEALTHY_AFTER_USE_S) < HEALTHY_AFTER_USE_S:
            connection.health_check_done = True
        result = signal_receive(user_id=user_id, raw=raw, content_type=content_type, ip=ip)
        connection._webhook_served_at = time.monotonic()
        return result
    except Exception:
        logger.exception("webhook intake failed")
        return UNAVAILABLE
    finally:
        close_old_connections()


def _receive_capturing(*args: Any) -> tuple[IntakeResult, list[events.Event]]:
    """`receive_in_thread`, returning the live events it committed instead of sending them."""
    with events.captured() as committed:
        return receive_in_thread(*args), committed


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class WebhookIngress:
    """ASGI middleware: webhook POSTs to the intake, everything else to `app`."""

    def __init__(self, app: ASGIApp, *, threads: int | None = None) -> None:
        self.app = app
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._events = events.LoopBatcher()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._threads or settings.WEBHOOK_THREADS, thread_name_prefix="webhook"
            )
        return self._executor

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = WEBHOOK_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
        # One byte over the cap is enough for the intake to answer 413; the rest is never read.
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        declared = headers.get(b"content-length", "")
        try:
            if declared.isdigit() and int(declared) > limit:
                raise _TooLargeError
            raw = await _read_body(receive, limit)
        except _TooLargeError:
            raw = b"x" * (limit + 1)
        except ConnectionResetError:
            return
        client = scope.get("client") or (None, None)
        ip = client_ip_from(client[0], headers.get(b"x-forwarded-for", ""))
        result, committed = await asyncio.get_running_loop().run_in_executor(
            self._pool(), _receive_capturing, match["user_id"], raw, headers.get(b"content-type", ""), ip
        )
        content = json.dumps(result.body).encode()
        # With its length announced the answer goes out as one plain body, not chunked.
        response_headers = [*RESPONSE_HEADERS, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": result.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})
        self._events.add(committed)
