"""Webhook intake: validate, classify and persist a signal in one transaction. Never calls an exchange.

This is the product's hottest path (CONTRACT §6 `webhook_ack`: 50 alerts in flight on two cores), so it
is written for CPU:

- the alert is decoded, validated and its symbol resolved first (`alert_read`: pure Python, a
  per-process symbol index, engine configs parsed once per content); its errors are still reported in
  CONTRACT order;
- then one transaction (`intake_steps`, raw SQL bound and prepared by the server), written once as
  `sql` steps: Django's view runs them on Django's connection (`signal_receive`), the ASGI route on
  its event loop (`positions.ingress`). Three statements: read the secret, the exchange config, the
  engine config, the rate-limit count and the alert's open group, locked; write every row of the
  outcome in one statement (`sql.Batch`), the signal row last; commit. An alert with no open group (a
  new entry, a queued signal, an exit without a position) first locks its user and reads the pool
  count and its group again, two statements more. (A queued alert's queue upsert and an exit's queue
  removal are one statement more.)
- a pending signal is announced with NOTIFY by the statement that stores it (`positions.dispatch`);
  the live events are returned with the answer and sent once committed.

Idempotency is decided by the `signal_idempotency` unique constraint (INSERT ... ON CONFLICT), not by a
check-then-insert: when the key is taken, the whole transaction is undone and a duplicate row stored.
Whatever depends on the pool is decided under a row lock on the user, so the pool count and the
open-group check cannot race; an alert for an open group (a pyramid, an exit) only locks that group's
row, so a trader's alerts on several symbols at one candle close do not wait for each other.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.choices import LogLevel
from accounts.logs import log_row
from accounts.models import SystemLog, User
from exchanges.selectors import market_rules_count, market_symbol_resolve

from .. import events
from ..choices import (
    FINAL_GROUP_STATUSES,
    GroupStatus,
    ProcessingStatus,
    SignalClassification,
    SignalSource,
    SignalStatus,
)
from ..config import effective_config, effective_config_shared
from ..dispatch import announce_returning
from ..events import Event, group_event, signal_event
from ..grid import GridConfig, capital_for_pyramid, levels_for_pyramid
from ..models import EngineConfig, GroupEvent, PositionGroup, Pyramid, WebhookSignal
from ..webhook import ParsedSignal, WebhookError, candle_start, decode_body, parse_signal, redact_secret
from core import sql

KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "USD", "TRY")
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")
SIDE = "long"  # spot: every group is a long
RATE_WINDOW = timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class IntakeResult:
    status: int
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _OpenGroup:
    """The open group of the alert's identity, locked; the attributes `events.group_event` reads."""

    id: uuid.UUID
    user_id: uuid.UUID
    symbol: str
    timeframe: str
    side: str
    status: str
    pyramid_count: int
    max_pyramids: int
    last_pyramid_candle: datetime | None
    config: str
    filled_quantity: Decimal
    avg_entry_price: Decimal | None
    realized_pnl: Decimal


@dataclasses.dataclass(frozen=True)
class _Context:
    """What the transaction's lock and read tell about the addressed user."""

    secret: str
    config_id: uuid.UUID | None
    exchange_name: str
    engine_config: str | None  # the stored JSON text
    recent: int  # authenticated requests in the last minute (capped just above the limit)
    pool_used: int | None  # open groups (`riskengine.services.pool_used`), read under the user lock
    group: _OpenGroup | None  # the open group of the alert's identity, locked


@dataclasses.dataclass
class _Outcome:
    """How a signal that reached classification ends; stored with its row (the batch's last statement)."""

    id: uuid.UUID
    user_id: uuid.UUID
    symbol: str
    action: str
    classification: str = ""
    status: str = SignalStatus.ACCEPTED
    http_status: int = 202
    reason: str = ""
    group_id: uuid.UUID | None = None
    processing_status: str = ProcessingStatus.NONE
    keep_idempotency_key: bool = True
    events: list[Event] = dataclasses.field(default_factory=list)  # live events, sent once committed

    def skip(self, status: str, reason: str) -> IntakeResult:
        self.status, self.http_status, self.reason = status, 200, reason
        # A second pyramid in one candle is a duplicate of the first, not of this trade id: a later
        # alert with the same trade id and timestamp must not collide with it.
        self.keep_idempotency_key = status != SignalStatus.DUPLICATE
        return IntakeResult(200, {"status": status, "reason": reason, "signal_id": str(self.id)})

    def accept(self, classification: str, group_id: uuid.UUID | None, message: str) -> IntakeResult:
        self.classification, self.group_id = classification, group_id
        self.processing_status = ProcessingStatus.PENDING if group_id is not None else ProcessingStatus.NONE
        return IntakeResult(
            202,
            {
                "signal_id": str(self.id),
                "classification": classification,
                "status": "accepted",
                "group_id": str(group_id) if group_id else None,
                "message": message,
            },
        )


