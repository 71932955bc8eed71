"""Webhook intake, the gateway: read what the decision needs, decide (`positions.rules.intake.decide`),
write what it says, in one transaction. Never calls an exchange. See docs/webhook.md#intake.

This is the product's hottest path (`make bench` `webhook_ack`: 50 alerts in flight on two cores), so
it is written for CPU:

- the alert is decoded, validated and its symbol resolved first (`alert_read`: pure Python, a
  per-process symbol index, engine configs parsed once per content);
- then one transaction (`intake_steps`, raw SQL bound and prepared by the server), written once as
  `core.sql` steps: Django's view runs them on Django's connection (`signal_receive`), the ASGI route
  on its event loop (`positions.ingress`). Three statements: read the secret, the exchange config,
  the engine config, the rate-limit count and the alert's open group, locked; write every row of the
  outcome in one statement (`sql.Batch`), the signal row last; commit. An alert with no open group (a
  new entry, a queued signal, an exit without a position) first locks its user and reads the pool and
  queue and its group again, two statements more. (A queued alert's queue upsert and an exit's queue
  removal are one statement more.)
- a signal stored as pending is announced to the dispatcher by a trigger on its table, delivered on
  commit (`positions.dispatch`); the live events are returned with the answer and sent once committed.

Idempotency is decided by the `signal_idempotency` unique constraint (INSERT ... ON CONFLICT), not by a
check-then-insert: when the key is taken, the whole transaction is undone and a duplicate row stored.
Whatever depends on the pool is decided under a row lock on the user (`queue.user_lock_statement`, the
lock promotion takes too), so the pool count and the open-group check cannot race; an alert for an open
group (a pyramid, an exit) only locks that group's row, so a trader's alerts on several symbols at one
candle close do not wait for each other.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.choices import LogLevel
from accounts.logs import log_row
from accounts.models import SystemLog, User
from core import sql
from core.validation import sanitized_text
from exchanges.models import ExchangeConfig
from exchanges.precision import unified_symbol
from exchanges.selectors import market_rules_count, market_symbol_resolve

from .. import events
from ..choices import FINAL_GROUP_STATUSES, UNSETTLED_ORDER_STATUSES, ProcessingStatus, SignalSource, SignalStatus
from ..config import effective_config_shared
from ..entry_filter import EntryQuery, entry_filter_registered, entry_filter_steps
from ..events import Event, group_event, signal_event
from ..hooks import GUARD_REFUSED, SEQUENCE_ANOMALY, EngineEvent, engine_events_announce
from ..models import DCAOrder, EngineConfig, PositionGroup, Pyramid, TradingGuard, WebhookSignal
from ..rules.guards import GuardState, sequence_anomaly
from ..rules.intake import (
    NEEDS_POOL,
    SIDE,
    AddPyramid,
    Alert,
    ExitGroup,
    IntakeContext,
    IntakeLimits,
    NeedsPool,
    OpenGroup,
    OpenNewGroup,
    Outcome,
    QueueSignal,
    Rejected,
    Skipped,
    decide,
)
from ..rules.pool import PoolState, queue_reason
from ..webhook import ParsedSignal, WebhookError, decode_body, parse_signal, redact_secret
from .opening import group_insert, pyramid_insert
from .queue import (
    pool_used_statement,
    queue_event,
    queue_remove_statement,
    queue_state_statement,
    queue_upsert_statement,
    user_lock_statement,
)

logger = logging.getLogger(__name__)

ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")
RATE_WINDOW = timedelta(minutes=1)
SYMBOL_MAX_LENGTH = 32  # the signal's and group's symbol columns


@dataclasses.dataclass(frozen=True)
class IntakeResult:
    status: int
    body: dict[str, Any]
    # What the apps above hear once the transaction has committed (a guard's refusal, a sequence anomaly):
    # the caller hands them to `hooks.engine_events_announce` after the commit (docs/processes.md#notifications).
    engine_events: tuple[EngineEvent, ...] = ()


def _error(exc: WebhookError) -> IntakeResult:
    return IntakeResult(exc.status, {"error": exc.code, "detail": exc.detail, "fields": exc.fields})


def _excerpt(raw: bytes) -> str:
    text = raw[:512].decode("utf-8", errors="replace")
    # The body may hold a secret in a non-JSON format; keep only its shape. Control characters (NUL
    # above all, which PostgreSQL refuses in text) are kept as '?', so junk is stored too.
    return "".join("*" if ch.isalnum() else "?" if ch < " " and ch not in "\t\n\r" else ch for ch in text)


class UnlistedSymbolError(WebhookError):
    """A ticker the exchange's stored market rules do not list, with the symbol derived from it (empty when
    its base and quote cannot be told apart). Refused, except an exit for the open group that symbol names:
    a group waiting for its market's rules must still be closable (docs/engine.md#group-states)."""

    def __init__(self, *args: Any, symbol: str, exchange_symbol: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = symbol
        self.exchange_symbol = exchange_symbol


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
    unified = unified_symbol(ticker)
    if market_rules_count(exchange_name=exchange_name):
        raise UnlistedSymbolError(
            400,
            "unknown_symbol",
            f"{raw!r} is not a market on {exchange_name}.",
            {"tv.symbol": [f"unknown symbol {raw!r} on {exchange_name}"]},
            symbol=unified or "",
            exchange_symbol=compact if unified else "",
        )
    if unified is not None:
        return unified, compact
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


# The open group's columns, named as `OpenGroup`'s fields.
_GROUP_FIELDS = tuple(field.name for field in dataclasses.fields(OpenGroup))
_GROUP_COLUMNS = ", ".join("config::text AS config" if name == "config" else name for name in _GROUP_FIELDS)


@functools.cache
def _statements() -> tuple[str, str]:
    """(read, pool read): see `_read` and `_pool_steps`. Built once."""
    groups = sql.table(PositionGroup)

    def open_group(user: str, config: str) -> str:
        return f"""SELECT {_GROUP_COLUMNS} FROM {groups}
                WHERE user_id = {user} AND exchange_config_id = {config} AND symbol = %s AND timeframe = %s
                  AND side = %s AND status NOT IN ({sql.literals(FINAL_GROUP_STATUSES)})
                LIMIT 1 FOR UPDATE"""

    read = f"""SELECT u.webhook_secret AS secret, u.role AS role, u.is_superuser AS superuser, ec.id AS config_id,
               (SELECT e.data::text FROM {sql.table(EngineConfig)} e WHERE e.user_id = u.id) AS engine_config,
               (SELECT count(*) FROM (
                    SELECT 1 FROM {sql.table(WebhookSignal)} s
                     WHERE s.user_id = u.id AND s.received_at > %s AND s.http_status NOT IN (401, 403, 404)
                     LIMIT %s) recent) AS recent,
               {_guard_columns()},
               g.*
          FROM {sql.table(User)} u
          LEFT JOIN LATERAL (
               SELECT c.id FROM {sql.table(ExchangeConfig)} c
                WHERE c.user_id = u.id AND c.is_enabled AND lower(c.exchange_name) = lower(%s)
                ORDER BY c.created_at LIMIT 1) ec ON true
          LEFT JOIN LATERAL ({open_group("u.id", "ec.id")}) g ON true
         WHERE u.id = %s AND u.is_active"""
    pool = f"""SELECT ({pool_used_statement()}) AS used, {queue_state_statement()}, g.*
          FROM (SELECT 1) one LEFT JOIN LATERAL ({open_group("%s", "%s")}) g ON true"""
    return read, pool


def _guard_columns() -> str:
    """The guard state (docs/engine.md#guards) as columns of the intake's one read: the pause switches,
    and the amounts a limit needs only when the user's config names that limit (so the webhook pays for
    none of them otherwise). Its one parameter, the alert's symbol, follows the rate limit's two."""
    guards, groups, engine = sql.table(TradingGuard), sql.table(PositionGroup), sql.table(EngineConfig)
    final = sql.literals(FINAL_GROUP_STATUSES)
    resting = sql.literals(UNSETTLED_ORDER_STATUSES)

    def names(key: str) -> str:
        return f"EXISTS (SELECT 1 FROM {engine} e WHERE e.user_id = u.id AND e.data::text LIKE '%%\"{key}\"%%')"

    return f"""(SELECT tg.paused FROM {guards} tg WHERE tg.user_id = u.id) AS guard_paused,
               EXISTS (SELECT 1 FROM {guards} tg WHERE tg.user_id IS NULL AND tg.paused) AS system_paused,
               CASE WHEN {names("cooldown_minutes_after_loss")} THEN (
                    SELECT max(x.closed_at) FROM {groups} x WHERE x.user_id = u.id AND x.symbol = %s
                       AND x.status = 'closed' AND x.realized_pnl < 0) END AS last_loss_close_at,
               CASE WHEN {names("daily_loss_limit_usd")} THEN (
                    SELECT coalesce(sum(x.realized_pnl), 0) FROM {groups} x
                     WHERE x.user_id = u.id AND x.status = 'closed'
                       AND x.closed_at >= greatest(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                           coalesce((SELECT tg.daily_loss_reset_at FROM {guards} tg WHERE tg.user_id = u.id),
                                    '-infinity'))) END AS realized_today,
               CASE WHEN {names("max_total_exposure_usd")} THEN (
                    (SELECT coalesce(sum(x.total_cost), 0) FROM {groups} x
                      WHERE x.user_id = u.id AND x.status NOT IN ({final}))
                  + (SELECT coalesce(sum((d.quantity - d.filled_quantity) * coalesce(d.price, 0)), 0)
                       FROM {sql.table(DCAOrder)} d JOIN {groups} x ON x.id = d.group_id
                      WHERE x.user_id = u.id AND x.status NOT IN ({final}) AND d.status IN ({resting}))
                  + (SELECT coalesce(sum(p.capital_usd), 0)
                       FROM {sql.table(Pyramid)} p JOIN {groups} x ON x.id = p.group_id
                      WHERE x.user_id = u.id AND x.status NOT IN ({final})
                        AND NOT EXISTS (SELECT 1 FROM {sql.table(DCAOrder)} d WHERE d.pyramid_id = p.id))
                  ) END AS exposure_usd"""


def _guard_state(row: sql.Row) -> GuardState:
    return GuardState(
        user_paused=bool(row["guard_paused"]),
        system_paused=bool(row["system_paused"]),
        exposure_usd=row["exposure_usd"],
        realized_today=row["realized_today"],
        last_loss_close_at=row["last_loss_close_at"],
    )


def _open_group(row: sql.Row) -> OpenGroup | None:
    if row["id"] is None:
        return None
    return OpenGroup(**{name: row[name] for name in _GROUP_FIELDS})


def _limits() -> IntakeLimits:
    return IntakeLimits(
        rate_limit_per_minute=settings.WEBHOOK_RATE_LIMIT_PER_MINUTE,
        allowed_ips=frozenset(settings.WEBHOOK_ALLOWED_IPS or ()),
    )


def _read(user_id: uuid.UUID, alert: Alert) -> sql.Steps[IntakeContext | None]:
    """Read the active user's secret, the enabled exchange config the alert names, the engine config,
    the rate-limit count and the alert's open group (locked). ``None`` when there is no such active
    user. The pool is read by `_pool_steps`, under the user lock.

    The rate limit is a sliding window over the stored requests themselves: those of the last minute
    that passed authentication.
    """
    parsed = alert.parsed
    read, _ = _statements()
    row = yield (
        read,
        [
            timezone.now() - RATE_WINDOW,
            settings.WEBHOOK_RATE_LIMIT_PER_MINUTE + 1,
            alert.symbol,  # the cooldown's (`_guard_columns`)
            (parsed.exchange if parsed else "").strip(),
            alert.symbol,
            parsed.timeframe if parsed else "",
            SIDE,
            user_id,
        ],
    )
    if row is None:
        return None
    return IntakeContext(
        secret=row["secret"],
        config_id=row["config_id"],
        engine_config=row["engine_config"],
        recent=row["recent"],
        group=_open_group(row),
        limits=_limits(),
        guards=_guard_state(row),
        role=row["role"],
        superuser=row["superuser"],
    )


def _pool_steps(context: IntakeContext, user_id: uuid.UUID, alert: Alert) -> sql.Steps[IntakeContext | None]:
    """Lock the user, then read the pool, the queue and the alert's open group again (one statement
    each). ``None`` when the user is no longer active.

    Two statements, not one: a statement reads from the snapshot it took when it started, so a read in
    the statement that waited for the lock could miss what the previous holder committed.
    """
    _, pool = _statements()
    if (yield user_lock_statement(), [user_id]) is None:
        return None
    timeframe = alert.parsed.timeframe if alert.parsed else ""
    identity = [user_id, context.config_id, alert.symbol, timeframe, SIDE]
    row = yield pool, [user_id, user_id, *identity, *identity]
    assert row is not None
    state = PoolState(used=row["used"], queued=row["queued"], queued_here=row["queued_here"])
    return dataclasses.replace(context, pool=state, group=_open_group(row))


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
            "body": redact_secret(body, secrets=_given_secret(body)) if isinstance(body, dict) else None,
            "raw_excerpt": "" if isinstance(body, dict) else _excerpt(alert.raw),
            "status": SignalStatus.REJECTED,
            "http_status": exc.status,
            "reason": sanitized_text(f"{exc.code}: {exc.detail}"[:2000]),
            "action": parsed.action if parsed else "",
            "symbol": (parsed.raw_symbol if parsed else "")[:32],
            "ack_ms": (time.perf_counter() - alert.started) * 1000,
        },
    )
    return batch.ending(statement, params)


