"""Raw SQL for the webhook's hot path (see `intake`), on Django's connection or on the event loop.

The ORM costs 150–300 µs of CPU per statement (query compilation, model instances); a statement sent
here costs a fraction of that. Cursors bind parameters on the server and prepare their statements, so
PostgreSQL stops parsing and planning them.

The intake's database work is written once as *steps*: a generator that yields ``(statement, params)``
and is sent back the statement's first row (``None`` when it returns none), or yields `ROLLBACK`. Two
drivers run steps in one transaction:

- `run` on Django's own connection, in `transaction.atomic()` (Django's view, tests, workers), so
  `on_commit` and the test database's transaction apply as usual;
- `AsyncPool.run` on the event loop, over a few connections of its own (the webhook's ASGI route):
  no thread hand-off and no thread waiting for the GIL between its round trips.

`insert_statement` builds its column list from the model (serial keys left to their sequence), so a field
added later is written with its default without anyone editing SQL here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import re
import time
import uuid
import weakref
from collections.abc import Generator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection, models, transaction
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

    def ending(self, statement: str, params: Sequence[Any]) -> Step:
        """The batch as one statement that ends with `statement` (its rows are the batch's rows)."""
        prefix = ", ".join(f"w{index} AS ({part})" for index, (part, _) in enumerate(self._parts))
        merged = [value for _, part_params in self._parts for value in part_params] + list(params)
        self._parts = []
        return (f"WITH {prefix} " if prefix else "") + statement, merged


Step = tuple[str, Sequence[Any]]
# Yields statements (or `ROLLBACK`), is sent each one's first row, returns the result.
type Steps[T] = Generator[Step | object, Sequence[Any] | None, T]

# Yielded by steps: roll back what the transaction did so far and go on in a new one.
ROLLBACK = object()


def run[T](steps: Steps[T]) -> T:
    """Run `steps` on this thread's Django connection, in `transaction.atomic()` (nested in the caller's
    transaction, if any, as a savepoint)."""
    reply: Sequence[Any] | None = None
    while True:
        with transaction.atomic():
            cur = cursor()
            try:
                while (step := steps.send(reply)) is not ROLLBACK:
                    statement, params = step  # type: ignore[misc]
                    cur.execute(statement, params)
                    reply = cur.fetchone() if cur.description is not None else None
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            transaction.set_rollback(True)
            reply = None


class _AsyncCursor(psycopg.AsyncRawCursor):  # type: ignore[type-arg]
    async def execute(self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None):  # type: ignore[override]
        return await super().execute(numbered(query), params, prepare=prepare, binary=binary)


class _Connection:
    def __init__(self, conn: psycopg.AsyncConnection) -> None:  # type: ignore[type-arg]
        self.conn = conn
        self.cursor = _AsyncCursor(conn)
        self.used_at = time.monotonic()


class AsyncPool:
    """A few connections of the event loop's own for `run`ning steps, opened as they are needed.

    Connections are made with Django's parameters for its default database (the test database in
    tests). One that failed is dropped; one that sat idle longer than `check_after_s` is checked with
    a round trip before use, as Django's CONN_HEALTH_CHECKS does, and one in steady use is not.
    A pool belongs to the event loop it was first used on.
    """

    def __init__(self, size: int, *, check_after_s: float = 1.0) -> None:
        self.size = size
        self.check_after_s = check_after_s
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        _pools.add(self)

    async def _connect(self) -> _Connection:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.update(autocommit=False, prepare_threshold=EXPLICIT_ONLY)
        conn = await psycopg.AsyncConnection.connect(**params)
        wanted = connection.timezone_name
        if wanted and conn.info.parameter_status("TimeZone") != wanted:
            await conn.execute("SELECT set_config('TimeZone', %s, false)", [wanted])
            await conn.commit()
        return _Connection(conn)

    async def _usable(self, held: _Connection) -> bool:
        if held.conn.closed:
            return False
        if time.monotonic() - held.used_at < self.check_after_s:
            return True
        try:
            await held.conn.execute("SELECT 1")
            await held.conn.rollback()
        except psycopg.Error:
            return False
        return True

    async def run[T](self, steps: Steps[T]) -> T:
        """Run `steps` in one transaction on one of the pool's connections (waiting for one if all are
        busy). An exception from the database or from `steps` rolls the transaction back and is raised."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests run one per call): the old one's connections go
            self.close()
            self._loop, self._slots = loop, asyncio.Semaphore(self.size)
        assert self._slots is not None
        async with self._slots:
            held = None
            while self._idle and held is None:
                candidate = self._idle.pop()
                if await self._usable(candidate):
                    held = candidate
                else:
                    _finish(candidate)
            held = held or await self._connect()
            try:
                result = await _drive(held, steps)
            except BaseException:
                await self._reset(held)
                raise
            self._release(held)
            return result

    async def _reset(self, held: _Connection) -> None:
        """After a failure: roll back and keep the connection, or drop it when that fails too."""
        if not (held.conn.closed or held.conn.broken):
            try:
                await held.conn.rollback()
            except psycopg.Error:
                pass
            else:
                self._release(held)
                return
        _finish(held)

    def _release(self, held: _Connection) -> None:
        held.used_at = time.monotonic()
        self._idle.append(held)

    def close(self) -> None:
        """Close the idle connections (synchronously: the loop they were used on may be gone)."""
        idle, self._idle = self._idle, []
        for held in idle:
            _finish(held)


_pools: weakref.WeakSet[AsyncPool] = weakref.WeakSet()


def close_async_pools() -> None:
    """Close every pool's idle connections (before a test database is dropped, say)."""
    for pool in list(_pools):
        pool.close()


def _finish(held: _Connection) -> None:
    if not held.conn.closed:
        held.conn.pgconn.finish()


async def _drive[T](held: _Connection, steps: Steps[T]) -> T:
    cur = held.cursor
    reply: Sequence[Any] | None = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            await held.conn.commit()
            return done.value  # type: ignore[no-any-return]
        if step is ROLLBACK:
            await held.conn.rollback()
            reply = None
            continue
        statement, params = step  # type: ignore[misc]
        await cur.execute(statement, params)
        reply = await cur.fetchone() if cur.description is not None else None