def _error(exc: WebhookError) -> IntakeResult:
    return IntakeResult(exc.status, {"error": exc.code, "detail": exc.detail, "fields": exc.fields})


def _excerpt(raw: bytes) -> str:
    text = raw[:512].decode("utf-8", errors="replace")
    # The body may hold a secret in a non-JSON format; keep only its shape.
    return "".join("*" if ch.isalnum() else ch for ch in text)


def resolve_symbol(exchange_name: str, raw: str, *, cached_only: bool = False) -> tuple[str, str]:
    """(unified symbol, exchange symbol) from TradingView's ticker, using the cached market rules.

    With no rules cached for this exchange yet, the unified form is derived from known quote assets and
    the market rules are checked when the signal is processed (the group waits until then). With
    `cached_only`, `NotCachedError` where the answer needs the database.
    """
    ticker = raw.split(":")[-1].strip().upper().removesuffix(".P")
    compact = ticker.replace("/", "").replace("-", "").replace("_", "")
    match = market_symbol_resolve(exchange_name=exchange_name, raw=ticker, cached_only=cached_only)
    if match is not None:
        return match
    if market_rules_count(exchange_name=exchange_name):
        raise WebhookError(
            400,
            "unknown_symbol",
            f"{raw!r} is not a market on {exchange_name}.",
            {"tv.symbol": [f"unknown symbol {raw!r} on {exchange_name}"]},
        )
    if "/" in ticker:
        return ticker, compact
    for quote in KNOWN_QUOTES:
        if compact.endswith(quote) and len(compact) > len(quote):
            return f"{compact[: -len(quote)]}/{quote}", compact
    raise WebhookError(
        400,
        "unknown_symbol",
        f"Cannot tell base and quote apart in {raw!r}.",
        {"tv.symbol": [f"unknown symbol {raw!r}"]},
    )


def _idempotency_key(parsed: ParsedSignal) -> str | None:
    if not (parsed.trade_id or parsed.tv_timestamp):
        return None
    raw = "|".join([parsed.trade_id, parsed.tv_timestamp, parsed.action, parsed.intent_type])
    return hashlib.sha256(raw.encode()).hexdigest()


