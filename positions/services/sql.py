"""Raw SQL on Django's own connection, for the webhook's hot path (see `intake`).

The ORM costs 150–300 µs of CPU per statement (query compilation, model instances); a statement sent
here costs a fraction of that. Cursors bind parameters on the server and prepare their statements, so
PostgreSQL stops parsing and planning them. They run on `django.db.connection`, so
`transaction.atomic()`, `on_commit` and the test database's transaction all apply as usual.

`row_insert` builds its column list from the model (serial keys left to their sequence), so a field
added later is written with its default without anyone editing SQL here.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection, models
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone


class PreparedCursor(psycopg.RawCursor):  # type: ignore[type-arg]
    """Binds parameters on the server and prepares every statement it runs.

    These statements are few and run for every webhook, so they are prepared: PostgreSQL then parses
    each once per connection and stops planning it once a generic plan is as good (parsing and planning
    cost several times more than executing them).

    Statements are written with psycopg's ``%s`` placeholders and turned into PostgreSQL's ``$n`` once
    per statement text (`numbered`). psycopg's own conversion caches only statements under 4 KiB with
    at most 50 parameters, and ours that write a whole group in one statement are larger: splitting
    them again for every webhook was a third of a new entry's CPU.
    """

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None):  # type: ignore[override]
        return super().execute(numbered(query), params, prepare=prepare, binary=binary)


_PLACEHOLDER = re.compile(r"%(.?)", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def numbered(query: str) -> bytes:
    """`query` with its ``%s`` placeholders numbered ``$1``, ``$2``... and ``%%`` as ``%``, encoded."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match[1] == "%":
            return "%"
        if match[1] != "s":
            raise ValueError(f"only %s placeholders are supported, not %{match[1]}: {query[:80]!r}")
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, query).encode()


# psycopg prepares nothing, even when asked, on a connection whose `prepare_threshold` is None, and
# that is how Django opens its connections (for connection poolers). Django's own cursors bind on the
# client and never prepare, so a threshold no statement reaches by count alone leaves them as they are
# and lets `PreparedCursor` ask for preparation explicitly.
EXPLICIT_ONLY = 2**31 - 1


def cursor() -> PreparedCursor:
    """A preparing, server-side-binding cursor on this thread's Django connection.

    One per connection, reused: a cursor keeps the loaders and dumpers it looked up for each type, and
    looking them up again for every statement cost as much as binding the parameters.
    """
    connection.ensure_connection()
    raw = connection.connection
    cached = getattr(connection, "_prepared_cursor", None)
    if cached is not None and cached.connection is raw:
        return cached
    if raw.prepare_threshold is None:
        raw.prepare_threshold = EXPLICIT_ONLY
    cached = connection._prepared_cursor = PreparedCursor(raw)
    return cached


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def literals(values: Sequence[Any]) -> str:
    """An SQL list of the project's own constants (statuses): written into statements built once, where
    an array parameter would be dumped again on every execution. Anything but a plain word is refused."""
    words = [str(value) for value in values]
    if not all(word.isidentifier() for word in words):
        raise ValueError(f"not plain words: {words!r}")
    return ", ".join(f"'{word}'" for word in words)


@dataclasses.dataclass(frozen=True)
class _Column:
    field: models.Field  # type: ignore[type-arg]
    attname: str
    auto_now: bool
    # Whether a value must go through Django's conversion (JSON, IP addresses); others are bound as
    # they are when they are plain Python values psycopg adapts itself.
    needs_django: bool


@functools.cache
def _insert_statement(model: type[models.Model]) -> tuple[str, tuple[_Column, ...]]:
    # Serial keys come from their sequence.
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    plan = tuple(
        _Column(
            field=f,
            attname=f.attname,
            auto_now=bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)),
            needs_django=isinstance(f, models.JSONField | models.GenericIPAddressField | models.BinaryField),
        )
        for f in fields
    )
    return f"INSERT INTO {table(model)} ({columns}) VALUES ({placeholders})", plan


_NATIVE = (str, int, float, bool, uuid.UUID, datetime.datetime, datetime.date, Decimal, type(None))


def insert_statement(model: type[models.Model], values: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``INSERT`` of one row: `values` by attribute name (`user_id`), the field's default for the rest."""
    statement, plan = _insert_statement(model)
    now = None
    params = []
    for column in plan:
        if column.attname in values:
            value = values[column.attname]
        elif column.auto_now:
            value = now = now or timezone.now()
        else:
            value = column.field.get_default()
        # Django's per-field conversion is most of this function's cost and a no-op for plain values.
        if column.needs_django or not isinstance(value, _NATIVE):
            value = column.field.get_db_prep_save(value, connection)
        params.append(value)
    return statement, params


def row_insert(cur: psycopg.Cursor, model: type[models.Model], values: Mapping[str, Any]) -> None:
    """Insert one row (see `insert_statement`)."""
    cur.execute(*insert_statement(model, values))


class Batch:
    """Writes sent as one statement: data-modifying CTEs ahead of a final statement.

    PostgreSQL runs every statement of a ``WITH`` exactly once, on one snapshot; none of ours reads
    what another writes, and foreign keys are checked at commit (Django makes them deferrable).
    """

    def __init__(self) -> None:
        self._parts: list[tuple[str, list[Any]]] = []

    def add(self, statement: str, params: Sequence[Any]) -> None:
        self._parts.append((statement, list(params)))

    def insert(self, model: type[models.Model], values: Mapping[str, Any]) -> None:
        self._parts.append(insert_statement(model, values))

    def run(self, cur: psycopg.Cursor, statement: str, params: Sequence[Any]) -> Sequence[Any] | None:
        """Execute the batch ending with `statement`; its first returned row, if it returns any."""
        prefix = ", ".join(f"w{index} AS ({part})" for index, (part, _) in enumerate(self._parts))
        cur.execute(
            (f"WITH {prefix} " if prefix else "") + statement,
            [value for _, part_params in self._parts for value in part_params] + list(params),
        )
        self._parts = []
        return cur.fetchone() if "RETURNING" in statement else None
