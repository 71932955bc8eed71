"""One validation layer for what comes from outside: decimals, strings and JSON documents
(docs/security.md#input).

Every number a request or a stored config carries ends in a `numeric(38, 18)` column or in Decimal
arithmetic, and every string in a PostgreSQL `text`/`jsonb` value. PostgreSQL refuses a NUL character
in either, a lone surrogate cannot be encoded to UTF-8 at all, and a number beyond the column's 20
integer digits overflows it: each of these used to surface as a 5xx, or was accepted into a config and
broke every later alert. So every way in checks its values here and answers 400 naming the field.

The checks are cheap enough for the webhook's hot path: no regular expression per value, the JSON
walk is iterative (no recursion limit to hit) and skips the string checks for ASCII text, which
cannot hold a surrogate.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Final

from .jsontypes import JSONValue

# numeric(38, 18): 20 digits before the point (docs/engine.md#precision).
DECIMAL_INTEGER_DIGITS: Final = 20
DECIMAL_PLACES: Final = 18
DECIMAL_LIMIT: Final = Decimal(10) ** DECIMAL_INTEGER_DIGITS
# A number written with more characters than this is not a price, a size or a percentage.
MAX_NUMBER_TEXT: Final = 64
MAX_JSON_DEPTH: Final = 32
_NUMBER_CHARS: Final = frozenset("0123456789+-.eE")


class InvalidValueError(ValueError):
    """A value refused, with the reason as a short phrase ("must be ...") for the field's error list."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decimal_bounded(value: object, *, limit: Decimal = DECIMAL_LIMIT) -> Decimal:
    """A finite Decimal from a JSON number or a numeric string, within ±`limit` (what a money column
    holds). Refuses booleans, NaN and infinities, non-ASCII digits ("١٢٣"), underscores, hex and
    anything written longer than `MAX_NUMBER_TEXT` characters. Floats go through `str` (0.1 is 0.1)."""
    if isinstance(value, bool):
        raise InvalidValueError("must be a number, not true or false")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if abs(value) >= limit:
            raise InvalidValueError(f"must be below {limit:.0E} in magnitude")
        return Decimal(value)
    elif isinstance(value, float | str):
        text = str(value).strip()
        # Python's Decimal accepts any Unicode digit and '_' separators; a request may not.
        if text.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
            raise InvalidValueError("must be a finite number")
        if len(text) > MAX_NUMBER_TEXT:
            raise InvalidValueError(f"must be a number of at most {MAX_NUMBER_TEXT} characters")
        if not text or not text.isascii() or not _NUMBER_CHARS.issuperset(text):
            raise InvalidValueError(f"must be a number written with ASCII digits, got {text[:24]!r}")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise InvalidValueError(f"must be a number, got {text[:24]!r}") from None
    else:
        raise InvalidValueError("must be a number or a numeric string")
    if not number.is_finite():
        raise InvalidValueError("must be a finite number")
    if abs(number) >= limit:
        raise InvalidValueError(f"must be below {limit:.0E} in magnitude")
    if number and number.adjusted() < -DECIMAL_PLACES:
        # It would be stored as zero.
        raise InvalidValueError(f"must be zero or at least 1e-{DECIMAL_PLACES} in magnitude")
    return number


def text_problem(text: str, *, max_length: int | None = None) -> str | None:
    """Why `text` cannot be stored as given (NUL, a lone surrogate, too long), or None."""
    if max_length is not None and len(text) > max_length:
        return f"is longer than {max_length} characters"
    if "\x00" in text:
        return "must not contain NUL characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (it holds a lone surrogate)"
    return None


def text_checked(value: str, *, max_length: int | None = None) -> str:
    """`value` when it can be stored; `InvalidValueError` saying why not."""
    problem = text_problem(value, max_length=max_length)
    if problem is not None:
        raise InvalidValueError(problem)
    return value


def json_problems(value: JSONValue, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, list[str]]:
    """Per dotted path, why a decoded JSON document cannot be stored: nesting deeper than `max_depth`,
    keys or strings with NUL or lone surrogates, non-finite floats (1e400 parses as infinity).
    Empty when it is fine. Iterative, so any depth is walked without recursion."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[str, JSONValue, int]] = [("", value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                problems.setdefault(path or "body", []).append(f"is nested deeper than {max_depth} levels")
                continue
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                problem = text_problem(key)
                if problem is not None:
                    problems.setdefault(_printable(path or "body"), []).append(f"a key {problem}")
                    continue
                stack.append((child_path, child, depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                problems.setdefault(path or "body", []).append(f"is nested deeper than {max_depth} levels")
                continue
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                problems.setdefault(_printable(path or "body"), []).append(problem)
        elif isinstance(item, float) and not math.isfinite(item):  # 1e400 parses as inf
            problems.setdefault(path or "body", []).append("must be a finite number")
    return problems


def _printable(text: str) -> str:
    """`text` with what cannot be stored or shown replaced (a path built from a bad key)."""
    return sanitized_text(text)


def sanitized_text(text: str) -> str:
    """`text` with NUL removed and lone surrogates replaced (U+FFFD): what can be stored of junk."""
    if text.isascii():
        return text.replace("\x00", "")
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text.replace("\x00", ""))


def json_sanitized(value: JSONValue, *, max_depth: int = MAX_JSON_DEPTH) -> JSONValue:
    """A storable copy of a JSON document: strings and keys sanitized (`sanitized_text`), whatever is
    nested deeper than `max_depth` replaced by a marker. For storing a refused request as it came."""
    if max_depth <= 0 and isinstance(value, dict | list):
        return "[nested too deep]"
    if isinstance(value, dict):
        return {sanitized_text(key): json_sanitized(child, max_depth=max_depth - 1) for key, child in value.items()}
    if isinstance(value, list):
        return [json_sanitized(child, max_depth=max_depth - 1) for child in value]
    if isinstance(value, str):
        return sanitized_text(value)
    return value
