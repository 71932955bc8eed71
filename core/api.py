"""API plumbing shared by every app: the one error body (docs/webhook.md#errors)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


class ApiError(exceptions.APIException):
    """An error with our own code, human sentence and optional field errors."""

    def __init__(self, *, status_code: int, code: str, detail: str, fields: dict[str, Any] | None = None):
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.error_code = code
        self.fields = fields or {}


def error_body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": code, "detail": detail, "fields": fields or {}}


def error_response(status_code: int, code: str, detail: str, fields: dict[str, Any] | None = None) -> JsonResponse:
    """For plain Django views (webhook, health) that do not go through DRF."""
    return JsonResponse(error_body(code, detail, fields), status=status_code)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _summary(fields: dict[str, Any]) -> str:
    parts = []
    for name, reasons in fields.items():
        reason = reasons[0] if isinstance(reasons, list) and reasons else reasons
        if isinstance(reason, dict):
            reason = "invalid nested value"
        parts.append(f"{name}: {reason}")
    return "; ".join(parts) or "Invalid input."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error leaves as `{"error", "detail", "fields"}` with the right status."""
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(errors)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(
            error_body("server_error", "An unexpected error occurred; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, ApiError):
        response.data = error_body(exc.error_code, str(exc.detail), exc.fields)
        return response
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            fields: dict[str, Any] = {"non_field_errors": _flatten(detail)}
        else:
            fields = _flatten(detail)
        response.data = error_body("invalid", _summary(fields), fields)
        return response
    if isinstance(exc, exceptions.ParseError):
        response.data = error_body("malformed_json", str(exc.detail), {"body": [str(exc.detail)]})
        return response

    code = _CODES.get(response.status_code, "error")
    message = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    if isinstance(message, dict):
        # simplejwt's errors carry {"detail", "code", "messages"}: answer the sentence, not the dict.
        message = message.get("detail") or _summary(_flatten(message))
    elif isinstance(message, list):
        message = "; ".join(str(item) for item in message)
    response.data = error_body(code, str(message))
    return response
