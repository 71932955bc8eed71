"""Refuse request text that cannot be stored before any view sees it (core/validation.py).

A NUL character in a query parameter or in the path (`%00`) reached PostgreSQL through filters and
look-ups (`?symbol=`, `/api/keys/<exchange>`) and came back as a 500. Bodies are checked by the API's
parsers (`core.parsers.SafeJSONParser`); this checks what arrives before a body: the path, the query and
the declared length.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from .api import error_response
from .validation import text_problem

WEBHOOK_PREFIX = "/api/webhook/"


class RequestTextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(WEBHOOK_PREFIX):
            return self.get_response(request)  # the webhook judges (and stores) every request itself
        declared = request.META.get("CONTENT_LENGTH") or ""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and declared.isdigit() and int(declared) > limit:
            # Where no ASGI guard stands in front (WSGI, the test client): DRF's parsers read the stream
            # without Django's own check (docs/security.md#body-limits).
            reason = f"larger than {limit // 1024} KiB"
            return error_response(413, "payload_too_large", f"The request body is {reason}.", {"body": [reason]})
        problems: dict[str, list[str]] = {}
        path_problem = text_problem(request.path)
        if path_problem is not None:
            problems["path"] = [path_problem]
        if request.META.get("QUERY_STRING"):
            for key, values in request.GET.lists():
                for value in [key, *values]:
                    problem = text_problem(value, max_length=2048)
                    if problem is not None:
                        problems.setdefault(key.replace("\x00", ""), []).append(problem)
        if not problems:
            return self.get_response(request)
        detail = "; ".join(f"{name}: {reasons[0]}" for name, reasons in problems.items())
        if request.path.startswith("/api/"):
            return error_response(400, "invalid", detail, problems)
        return HttpResponseBadRequest(detail, content_type="text/plain")