def _user_uuid(user_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(user_id)
    except ValueError:
        return None


_GROUP_COLUMNS = (
    "id, user_id, symbol, timeframe, side, status, pyramid_count, max_pyramids, last_pyramid_candle,"
    " config::text, filled_quantity, avg_entry_price, realized_pnl"
)


@functools.cache
def _statements() -> tuple[str, str, str]:
    """(read, user lock, pool read): see `_read` and `_pool_steps`. Built once."""
    from exchanges.models import ExchangeConfig
    from riskengine.services import pool_used_statement

    groups = sql.table(PositionGroup)

    def open_group(user: str, config: str) -> str:
        return f"""SELECT {_GROUP_COLUMNS} FROM {groups}
                WHERE user_id = {user} AND exchange_config_id = {config} AND symbol = %s AND timeframe = %s
                  AND side = %s AND status NOT IN ({sql.literals(FINAL_GROUP_STATUSES)})
                LIMIT 1 FOR UPDATE"""

    read = f"""SELECT u.webhook_secret, ec.id, ec.exchange_name,
               (SELECT e.data::text FROM {sql.table(EngineConfig)} e WHERE e.user_id = u.id),
               (SELECT count(*) FROM (
                    SELECT 1 FROM {sql.table(WebhookSignal)} s
                     WHERE s.user_id = u.id AND s.received_at > %s AND s.http_status NOT IN (401, 403, 404)
                     LIMIT %s) recent),
               g.*
          FROM {sql.table(User)} u
          LEFT JOIN LATERAL (
               SELECT c.id, c.exchange_name FROM {sql.table(ExchangeConfig)} c
                WHERE c.user_id = u.id AND c.is_enabled AND lower(c.exchange_name) = lower(%s)
                ORDER BY c.created_at LIMIT 1) ec ON true
          LEFT JOIN LATERAL ({open_group("u.id", "ec.id")}) g ON true
         WHERE u.id = %s AND u.is_active"""
    lock = f"SELECT 1 FROM {sql.table(User)} WHERE id = %s AND is_active FOR NO KEY UPDATE"
    pool = f"""SELECT ({pool_used_statement()}), g.*
          FROM (SELECT 1) one LEFT JOIN LATERAL ({open_group("%s", "%s")}) g ON true"""
    return read, lock, pool


def _context(row: Sequence[Any] | None) -> _Context | None:
    """What `_read`'s statement read: the active user's secret, the enabled exchange config the alert
    names, the engine config, the rate-limit count and the alert's open group (locked). ``None`` when
    there is no such active user. The pool count is read by `_pool_steps`, under the user lock.

    The rate limit is a sliding window over the stored requests themselves: those of the last minute
    that passed authentication.
    """
    if row is None:
        return None
    return _Context(
        secret=row[0],
        config_id=row[1],
        exchange_name=row[2] or "",
        engine_config=row[3],
        recent=row[4],
        pool_used=None,
        group=None if row[5] is None else _OpenGroup(*row[5:]),
    )


def _read(user_id: uuid.UUID, parsed: ParsedSignal | None, symbol: str) -> sql.Step:
    read, _, _ = _statements()
    return read, [
        timezone.now() - RATE_WINDOW,
        settings.WEBHOOK_RATE_LIMIT_PER_MINUTE + 1,
        (parsed.exchange if parsed else "").strip(),
        symbol,
        parsed.timeframe if parsed else "",
        SIDE,
        user_id,
    ]


def _pool_steps(context: _Context, user_id: uuid.UUID, symbol: str, timeframe: str) -> sql.Steps[_Context | None]:
    """Lock the user, then read the pool count and the alert's open group again (one statement each).
    ``None`` when the user is no longer active.

    The user lock serializes what depends on the pool (a new entry, a queued signal, an exit without a
    group); an alert for an open group needs only that group's row lock (`intake_steps`). Two
    statements, not one: a statement reads from the snapshot it took when it started, so a read in the
    statement that waited for the lock could miss what the previous holder committed. The lock is NO
    KEY UPDATE, not UPDATE: a worker that holds one of this user's group rows may insert rows that
    reference the user (logs) and must not wait for us while we wait for that group.
    """
    _, lock, pool = _statements()
    if (yield lock, [user_id]) is None:
        return None
    row = yield pool, [user_id, user_id, context.config_id, symbol, timeframe, SIDE]
    assert row is not None
    group = None if row[1] is None else _OpenGroup(*row[1:])
    return dataclasses.replace(context, pool_used=row[0], group=group)


def _rejection(alert: Alert, user_id: uuid.UUID | None, exc: WebhookError) -> sql.Step:
    """The statement that stores a refused request (and, for a refused secret, a warning in the log)."""
    parsed, body = alert.parsed, alert.body
    batch = sql.Batch()
    if exc.status in (401, 403):
        batch.insert(
            SystemLog, log_row(LogLevel.WARNING, "WEBHOOK", f"Webhook refused: {exc.detail}", user=user_id, ip=alert.ip)
        )
    statement, params = sql.insert_statement(
        WebhookSignal,
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "source_ip": alert.ip,
            "body": redact_secret(body) if isinstance(body, dict) else None,
            "raw_excerpt": "" if isinstance(body, dict) else _excerpt(alert.raw),
            "status": SignalStatus.REJECTED,
            "http_status": exc.status,
            "reason": f"{exc.code}: {exc.detail}"[:2000],
            "action": parsed.action if parsed else "",
            "symbol": (parsed.raw_symbol if parsed else "")[:32],
            "ack_ms": (time.perf_counter() - alert.started) * 1000,
        },
    )
    return batch.ending(statement, params)


def _envelope_check(raw: bytes, content_type: str) -> None:
    if len(raw) > settings.WEBHOOK_MAX_BODY_BYTES:
        raise WebhookError(
            413,
            "payload_too_large",
            f"The body is larger than {settings.WEBHOOK_MAX_BODY_BYTES // 1024} KiB.",
            {"body": ["too large"]},
        )
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise WebhookError(
            415,
            "unsupported_media_type",
            f"Send the alert as application/json or text/plain, not {media_type or 'nothing'}.",
            {"content_type": [f"unsupported: {media_type or 'missing'}"]},
        )