def _given_secret(body: Any) -> tuple[str, ...]:
    """The secret the body gave (redacted wherever else it appears in the body too)."""
    secret = body.get("secret") if isinstance(body, dict) else None
    return (secret,) if isinstance(secret, str) else ()


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
        if len(symbol) > SYMBOL_MAX_LENGTH or len(exchange_symbol) > SYMBOL_MAX_LENGTH:
            raise WebhookError(
                400,
                "unknown_symbol",
                f"{parsed.raw_symbol!r} is not a market symbol.",
                {"tv.symbol": [f"is longer than {SYMBOL_MAX_LENGTH} characters"]},
            )
    except WebhookError as exc:
        if body is None:
            # Junk that decoded (NUL, lone surrogates, deep nesting) is stored as far as it can be.
            return dataclasses.replace(alert, body=exc.stored_body, body_error=exc)
        if parsed is None:
            return dataclasses.replace(alert, body=body, schema_error=exc)
        if isinstance(exc, UnlistedSymbolError) and max(len(exc.symbol), len(exc.exchange_symbol)) <= SYMBOL_MAX_LENGTH:
            # The derived symbol finds the alert's open group, which an exit may still close (`decide`).
            return dataclasses.replace(
                alert,
                body=body,
                parsed=parsed,
                symbol=exc.symbol,
                exchange_symbol=exc.exchange_symbol,
                symbol_error=exc,
            )
        return dataclasses.replace(alert, body=body, parsed=parsed, symbol_error=exc)
    return dataclasses.replace(alert, body=body, parsed=parsed, symbol=symbol, exchange_symbol=exchange_symbol)


