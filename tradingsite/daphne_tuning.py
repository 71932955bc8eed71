"""Turn off Twisted's POST form parsing in daphne's requests, and refuse oversized bodies unread.

Twisted's `Request` parses the Content-Type of every POST with the `email` package and, for form
uploads, parses the whole body into `request.args` (`parsePOSTFormSubmission`, default on). Daphne never
reads `args`: it hands the raw body to the ASGI application, and Django parses forms itself. So the
parse is pure cost: about a tenth of a web process's CPU per webhook, and for multipart uploads a
second copy of the body in memory. Daphne creates its requests without the argument, so its request
class gets it as a default here. Imported by `tradingsite.asgi`, i.e. in every daphne process.

Twisted is pinned in requirements.txt for this; `install` refuses to start a Twisted whose `Request`
no longer takes the argument, rather than silently parsing again (or failing at the first request).
"""

from __future__ import annotations

import functools
import inspect
import io
from typing import Any

from daphne.http_protocol import WebRequest
from django.conf import settings
from twisted.web.http import HTTPChannel, Request


class _Discard:
    """A transfer decoder that drops what is left of a refused body."""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        pass

    def noMoreData(self) -> None:  # noqa: N802 (Twisted's name)
        pass


def _body_cap() -> int:
    # The largest body any route takes (docs/security.md#body-limits): the webhook's and Django's caps.
    return max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0, settings.WEBHOOK_MAX_BODY_BYTES)


def _answer_early(request: Any) -> None:
    """Hand `request` to the application now, with what of the body was kept, and drop the rest.

    The application sees the declared length (or more than the cap of a chunked body) and answers 413
    (the webhook route stores the refusal, `positions.ingress`; `core.body_limit` for other paths).
    The connection closes after that answer, so the rest of the body is never read into memory.
    """
    channel = request.channel
    request._refused_body = True
    channel.persistent = False
    channel._transferDecoder = _Discard()
    Request.requestReceived(request, channel._command, channel._path, channel._version)


def _got_length(self: Any, length: int | None) -> None:
    self._body_size = 0
    if length is not None and length > _body_cap():
        self.content = io.BytesIO()
        _answer_early(self)
        return
    Request.gotLength(self, length)


def _handle_content_chunk(self: Any, data: bytes) -> None:
    if getattr(self, "_refused_body", False):
        return
    self._body_size = getattr(self, "_body_size", 0) + len(data)
    self.content.write(data)
    if self._body_size > _body_cap():  # a chunked body: kept one chunk past the cap, no further
        _answer_early(self)


def _request_received(self: Any, command: bytes, path: bytes, version: bytes) -> None:
    if getattr(self, "_refused_body", False):
        return  # answered early; the channel's end of body must not start it again
    Request.requestReceived(self, command, path, version)


def limit_bodies() -> None:
    """Web processes answer a body over the cap without reading it: daphne reads a whole body (into
    memory, in its application queue) before the application sees the request, so a check in the
    application comes too late: a 200 MB body grew a web process by 200 MB, which it kept."""
    if getattr(WebRequest, "_bodies_limited", False):
        return
    # The channel's request line and transfer decoder are Twisted internals (pinned in requirements.txt).
    if not hasattr(HTTPChannel, "_finishRequestBody") or not hasattr(HTTPChannel(), "_transferDecoder"):
        raise RuntimeError("this Twisted's HTTPChannel lacks the internals limit_bodies uses: see requirements.txt")
    WebRequest.gotLength = _got_length
    WebRequest.handleContentChunk = _handle_content_chunk
    WebRequest.requestReceived = _request_received
    WebRequest._bodies_limited = True


def install() -> None:
    limit_bodies()
    if getattr(WebRequest, "_form_parsing_off", False):
        return
    if "parsePOSTFormSubmission" not in inspect.signature(Request.__init__).parameters:
        raise RuntimeError("this Twisted's Request takes no parsePOSTFormSubmission: see requirements.txt's pin")
    WebRequest.__init__ = functools.partialmethod(WebRequest.__init__, parsePOSTFormSubmission=False)
    WebRequest._form_parsing_off = True