@dataclasses.dataclass(frozen=True)
class Alert:
    """A request as `alert_read` found it, before the database: what the intake then decides on."""

    user_id: str
    raw: bytes
    ip: str | None
    started: float
    body: Any = None
    parsed: ParsedSignal | None = None
    symbol: str = ""
    exchange_symbol: str = ""
    envelope_error: WebhookError | None = None  # size, media type: refused before anything else
    body_error: WebhookError | None = None  # JSON
    schema_error: WebhookError | None = None
    symbol_error: WebhookError | None = None


def alert_read(*, user_id: str, raw: bytes, content_type: str, ip: str | None, cached_only: bool = False) -> Alert:
    """Decode, validate and resolve the symbol of a request: pure Python and per-process caches. With
    `cached_only`, `NotCachedError` where the symbol needs the database (see `resolve_symbol`)."""
    alert = Alert(user_id=user_id, raw=raw, ip=ip, started=time.perf_counter())
    try:
        _envelope_check(raw, content_type)
    except WebhookError as exc:
        return dataclasses.replace(alert, envelope_error=exc)
    body = parsed = None
    try:
        body = decode_body(raw)
        parsed = parse_signal(body)
        symbol, exchange_symbol = resolve_symbol(parsed.exchange, parsed.raw_symbol, cached_only=cached_only)
    except WebhookError as exc:
        if body is None:
            return dataclasses.replace(alert, body_error=exc)
        if parsed is None:
            return dataclasses.replace(alert, body=body, schema_error=exc)
        return dataclasses.replace(alert, body=body, parsed=parsed, symbol_error=exc)
    return dataclasses.replace(alert, body=body, parsed=parsed, symbol=symbol, exchange_symbol=exchange_symbol)


def signal_receive(*, user_id: str, raw: bytes, content_type: str, ip: str | None) -> IntakeResult:
    """Everything the webhook does, on this thread's Django connection; every request leaves a
    `WebhookSignal` row. Its live events are sent once it has committed."""
    result, committed = sql.run(intake_steps(alert_read(user_id=user_id, raw=raw, content_type=content_type, ip=ip)))
    events.publish_events(committed)
    return result


def intake_steps(alert: Alert) -> sql.Steps[tuple[IntakeResult, list[Event]]]:
    """The intake's database work as `sql` steps, one transaction: read and lock (`_read`), then store
    the rejection, or classify and store the signal. Returns the answer and the live events to send
    once committed.

    Errors are reported in CONTRACT order: size, media type, unknown user, IP, JSON, secret, rate
    limit, schema, exchange, symbol.
    """
    if alert.envelope_error is not None:
        yield _rejection(alert, None, alert.envelope_error)
        return _error(alert.envelope_error), []
    parsed = alert.parsed
    wanted = _user_uuid(alert.user_id)
    context = _context((yield _read(wanted, parsed, alert.symbol))) if wanted else None
    try:
        if context is None:
            raise WebhookError(404, "not_found", "No such webhook URL.")
        if settings.WEBHOOK_ALLOWED_IPS and alert.ip not in settings.WEBHOOK_ALLOWED_IPS:
            raise WebhookError(403, "ip_not_allowed", "Requests from this address are not accepted.")
        if alert.body_error is not None:
            raise alert.body_error
        _secret_check(alert.body, context.secret)
        if context.recent >= settings.WEBHOOK_RATE_LIMIT_PER_MINUTE:
            raise WebhookError(429, "throttled", "Too many webhooks for this user; slow down.")
        if alert.schema_error is not None:
            raise alert.schema_error
        assert parsed is not None and wanted is not None
        if context.config_id is None:
            raise WebhookError(
                400,
                "unknown_exchange",
                f"No enabled exchange config named {parsed.exchange!r}.",
                {"tv.exchange": [f"no enabled exchange config named {parsed.exchange!r}"]},
            )
        if alert.symbol_error is not None:
            raise alert.symbol_error
        if context.group is None:
            # No open group: the outcome depends on the pool (or the queue), so take the user lock
            # and read again. A group opened meanwhile by an alert of the same identity is seen now.
            context = yield from _pool_steps(context, wanted, alert.symbol, parsed.timeframe)
            if context is None:  # the user was deactivated meanwhile
                raise WebhookError(404, "not_found", "No such webhook URL.")
    except WebhookError as exc:
        yield _rejection(alert, wanted if context is not None else None, exc)
        return _error(exc), []
    return (yield from _classify_and_store(alert, wanted, context))