def signal_receive(*, user_id: str, raw: bytes, content_type: str, ip: str | None) -> IntakeResult:
    """Everything the webhook does, on this thread's Django connection; every request leaves a
    `WebhookSignal` row. Its live events are sent once it has committed."""
    result, committed = sql.run(intake_steps(alert_read(user_id=user_id, raw=raw, content_type=content_type, ip=ip)))
    events.publish_events(committed)
    engine_events_announce(result.engine_events)
    return result


def strategy_signal_receive(*, user_id: str, body: dict[str, Any]) -> IntakeResult:
    """A built-in strategy's signal (docs/strategies.md#live): `body` is an alert in the webhook's format
    (with the user's secret), stored with ``source=strategy``. It goes through the same `intake_steps` as a
    webhook (checks, dedupe by trade id, guards, pool, queue, events); only the IP allowlist, which is
    about HTTP clients, does not apply."""
    raw = json.dumps({**body, "source": SignalSource.STRATEGY.value}, default=str).encode()
    alert = alert_read(user_id=user_id, raw=raw, content_type="application/json", ip=None)
    result, committed = sql.run(intake_steps(dataclasses.replace(alert, internal=True)))
    events.publish_events(committed)
    engine_events_announce(result.engine_events)
    return result


def intake_steps(alert: Alert) -> sql.Steps[tuple[IntakeResult, list[Event]]]:
    """The intake's database work as `core.sql` steps, one transaction: read and lock (`_read`), decide,
    and store what the decision says. Returns the answer and the live events to send once committed."""
    wanted = _user_uuid(alert.user_id)
    context = None
    if alert.envelope_error is None and wanted is not None:
        context = yield from _read(wanted, alert)
    decision = decide(context, alert, timezone.now())
    if decision is NEEDS_POOL:
        # No open group: the outcome depends on the pool (or the queue), so take the user lock and
        # read again. A group opened meanwhile by an alert of the same identity is seen now.
        assert context is not None and wanted is not None
        context = yield from _pool_steps(context, wanted, alert)
        decision = decide(context, alert, timezone.now())  # None: deactivated meanwhile, refused as unknown
    assert not isinstance(decision, NeedsPool)
    if isinstance(decision, Rejected):
        yield _rejection(alert, wanted if decision.user_known else None, decision.error)
        return _error(decision.error), []
    assert context is not None and wanted is not None and alert.parsed is not None
    if isinstance(decision, OpenNewGroup | AddPyramid | QueueSignal) and entry_filter_registered() is not None:
        decision = yield from _entry_filtered(decision, context, alert, alert.parsed, wanted)
    return (yield from _store(decision, alert, alert.parsed, wanted, context))


