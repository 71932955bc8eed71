"""The webhook's own ASGI route: `POST /api/webhook/<user_id>` without Django's request machinery.

TradingView gives up on an alert after 3 s, and a burst of alerts is exactly when every millisecond of
web CPU counts (`make bench` `webhook_ack`, docs/processes.md). Django's ASGI handler, its middleware stack and the
sync/async hand-offs cost about as much CPU as the whole intake, and the webhook needs none of them: no
session, no CSRF, no templates. So the ASGI application sends webhook POSTs here and everything else to
Django. The intake is the same code Django's view runs (`services.intake.intake_steps`), driven here on
the event loop over a few database connections of the route's own (`sql.AsyncPool`): a burst of alerts
costs no thread hand-offs and no threads waiting for the GIL between their round trips, which is where
the slowest answers came from when the route ran the intake in a thread pool. The live events the
intake commits are sent from the event loop, gathered over a few milliseconds (`events.LoopBatcher`).
An alert whose symbol the per-process market index cannot answer (the index is stale, or the ticker is
unknown to it) is decoded in a thread instead, because that answer needs Django's ORM.

Non-POST requests to the webhook path go to Django, which answers 405 as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from accounts.middleware import client_ip_from
from core import sql
from exchanges.selectors import NotCachedError

from . import events
from .hooks import engine_events_announce
from .services.intake import Alert, IntakeResult, alert_read, intake_steps, signal_receive

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]], Any]
WEBHOOK_PATH = re.compile(r"^/api/webhook/(?P<user_id>[^/]+)/?$")
RESPONSE_HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]


class _TooLargeError(Exception):
    pass


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
    """The intake on this thread's Django connection (Django's view, from its thread pool); 503 when it
    fails."""
    try:
        close_old_connections()  # honour CONN_MAX_AGE, errors and health checks in this pool thread
        return signal_receive(user_id=user_id, raw=raw, content_type=content_type, ip=ip)
    except Exception:
        logger.exception("webhook intake failed")
        return UNAVAILABLE
    finally:
        close_old_connections()


def _alert_read_in_thread(user_id: str, raw: bytes, content_type: str, ip: str | None) -> Alert:
    try:
        close_old_connections()
        return alert_read(user_id=user_id, raw=raw, content_type=content_type, ip=ip)
    finally:
        close_old_connections()


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

    def __init__(self, app: ASGIApp, *, connections: int | None = None) -> None:
        self.app = app
        self.database = sql.AsyncPool(connections or settings.WEBHOOK_CONNECTIONS)
        self._executor: ThreadPoolExecutor | None = None
        self._events = events.LoopBatcher()

    def _threads(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook")
        return self._executor

    async def receive(
        self, user_id: str, raw: bytes, content_type: str, ip: str | None
    ) -> tuple[IntakeResult, list[events.Event]]:
        """The intake's answer and the live events it committed; 503 when it fails."""
        try:
            try:
                alert = alert_read(user_id=user_id, raw=raw, content_type=content_type, ip=ip, cached_only=True)
            except NotCachedError:
                alert = await asyncio.get_running_loop().run_in_executor(
                    self._threads(), _alert_read_in_thread, user_id, raw, content_type, ip
                )
            return await self.database.run(intake_steps(alert))
        except Exception:
            logger.exception("webhook intake failed")
            return UNAVAILABLE, []

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
        result, committed = await self.receive(match["user_id"], raw, headers.get(b"content-type", ""), ip)
        content = json.dumps(result.body).encode()
        # With its length announced the answer goes out as one plain body, not chunked.
        response_headers = [*RESPONSE_HEADERS, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": result.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})
        self._events.add(committed)
        engine_events_announce(result.engine_events)  # a hand-off to a thread: the loop does not wait