def _secret_check(body: dict[str, Any], expected: str) -> None:
    secret = body.get("secret")
    if secret is None or secret == "":
        raise WebhookError(401, "secret_missing", "The body has no secret.", {"secret": ["is required"]})
    if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise WebhookError(403, "secret_invalid", "The secret is wrong.", {"secret": ["does not match"]})


def _classify_and_store(
    alert: Alert, user_id: uuid.UUID, context: _Context
) -> sql.Steps[tuple[IntakeResult, list[Event]]]:
    """Classify under the locks `_read` took and write everything in one statement (`sql.Batch`), the signal
    row last: the unique constraint on its idempotency key decides whether all of it stands. When the key
    is taken, all of it is rolled back and a duplicate row stored instead."""
    parsed, symbol = alert.parsed, alert.symbol
    assert parsed is not None
    now = timezone.now()
    values = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "exchange_config_id": context.config_id,
        "received_at": now,
        "source_ip": alert.ip,
        "source": parsed.source if parsed.source in SignalSource.values else SignalSource.OTHER,
        "body": redact_secret(parsed.body),
        "trade_id": parsed.trade_id,
        "tv_timestamp": parsed.tv_timestamp,
        "action": parsed.action,
        "intent_type": parsed.intent_type,
        "symbol": symbol,
        "timeframe": parsed.timeframe,
        "side": SIDE,
        "entry_price": parsed.entry_price or parsed.close_price,
        "order_size": parsed.order_size,
        "idempotency_key": _idempotency_key(parsed),
    }
    batch = sql.Batch()
    identity = [user_id, context.config_id, symbol, parsed.timeframe, SIDE]
    outcome = _Outcome(id=values["id"], user_id=user_id, symbol=symbol, action=parsed.action)
    group = context.group
    if parsed.is_exit:
        result = yield from _classify_exit(outcome, group, identity)
    elif group is not None:
        result = _classify_pyramid(batch, outcome, group, parsed, now)
    else:
        result = yield from _classify_new(batch, outcome, context, alert, now)
    values.update(
        classification=outcome.classification,
        status=outcome.status,
        http_status=outcome.http_status,
        reason=outcome.reason,
        group_id=outcome.group_id,
        processing_status=outcome.processing_status,
        ack_ms=(time.perf_counter() - alert.started) * 1000,
    )
    if not outcome.keep_idempotency_key:
        values["idempotency_key"] = None
    # A pending signal is announced to the dispatcher by the same statement (NOTIFY is delivered on
    # commit): no enqueue call on the web process (see `positions.dispatch`).
    pending = outcome.processing_status == ProcessingStatus.PENDING
    statement, params = sql.insert_statement(WebhookSignal, values)
    stored = yield batch.ending(
        statement
        + " ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        + (announce_returning() if pending else " RETURNING id"),
        params,
    )
    if stored is not None:
        return result, [*outcome.events, signal_event(outcome)]
    yield sql.ROLLBACK
    reason = "the same trade_id, timestamp and action was already received"
    values.update(
        id=uuid.uuid4(),
        idempotency_key=None,
        classification="",
        status=SignalStatus.DUPLICATE,
        http_status=200,
        reason=reason,
        group_id=None,
        processing_status=ProcessingStatus.NONE,
        ack_ms=(time.perf_counter() - alert.started) * 1000,
    )
    yield sql.insert_statement(WebhookSignal, values)
    return IntakeResult(200, {"status": "duplicate", "reason": reason, "signal_id": str(values["id"])}), []


def _classify_exit(outcome: _Outcome, group: _OpenGroup | None, identity: list[Any]) -> sql.Steps[IntakeResult]:
    from riskengine.services import queue_event, queue_remove_statement

    outcome.classification = SignalClassification.EXIT
    user_id, config_id, symbol, timeframe, side = identity
    dropped = (
        yield queue_remove_statement(
            user_id=user_id, exchange_config_id=config_id, symbol=symbol, timeframe=timeframe, side=side
        )
    ) is not None
    if dropped:
        outcome.events.append(queue_event(user_id))
    if group is None:
        if dropped:
            outcome.reason = "the queued entry for this position was removed"
            return outcome.accept(SignalClassification.EXIT, None, "Queued signal removed")
        return outcome.skip(SignalStatus.IGNORED, "no open position for this symbol and timeframe")
    if group.status == GroupStatus.CLOSING:
        outcome.group_id = group.id
        return outcome.skip(SignalStatus.IGNORED, "the position is already closing")
    return outcome.accept(SignalClassification.EXIT, group.id, "Position exit pending execution")