def _entry_filtered(
    decision: OpenNewGroup | AddPyramid | QueueSignal,
    context: IntakeContext,
    alert: Alert,
    parsed: ParsedSignal,
    user_id: uuid.UUID,
) -> sql.Steps[Outcome]:
    """An entry, put to the entry filter when the user's config enables it (`ml_filter_enabled`,
    docs/ml.md#filter). A refused entry is stored ignored with the filter's reason, as a guard's refusal is."""
    merged, _ = effective_config_shared(context.engine_config, symbol=alert.symbol, timeframe=parsed.timeframe)
    if not merged["ml_filter_enabled"]:
        return decision
    at = parsed.signal_time or timezone.now()
    query = EntryQuery(
        user_id=user_id,
        symbol=alert.symbol,
        timeframe=parsed.timeframe,
        at_ms=int(at.timestamp() * 1000),
        threshold=float(merged["ml_filter_threshold"]),
    )
    verdict = yield from entry_filter_steps(query)
    if verdict.allowed:
        return decision
    group_id = decision.group.id if isinstance(decision, AddPyramid) else None
    note = f"Entry refused by the ML filter: {verdict.reason}"
    # Told like a guard's refusal (the `guard_refused` engine event, docs/processes.md#notifications).
    status = SignalStatus.IGNORED
    return Skipped(decision.classification, status, verdict.reason, group_id, note=note, guard="ml_filter")


