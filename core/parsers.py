"""DRF's parsers, refusing what would break later rather than here (docs/security.md#input).

Apart from `core.api`: DRF reads `DEFAULT_PARSER_CLASSES` when its `APIView` class is built, which
`core.api` imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from rest_framework import exceptions
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from .validation import json_problems, sanitized_text, text_problem


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing what would break later rather than here: nesting too deep for
    Python (a RecursionError, a 500 before) or for storage, and strings or keys with NUL or lone
    surrogates, which PostgreSQL refuses (core/validation.py). Each is a 400 naming the field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply.") from exc
        problems = json_problems(data)
        if problems:
            raise exceptions.ValidationError(problems)
        return data


def _form_problems(data: QueryDict) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for key, values in data.lists():
        for value in [key, *values]:
            problem = text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                problems.setdefault(sanitized_text(key), []).append(problem)
    return problems


class SafeFormParser(FormParser):
    """DRF's form parser with the string checks of `SafeJSONParser`."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        problems = _form_problems(data)
        if problems:
            raise exceptions.ValidationError(problems)
        return data


class SafeMultiPartParser(MultiPartParser):
    """DRF's multipart parser with the string checks of `SafeJSONParser` (on the fields, not files)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        result = super().parse(stream, media_type, parser_context)
        problems = _form_problems(result.data)
        if problems:
            raise exceptions.ValidationError(problems)
        return result
