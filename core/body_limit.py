"""An ASGI guard: request bodies over the cap are refused with 413 before the application reads them
(docs/security.md#body-limits).

Django reads a whole request body before any view runs, and DRF's parsers read the stream without
Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` check, so the cap is enforced here for every path: by the
declared `Content-Length` before a byte is read, and for a body without one (chunked) by counting as
it arrives, cut one message past the cap. The webhook route keeps its own cap and stores its refusals
(`positions.ingress`); it sits in front of this guard.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # Django's handler and channels' apps type their arguments each their own way


def _declared_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: HTTP requests whose body exceeds `limit` bytes get a JSON 413."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None:
            if declared > self.limit:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)  # the server delivers no more than it declared
            return
        # No declared length: read up to the cap here, then replay what was read.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        reason = f"larger than {self.limit // 1024} KiB"
        body = json.dumps(
            {"error": "payload_too_large", "detail": f"The request body is {reason}.", "fields": {"body": [reason]}}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