@dataclasses.dataclass
class _Stored:
    """How the signal row ends (the batch's last statement) and the answer."""

    classification: str
    status: str = SignalStatus.ACCEPTED
    http_status: int = 202
    reason: str = ""
    group_id: uuid.UUID | None = None
    pending: bool = False  # the worker has something to do: the row is stored `pending`
    keep_idempotency_key: bool = True
    message: str = ""


def _store(
    decision: Outcome, alert: Alert, parsed: ParsedSignal, user_id: uuid.UUID, context: IntakeContext
) -> sql.Steps[tuple[IntakeResult, list[Event]]]:
    """Write what `decision` says in one statement (`sql.Batch`), the signal row last: the unique
    constraint on its idempotency key decides whether all of it stands. When the key is taken, all of it
    is rolled back and a duplicate row stored instead."""
    now = timezone.now()
    signal_id = uuid.uuid4()
    batch = sql.Batch()
    published: list[Event] = []
    match decision:
        case Skipped():
            # A second pyramid in one candle is a duplicate of the first, not of this trade id: a later
            # alert with the same trade id and timestamp must not collide with it.
            stored = _Stored(
                decision.classification,
                status=decision.status,
                http_status=200,
                reason=decision.reason,
                group_id=decision.group_id,
                keep_idempotency_key=decision.status != SignalStatus.DUPLICATE,
            )
            if decision.note:
                batch.insert(
                    SystemLog,
                    log_row(
                        LogLevel.INFO,
                        "WEBHOOK",
                        decision.note,
                        user=user_id,
                        details={"group_id": str(decision.group_id), "signal_id": str(signal_id)},
                    ),
                )
        case ExitGroup():
            removed = (
                yield queue_remove_statement(
                    user_id=user_id,
                    exchange_config_id=context.config_id,
                    symbol=alert.symbol,
                    timeframe=parsed.timeframe,
                    side=SIDE,
                )
            ) is not None
            if removed:
                published.append(queue_event(user_id))
            stored = _Stored(
                decision.classification,
                reason=decision.reason,
                group_id=decision.group_id,
                pending=decision.group_id is not None,
                message="Position exit pending execution" if decision.group_id else "Queued signal removed",
            )
        case AddPyramid():
            group = decision.group
            pyramid_insert(batch, group_id=group.id, signal_id=signal_id, plan=decision.pyramid)
            batch.add(
                f"UPDATE {sql.table(PositionGroup)} SET pyramid_count = %s, last_pyramid_candle = %s,"
                " updated_at = %s WHERE id = %s",
                [decision.pyramid.index + 1, decision.candle, now, group.id],
            )
            published.append(group_event(dataclasses.replace(group, pyramid_count=decision.pyramid.index + 1)))
            stored = _Stored(
                decision.classification,
                group_id=group.id,
                pending=True,
                message=f"Pyramid {decision.pyramid.index} added and pending execution",
            )
        case QueueSignal():
            assert context.config_id is not None
            row = yield queue_upsert_statement(
                user_id=user_id,
                exchange_config_id=context.config_id,
                symbol=alert.symbol,
                timeframe=parsed.timeframe,
                side=SIDE,
                signal_id=signal_id,
                entry_price=decision.entry_price,
            )
            assert row is not None
            published.append(queue_event(user_id, symbol=alert.symbol))
            stored = _Stored(
                decision.classification,
                reason=queue_reason(row["replacement_count"]),
                message="Execution pool is full; signal queued",
            )
            if decision.guard:  # exposure_action: queue (docs/engine.md#guards)
                count = row["replacement_count"]
                stored.reason = f"{decision.guard_reason}; " + (queue_reason(count) if count else "queued")
                stored.message = f"Queued by the {decision.guard} guard: {decision.guard_reason}"
        case OpenNewGroup():
            group_id = group_insert(
                batch,
                published,
                plan=decision,
                signal_id=signal_id,
                user_id=user_id,
                config_id=context.config_id,
                symbol=alert.symbol,
                exchange_symbol=alert.exchange_symbol,
                timeframe=parsed.timeframe,
                opened_by=parsed.source,
                now=now,
            )
            stored = _Stored(
                decision.classification,
                group_id=group_id,
                pending=True,
                message="Position group created and pending execution",
            )
    tv = parsed.body.get("tv") if isinstance(parsed.body, dict) else None
    anomaly = sequence_anomaly(
        prev_market_position=str(tv.get("prev_market_position") or "") if isinstance(tv, dict) else None,
        is_exit=parsed.is_exit,
        has_group=context.group is not None,
        queued=bool(context.pool and context.pool.queued_here),
    )
    if anomaly is not None:
        # A missed alert: flagged on the stored signal and logged, still handled (docs/engine.md#guards).
        # The process log, not a SystemLog row: the flag is on the signal row already, and the webhook's
        # one write statement stays as it was.
        logger.warning("sequence anomaly: user %s %s: %s (signal %s)", user_id, alert.symbol, anomaly, signal_id)
    values = {
        "id": signal_id,
        "user_id": user_id,
        "exchange_config_id": context.config_id,
        "flags": ["sequence_anomaly"] if anomaly is not None else [],
        "received_at": now,
        "source_ip": alert.ip,
        "source": parsed.source if parsed.source in SignalSource.values else SignalSource.OTHER,
        "body": redact_secret(parsed.body, secrets=(context.secret, *_given_secret(parsed.body))),
        "trade_id": parsed.trade_id,
        "tv_timestamp": parsed.tv_timestamp,
        "action": parsed.action,
        "intent_type": parsed.intent_type,
        "symbol": alert.symbol,
        "timeframe": parsed.timeframe,
        "side": SIDE,
        "entry_price": parsed.entry_price or parsed.close_price,
        "order_size": parsed.order_size,
        "idempotency_key": _idempotency_key(parsed) if stored.keep_idempotency_key else None,
        "classification": stored.classification,
        "status": stored.status,
        "http_status": stored.http_status,
        "reason": stored.reason,
        "group_id": stored.group_id,
        "processing_status": ProcessingStatus.PENDING if stored.pending else ProcessingStatus.NONE,
        "ack_ms": (time.perf_counter() - alert.started) * 1000,
    }
    # A pending signal is announced to the dispatcher by its table's trigger (NOTIFY is delivered on
    # commit): no enqueue call on the web process (see `positions.dispatch`).
    statement, params = sql.insert_statement(WebhookSignal, values)
    inserted = yield batch.ending(
        statement + " ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
        params,
    )
    if inserted is not None:
        notices = _engine_events(decision, stored, anomaly, user_id=user_id, signal_id=signal_id, alert=alert)
        return dataclasses.replace(_answer(signal_id, stored), engine_events=notices), [
            *published,
            signal_event(
                signal_id=signal_id,
                user_id=user_id,
                symbol=alert.symbol,
                action=parsed.action,
                classification=stored.classification,
                status=stored.status,
                reason=stored.reason,
                group_id=stored.group_id,
            ),
        ]
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


