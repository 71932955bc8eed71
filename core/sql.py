"""Raw SQL where it earns its place (the webhook's intake), on Django's connection or on the event loop.

The ORM costs 150–300 µs of CPU per statement (query compilation, model instances); a statement sent
here costs a fraction of that. Cursors bind parameters on the server and prepare their statements, so
PostgreSQL stops parsing and planning them. Rows come back by name (a dict per row, psycopg's
`dict_row`), never decoded by position.

A transaction's database work is written once as *steps*: a generator that yields ``(statement,
params)`` and is sent back the statement's first row (``None`` when it returns none), or yields
`ROLLBACK`. Two drivers run steps in one transaction:

- `run` on Django's own connection, in `transaction.atomic()` (Django's view, tests, workers), so
  `on_commit` and the test database's transaction apply as usual;
- `AsyncPool.run` on the event loop, over a `psycopg_pool.AsyncConnectionPool` of its own (the
  webhook's ASGI route): no thread hand-off and no thread waiting for the GIL between round trips.

`insert_statement` builds its column list from the model (serial keys left to their sequence), so a field
added later is written with its default without anyone editing SQL here. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import re
import uuid
import weakref
from collections.abc import Generator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal, Self

import psycopg
from django.db import connection, models, transaction
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool


class PreparedCursor(psycopg.RawCursor[DictRow]):
    """Binds parameters on the server and prepares every statement it runs.

    These statements are few and run for every webhook, so they are prepared: PostgreSQL then parses
    each once per connection and stops planning it once a generic plan is as good (parsing and planning
    cost several times more than executing them).

    Statements are written with psycopg's ``%s`` placeholders and turned into PostgreSQL's ``$n`` once
    per statement text (`numbered`). psycopg's own conversion caches only statements under 4 KiB with
    at most 50 parameters, and ours that write a whole group in one statement are larger: splitting
    them again for every webhook was a third of a new entry's CPU.
    """

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None
    ) -> Self:
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
    cached: PreparedCursor | None = getattr(connection, "_prepared_cursor", None)
    if cached is not None and cached.connection is raw:
        return cached
    if raw.prepare_threshold is None:
        raw.prepare_threshold = EXPLICIT_ONLY
    # kept on Django's per-thread connection wrapper, which has no such attribute of its own
    cached = connection._prepared_cursor = PreparedCursor(raw, row_factory=dict_row)  # type: ignore[attr-defined]
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
Row = DictRow  # a row by column name


class _Control(enum.Enum):
    ROLLBACK = "rollback"


# Yielded by steps: roll back what the transaction did so far and go on in a new one.
ROLLBACK: Final = _Control.ROLLBACK
# Yields statements (or `ROLLBACK`), is sent each one's first row, returns the result.
type Steps[T] = Generator[Step | Literal[_Control.ROLLBACK], Row | None, T]


def run[T](steps: Steps[T]) -> T:
    """Run `steps` on this thread's Django connection, in `transaction.atomic()` (nested in the caller's
    transaction, if any, as a savepoint)."""
    reply: Row | None = None
    while True:
        with transaction.atomic():
            cur = cursor()
            try:
                while (step := steps.send(reply)) is not ROLLBACK:
                    statement, params = step
                    cur.execute(statement, params)
                    reply = cur.fetchone() if cur.description is not None else None
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            transaction.set_rollback(True)
            reply = None


class _AsyncCursor(psycopg.AsyncRawCursor[DictRow]):
    async def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = True, binary: bool | None = None
    ) -> Self:
        return await super().execute(numbered(query), params, prepare=prepare, binary=binary)


class AsyncPool:
    """Connections of the event loop's own for `run`ning steps: a `psycopg_pool.AsyncConnectionPool`.

    Connections are made with Django's parameters for its default database (the test database in
    tests). The pool replaces a connection that is broken or that it finds closed; one that sat idle
    longer than `check_after_s` is checked with a round trip before use, as Django's
    CONN_HEALTH_CHECKS does, while one in steady use is not (a check per alert would be a fifth of the
    intake's round trips). A pool belongs to the event loop it was first used on: tests run a loop per
    call, and a new loop gets a new pool.
    """

    def __init__(self, size: int, *, check_after_s: float = 1.0, wait_s: float = 3.0) -> None:
        self.size = size
        self.check_after_s = check_after_s
        # How long an alert waits for a connection (or for the pool's first connections): TradingView
        # gives up on an answer after 3 s, and a longer wait only hides an unreachable database.
        self.wait_s = wait_s
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Task[AsyncConnectionPool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Per connection: when it last finished a transaction, and its reused cursor (a cursor keeps
        # the loaders and dumpers it looked up for each type).
        self._used_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = weakref.WeakKeyDictionary()
        self._cursors: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], _AsyncCursor] = (
            weakref.WeakKeyDictionary()
        )
        self._made: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()
        _pools.add(self)

    def _connect_kwargs(self) -> dict[str, Any]:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.update(autocommit=False, prepare_threshold=EXPLICIT_ONLY)
        return params

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._made.add(conn)
        wanted = connection.timezone_name
        if wanted and conn.info.parameter_status("TimeZone") != wanted:
            await conn.execute("SELECT set_config('TimeZone', %s, false)", [wanted])
            await conn.commit()

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        used_at = self._used_at.get(conn)
        if used_at is not None and asyncio.get_running_loop().time() - used_at < self.check_after_s:
            return
        await AsyncConnectionPool.check_connection(conn)

    async def _current(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._loop is not loop:  # a new loop (tests run one per call): the old loop's connections go
            self.close()
            self._loop = loop
        # The first alerts of a burst arrive together: they all wait for the one pool being opened
        # rather than each opening (and closing) one of its own.
        if self._opening is None or self._opening.done():
            self._opening = loop.create_task(self._open())
        self._pool = await asyncio.shield(self._opening)
        return self._pool

    async def _open(self) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(
            kwargs=self._connect_kwargs(),
            min_size=self.size,
            max_size=self.size,
            open=False,
            configure=self._configure,
            check=self._check,
            timeout=self.wait_s,
            name="webhook",
        )
        # Every connection is made before the first statement, not by the pool's background tasks
        # while alerts arrive: a loop that ends (tests run one per call) then has no connection attempt
        # in flight, which psycopg_pool's workers would not let be cancelled.
        try:
            await pool.open(wait=True, timeout=self.wait_s)
        except BaseException:
            await pool.close()  # the next alert tries again with a new pool
            raise
        return pool

    async def run[T](self, steps: Steps[T]) -> T:
        """Run `steps` in one transaction on one of the pool's connections (waiting for one if all are
        busy). An exception from the database or from `steps` rolls the transaction back and is raised;
        the pool drops the connection if that leaves it unusable."""
        pool = await self._current()
        async with pool.connection() as conn:
            cur = self._cursors.get(conn)
            if cur is None:
                cur = self._cursors[conn] = _AsyncCursor(conn, row_factory=dict_row)
            try:
                result = await _drive(conn, cur, steps)
            except BaseException:
                if not (conn.closed or conn.broken):
                    try:
                        await conn.rollback()
                    except psycopg.Error:
                        pass  # the pool finds the connection broken and replaces it
                raise
            self._used_at[conn] = asyncio.get_running_loop().time()
            return result

    def close(self) -> None:
        """End the pool's connections (synchronously: the loop they were used on may be gone)."""
        self._pool = self._opening = None
        for conn in list(self._made):
            if not conn.closed:
                conn.pgconn.finish()
        self._made = weakref.WeakSet()


_pools: weakref.WeakSet[AsyncPool] = weakref.WeakSet()


def close_async_pools() -> None:
    """Close every pool's connections (before a test database is dropped, say)."""
    for pool in list(_pools):
        pool.close()


async def _drive[T](conn: psycopg.AsyncConnection[Any], cur: _AsyncCursor, steps: Steps[T]) -> T:
    reply: Row | None = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            await conn.commit()
            return done.value  # type: ignore[no-any-return]
        if step is ROLLBACK:
            await conn.rollback()
            reply = None
            continue
        statement, params = step
        await cur.execute(statement, params)
        reply = await cur.fetchone() if cur.description is not None else None