def _candle(parsed: ParsedSignal, now: datetime) -> datetime:
    return candle_start(parsed.signal_time or now, parsed.timeframe)


def _classify_pyramid(
    batch: sql.Batch, outcome: _Outcome, group: _OpenGroup, parsed: ParsedSignal, now: datetime
) -> IntakeResult:
    outcome.classification, outcome.group_id = SignalClassification.PYRAMID, group.id
    candle = _candle(parsed, now)
    skipped = None
    if group.status == GroupStatus.CLOSING:
        skipped = outcome.skip(SignalStatus.IGNORED, "the position is closing")
    elif group.last_pyramid_candle == candle:
        skipped = outcome.skip(SignalStatus.DUPLICATE, f"a pyramid was already added in this {group.timeframe} candle")
    elif group.pyramid_count >= group.max_pyramids:
        skipped = outcome.skip(SignalStatus.IGNORED, f"max pyramids reached ({group.max_pyramids})")
    if skipped is not None:
        batch.insert(
            SystemLog,
            log_row(
                LogLevel.INFO,
                "WEBHOOK",
                f"Pyramid {outcome.status}: {outcome.reason}",
                user=group.user_id,
                details={"group_id": str(group.id), "signal_id": str(outcome.id)},
            ),
        )
        return skipped
    index = group.pyramid_count
    merged, grid = effective_config_shared(group.config, symbol=group.symbol, timeframe=group.timeframe)
    _pyramid_insert(
        batch, group.id, outcome.id, index, grid, parsed, use_signal_size=bool(merged.get("use_signal_size"))
    )
    batch.add(
        f"UPDATE {sql.table(PositionGroup)} SET pyramid_count = %s, last_pyramid_candle = %s, updated_at = %s"
        " WHERE id = %s",
        [index + 1, candle, now, group.id],
    )
    outcome.events.append(group_event(dataclasses.replace(group, pyramid_count=index + 1)))
    return outcome.accept(SignalClassification.PYRAMID, group.id, f"Pyramid {index} added and pending execution")


def _pyramid_insert(
    batch: sql.Batch,
    group_id: uuid.UUID,
    signal_id: uuid.UUID,
    index: int,
    grid: GridConfig,
    parsed: ParsedSignal,
    *,
    use_signal_size: bool,
) -> None:
    capital = capital_for_pyramid(grid, index)
    if use_signal_size and parsed.order_size:
        capital = parsed.order_size
    levels = [
        {"gap_percent": str(lv.gap_percent), "weight_percent": str(lv.weight_percent), "tp_percent": str(lv.tp_percent)}
        for lv in levels_for_pyramid(grid, index)
    ]
    batch.insert(
        Pyramid,
        {
            "group_id": group_id,
            "index": index,
            "signal_id": signal_id,
            "entry_price": parsed.entry_price or parsed.close_price,
            "capital_usd": capital,
            "levels": levels,
            "entry_order_type": grid.entry_order_type,
        },
    )


def _classify_new(
    batch: sql.Batch, outcome: _Outcome, context: _Context, alert: Alert, now: datetime
) -> sql.Steps[IntakeResult]:
    from riskengine.services import queue_event, queue_reason, queue_upsert_statement

    parsed, symbol = alert.parsed, alert.symbol
    assert parsed is not None
    merged, grid = effective_config_shared(context.engine_config, symbol=symbol, timeframe=parsed.timeframe)
    assert context.pool_used is not None  # read under the user lock (`_pool_steps`)
    if context.pool_used >= merged["max_open_groups"]:
        outcome.classification = SignalClassification.QUEUED
        max_size = merged.get("queue_max_size")
        replacements = yield queue_upsert_statement(
            user_id=outcome.user_id,
            signal_id=outcome.id,
            exchange_config_id=context.config_id,
            symbol=symbol,
            timeframe=parsed.timeframe,
            side=SIDE,
            entry_price=parsed.entry_price or parsed.close_price,
            max_size=max_size,
        )
        if replacements is None:
            return outcome.skip(SignalStatus.IGNORED, f"the waiting queue is full ({max_size})")
        outcome.events.append(queue_event(outcome.user_id, symbol=symbol))
        outcome.reason = queue_reason(replacements[0])
        return outcome.accept(SignalClassification.QUEUED, None, "Execution pool is full; signal queued")
    group_id = group_insert(
        batch,
        outcome.events,
        signal_id=outcome.id,
        user_id=outcome.user_id,
        config_id=context.config_id,
        symbol=symbol,
        exchange_symbol=alert.exchange_symbol,
        timeframe=parsed.timeframe,
        merged=merged,
        grid=grid,
        parsed=parsed,
        now=now,
    )
    return outcome.accept(SignalClassification.NEW_ENTRY, group_id, "Position group created and pending execution")