def _engine_events(
    decision: Outcome,
    stored: _Stored,
    anomaly: str | None,
    *,
    user_id: uuid.UUID,
    signal_id: uuid.UUID,
    alert: Alert,
) -> tuple[EngineEvent, ...]:
    """The stored signal's engine events: a guard that refused (or queued) it, a sequence anomaly."""
    parsed = alert.parsed
    assert parsed is not None
    base = {
        "symbol": alert.symbol,
        "timeframe": parsed.timeframe,
        "action": parsed.action,
        "source": parsed.source,
        "signal_id": str(signal_id),
        "classification": stored.classification,
    }
    group_id = str(stored.group_id or "")
    found: list[EngineEvent] = []
    guard = decision.guard if isinstance(decision, Skipped | QueueSignal) else ""
    if guard:
        reason = decision.guard_reason if isinstance(decision, QueueSignal) else stored.reason
        outcome = "queued" if isinstance(decision, QueueSignal) else "ignored"
        data = {**base, "guard": guard, "reason": reason, "outcome": outcome}
        found.append(EngineEvent(kind=GUARD_REFUSED, user_id=str(user_id), group_id=group_id, data=data))
    if anomaly is not None:
        data = {**base, "reason": anomaly}
        found.append(EngineEvent(kind=SEQUENCE_ANOMALY, user_id=str(user_id), group_id=group_id, data=data))
    return tuple(found)


def _answer(signal_id: uuid.UUID, stored: _Stored) -> IntakeResult:
    if stored.http_status == 200:
        return IntakeResult(200, {"status": stored.status, "reason": stored.reason, "signal_id": str(signal_id)})
    return IntakeResult(
        202,
        {
            "signal_id": str(signal_id),
            "classification": stored.classification,
            "status": "accepted",
            "group_id": str(stored.group_id) if stored.group_id else None,
            "message": stored.message,
        },
    )