def group_insert(
    batch: sql.Batch,
    published: list[Event],
    *,
    signal_id: uuid.UUID,
    user_id: uuid.UUID,
    config_id: Any,
    symbol: str,
    exchange_symbol: str,
    timeframe: str,
    merged: dict[str, Any],
    grid: GridConfig,
    parsed: ParsedSignal,
    now: datetime,
) -> uuid.UUID:
    """Add a `waiting` group with pyramid 0 to `batch`, and its live event to `published` (the caller
    holds the user lock and has checked the pool)."""
    group_id = uuid.uuid4()
    values = {
        "id": group_id,
        "user_id": user_id,
        "exchange_config_id": config_id,
        "symbol": symbol,
        "exchange_symbol": exchange_symbol,
        "timeframe": timeframe,
        "side": SIDE,
        "status": GroupStatus.WAITING,
        "config": merged,
        "tp_mode": grid.tp_mode,
        "max_pyramids": grid.max_pyramids,
        "pyramid_count": 1,
        "last_pyramid_candle": _candle(parsed, now),
        "created_at": now,
        "updated_at": now,
    }
    batch.insert(PositionGroup, values)
    _pyramid_insert(batch, group_id, signal_id, 0, grid, parsed, use_signal_size=bool(merged.get("use_signal_size")))
    batch.insert(
        GroupEvent,
        {
            "group_id": group_id,
            "at": now,
            "kind": "opened",
            "message": f"Opened by {parsed.source} signal at {parsed.entry_price or parsed.close_price}",
            "details": {},
        },
    )
    published.append(
        group_event(
            _OpenGroup(
                id=group_id,
                user_id=user_id,
                symbol=symbol,
                timeframe=timeframe,
                side=SIDE,
                status=GroupStatus.WAITING,
                pyramid_count=1,
                max_pyramids=grid.max_pyramids,
                last_pyramid_candle=values["last_pyramid_candle"],
                config="",
                filled_quantity=Decimal(0),
                avg_entry_price=None,
                realized_pnl=Decimal(0),
            )
        )
    )
    return group_id


def promote_signal(*, entry) -> PositionGroup:  # type: ignore[no-untyped-def]
    """Open the group of a queued signal (the caller holds the user lock and has checked the pool)."""
    signal = entry.signal
    # The queued body was valid when it arrived; its price is the latest replacement's.
    parsed = dataclasses.replace(parse_signal(signal.body or {}), entry_price=entry.entry_price)
    stored = EngineConfig.objects.filter(user_id=entry.user_id).values_list("data", flat=True).first()
    merged, grid = effective_config(stored, symbol=entry.symbol, timeframe=entry.timeframe)
    batch = sql.Batch()
    published: list[Event] = []
    group_id = group_insert(
        batch,
        published,
        signal_id=signal.pk,
        user_id=entry.user_id,
        config_id=entry.exchange_config_id,
        symbol=entry.symbol,
        exchange_symbol="",  # taken from the market rules when the grid is computed
        timeframe=entry.timeframe,
        merged=merged,
        grid=grid,
        parsed=parsed,
        now=timezone.now(),
    )
    sql.cursor().execute(
        *batch.ending(
            f"UPDATE {sql.table(WebhookSignal)} SET group_id = %s, processing_status = %s WHERE id = %s"
            + announce_returning(),
            [group_id, ProcessingStatus.PENDING, signal.pk],
        )
    )
    events.publish_events(published)
    return PositionGroup.objects.get(pk=group_id)
