"""The webhook intake's decision: what an alert does, from what the intake's transaction read.

`decide(context, alert, now) -> Outcome` is the whole rule book of docs/webhook.md#classification and
docs/webhook.md#errors: the checks in their order (user, IP, JSON, secret, rate limit, schema, exchange,
symbol), then the classification (new entry, pyramid, queued, exit) with its skips (duplicate candle,
max pyramids, closing group, full queue). It reads plain data and returns plain data; the gateway
(`positions.services.intake`) reads the context under the right locks and writes what the outcome
says. One outcome needs more reading first: an alert without an open group depends on the pool, which
the gateway reads under the user's lock before deciding again (`NEEDS_POOL`).
"""

from __future__ import annotations

import functools
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from accounts.choices import Role
from accounts.roles import role_may_trade, trade_refusal
from core.jsontypes import JSONValue

from ..choices import GroupStatus, SignalClassification, SignalStatus
from ..config import effective_config_shared
from ..grid import GridConfig, GridLevel, capital_for_pyramid, levels_for_pyramid
from ..webhook import ParsedSignal, WebhookError, candle_start
from .guards import GuardSettings, GuardState, guard_settings, new_group_refusal, pause_refusal, stale_alert
from .pool import PoolState, pool_has_room, queue_admits

SIDE: Final = "long"  # spot: every group is a long


@dataclass(frozen=True, slots=True)
class OpenGroup:
    """The open group of the alert's identity, as the intake read it (locked)."""

    id: uuid.UUID
    user_id: uuid.UUID
    symbol: str
    timeframe: str
    side: str
    status: str
    pyramid_count: int
    max_pyramids: int
    last_pyramid_candle: datetime | None
    config: str  # the group's config snapshot, as JSON text
    filled_quantity: Decimal
    avg_entry_price: Decimal | None
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """The deployment's webhook settings."""

    rate_limit_per_minute: int
    allowed_ips: frozenset[str] = frozenset()  # empty: every address


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What the intake's transaction read about the addressed (active) user."""

    secret: str
    config_id: uuid.UUID | None  # the enabled exchange config the alert names
    engine_config: str | None  # the user's stored engine config, as JSON text
    recent: int  # authenticated requests of the last minute (capped just above the limit)
    group: OpenGroup | None  # the open group of the alert's identity
    limits: IntakeLimits
    pool: PoolState | None = None  # read under the user's lock, only when the outcome depends on it
    guards: GuardState = GuardState()  # pause switches and the amounts the user's limits need (rules.guards)
    role: str = Role.TRADER  # the user's role and superuser flag: who may trade (accounts.roles)
    superuser: bool = False


@dataclass(frozen=True, slots=True)
class Alert:
    """A request as it was decoded before the database: the body, the parsed signal and the resolved
    symbol, or the first error found on the way (each kind is reported at its place in the order)."""

    user_id: str
    raw: bytes
    ip: str | None
    started: float  # time.perf_counter() when the request was read
    body: JSONValue = None
    parsed: ParsedSignal | None = None
    symbol: str = ""
    exchange_symbol: str = ""
    envelope_error: WebhookError | None = None  # size, media type: refused before anything else
    body_error: WebhookError | None = None  # JSON
    schema_error: WebhookError | None = None
    # With an unlisted market's error, `symbol` is the one derived from the ticker (or empty).
    symbol_error: WebhookError | None = None
    # Built in this process by a strategy (`intake.strategy_signal_receive`), not received over HTTP:
    # the webhook's IP allowlist does not apply to it (docs/strategies.md#live).
    internal: bool = False


# Outcomes ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    """Refused: stored with the error, answered with it."""

    error: WebhookError
    user_known: bool  # the addressed user exists and is active: the stored row names it


@dataclass(frozen=True, slots=True)
class Skipped:
    """Accepted as a request but nothing to do: answered 200 `duplicate` or `ignored`."""

    classification: str
    status: str  # SignalStatus.DUPLICATE or IGNORED
    reason: str
    group_id: uuid.UUID | None = None
    note: str = ""  # a line for the trader's log, when the skip is worth one
    guard: str = ""  # the guard that refused it (`rules.guards.GuardRefusal.guard`), when one did


@dataclass(frozen=True, slots=True)
class PyramidPlan:
    """A pyramid to store: its grid is computed from its own entry price when the signal is processed."""

    index: int
    entry_price: Decimal | None
    capital_usd: Decimal
    levels: tuple[GridLevel, ...]
    entry_order_type: str


@dataclass(frozen=True, slots=True)
class OpenNewGroup:
    """A new group, waiting for its orders, with pyramid 0."""

    config: Mapping[str, JSONValue]  # the effective config, snapshotted on the group
    tp_mode: str
    max_pyramids: int
    candle: datetime
    pyramid: PyramidPlan
    classification: str = SignalClassification.NEW_ENTRY


@dataclass(frozen=True, slots=True)
class AddPyramid:
    group: OpenGroup
    candle: datetime
    pyramid: PyramidPlan
    classification: str = SignalClassification.PYRAMID


@dataclass(frozen=True, slots=True)
class QueueSignal:
    """The pool is full: the signal waits in the queue (or replaces its identity's queued signal)."""

    entry_price: Decimal | None
    replaces: bool
    classification: str = SignalClassification.QUEUED
    guard: str = ""  # queued by a guard (`exposure_action: queue`) rather than by a full pool
    guard_reason: str = ""


@dataclass(frozen=True, slots=True)
class ExitGroup:
    """Exit the open group (`group_id`), or, without one, drop the identity's queued signal."""

    group_id: uuid.UUID | None
    reason: str = ""
    classification: str = SignalClassification.EXIT


@dataclass(frozen=True, slots=True)
class NeedsPool:
    """Decide again once the pool has been read under the user's lock."""


NEEDS_POOL: Final = NeedsPool()

type Outcome = Rejected | Skipped | OpenNewGroup | AddPyramid | QueueSignal | ExitGroup


def decide(context: IntakeContext | None, alert: Alert, now: datetime) -> Outcome | NeedsPool:
    """What `alert` does, given what the transaction read (`None`: no such active user, or nothing read
    because the request was refused before the database)."""
    if alert.envelope_error is not None:
        return Rejected(alert.envelope_error, user_known=False)
    if context is None:
        return Rejected(WebhookError(404, "not_found", "No such webhook URL."), user_known=False)
    try:
        parsed = _admit(context, alert)
    except WebhookError as exc:
        return Rejected(exc, user_known=True)
    lag = _user_guards(context, alert, parsed).max_alert_lag_seconds
    stale = stale_alert(signal_time=parsed.signal_time, now=now, max_lag_seconds=lag)
    if stale is not None:
        kind = SignalClassification.EXIT if parsed.is_exit else SignalClassification.NONE
        return Skipped(
            kind, SignalStatus.IGNORED, stale.message, note=f"Alert ignored: {stale.message}", guard=stale.guard
        )
    group = context.group
    if parsed.is_exit:
        if group is None:
            if context.pool is None:
                return NEEDS_POOL
            return _exit_without_group(context.pool)
        if group.status == GroupStatus.CLOSING:
            return Skipped(SignalClassification.EXIT, SignalStatus.IGNORED, "the position is already closing", group.id)
        return ExitGroup(group.id)
    if group is not None:
        return _pyramid(group, parsed, now, context=context, alert=alert)
    if context.pool is None:
        return NEEDS_POOL
    return _new_group(context, context.pool, alert, parsed, now)


def _admit(context: IntakeContext, alert: Alert) -> ParsedSignal:
    """The checks after the user is known, in their order; the parsed signal when all pass."""
    if context.limits.allowed_ips and not alert.internal and alert.ip not in context.limits.allowed_ips:
        raise WebhookError(403, "ip_not_allowed", "Requests from this address are not accepted.")
    if alert.body_error is not None:
        raise alert.body_error
    secret_check(alert.body, context.secret)
    if not role_may_trade(context.role, is_superuser=context.superuser):
        refusal = trade_refusal(context.role)
        raise WebhookError(403, "role_cannot_trade", refusal, {"user": [refusal]})
    if context.recent >= context.limits.rate_limit_per_minute:
        raise WebhookError(429, "throttled", "Too many webhooks for this user; slow down.")
    if alert.schema_error is not None:
        raise alert.schema_error
    parsed = alert.parsed
    assert parsed is not None  # decoded without a schema error
    if context.config_id is None:
        raise WebhookError(
            400,
            "unknown_exchange",
            f"No enabled exchange config named {parsed.exchange!r}.",
            {"tv.exchange": [f"no enabled exchange config named {parsed.exchange!r}"]},
        )
    # A market the exchange does not list refuses the alert, except an exit for the open group its symbol
    # names: a group waiting for its market's rules is still closed by its exit (docs/engine.md#group-states).
    if alert.symbol_error is not None and not (parsed.is_exit and alert.symbol and context.group is not None):
        raise alert.symbol_error
    return parsed


def secret_check(body: JSONValue, expected: str) -> None:
    """401 without a secret, 403 with a wrong one (compared in constant time)."""
    secret = body.get("secret") if isinstance(body, dict) else None
    if secret is None or secret == "":
        raise WebhookError(401, "secret_missing", "The body has no secret.", {"secret": ["is required"]})
    if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise WebhookError(403, "secret_invalid", "The secret is wrong.", {"secret": ["does not match"]})


def _exit_without_group(pool: PoolState) -> Outcome:
    if pool.queued_here:
        return ExitGroup(None, reason="the queued entry for this position was removed")
    return Skipped(SignalClassification.EXIT, SignalStatus.IGNORED, "no open position for this symbol and timeframe")


def signal_candle(parsed: ParsedSignal, now: datetime) -> datetime:
    """The candle of the group's timeframe that the signal belongs to (its own time, else now)."""
    return candle_start(parsed.signal_time or now, parsed.timeframe)


def entry_price(parsed: ParsedSignal) -> Decimal | None:
    return parsed.entry_price or parsed.close_price


def pyramid_plan(grid: GridConfig, index: int, parsed: ParsedSignal, *, use_signal_size: bool) -> PyramidPlan:
    """Pyramid `index`'s capital and levels; the signal's own order size when the config says so."""
    capital = capital_for_pyramid(grid, index)
    if use_signal_size and parsed.order_size:
        capital = parsed.order_size
    return PyramidPlan(
        index=index,
        entry_price=entry_price(parsed),
        capital_usd=capital,
        levels=levels_for_pyramid(grid, index),
        entry_order_type=grid.entry_order_type,
    )


def _user_config(context: IntakeContext, alert: Alert, parsed: ParsedSignal) -> Mapping[str, JSONValue]:
    """The user's effective config for the alert's symbol now (guards read it; memoized by content)."""
    merged, _ = effective_config_shared(context.engine_config, symbol=alert.symbol, timeframe=parsed.timeframe)
    return merged


def _user_guards(context: IntakeContext, alert: Alert, parsed: ParsedSignal) -> GuardSettings:
    """The guard settings of `_user_config` (read at every alert; memoized by the same content)."""
    return _guards_cached(context.engine_config or "", alert.symbol, parsed.timeframe)


@functools.lru_cache(maxsize=512)
def _guards_cached(engine_config: str, symbol: str, timeframe: str) -> GuardSettings:
    merged, _ = effective_config_shared(engine_config, symbol=symbol, timeframe=timeframe)
    return guard_settings(merged)


def _pyramid(group: OpenGroup, parsed: ParsedSignal, now: datetime, *, context: IntakeContext, alert: Alert) -> Outcome:
    candle = signal_candle(parsed, now)
    skipped = None
    guard = ""
    paused = pause_refusal(context.guards, new_group=False, settings=_user_guards(context, alert, parsed))
    if paused is not None:
        skipped, guard = (SignalStatus.IGNORED, paused.message), paused.guard
    elif group.status == GroupStatus.CLOSING:
        skipped = (SignalStatus.IGNORED, "the position is closing")
    elif group.last_pyramid_candle == candle:
        skipped = (SignalStatus.DUPLICATE, f"a pyramid was already added in this {group.timeframe} candle")
    elif group.pyramid_count >= group.max_pyramids:
        skipped = (SignalStatus.IGNORED, f"max pyramids reached ({group.max_pyramids})")
    if skipped is not None:
        status, reason = skipped
        note = f"Pyramid {status}: {reason}"
        return Skipped(SignalClassification.PYRAMID, status, reason, group.id, note=note, guard=guard)
    merged, grid = effective_config_shared(group.config, symbol=group.symbol, timeframe=group.timeframe)
    plan = pyramid_plan(grid, group.pyramid_count, parsed, use_signal_size=bool(merged["use_signal_size"]))
    return AddPyramid(group=group, candle=candle, pyramid=plan)


def _new_group(context: IntakeContext, pool: PoolState, alert: Alert, parsed: ParsedSignal, now: datetime) -> Outcome:
    merged, grid = effective_config_shared(context.engine_config, symbol=alert.symbol, timeframe=parsed.timeframe)
    refusal = new_group_refusal(
        context.guards,
        _user_guards(context, alert, parsed),  # guard_settings(merged), memoized
        symbol=alert.symbol,
        capital=capital_for_pyramid(grid, 0),
        now=now,
    )
    if refusal is not None and not (refusal.queue and queue_admits(state=pool, max_size=merged["queue_max_size"])):
        note = f"Entry refused by the {refusal.guard} guard: {refusal.reason}"
        return Skipped(
            SignalClassification.NEW_ENTRY, SignalStatus.IGNORED, refusal.message, note=note, guard=refusal.guard
        )
    if refusal is not None:  # exposure_action: queue
        return QueueSignal(
            entry_price=entry_price(parsed),
            replaces=pool.queued_here,
            guard=refusal.guard,
            guard_reason=refusal.message,
        )
    if not pool_has_room(used=pool.used, max_open_groups=merged["max_open_groups"]):
        max_size = merged["queue_max_size"]
        if not queue_admits(state=pool, max_size=max_size):
            return Skipped(SignalClassification.QUEUED, SignalStatus.IGNORED, f"the waiting queue is full ({max_size})")
        return QueueSignal(entry_price=entry_price(parsed), replaces=pool.queued_here)
    return open_group_plan(merged, grid, parsed, now)


def open_group_plan(
    merged: Mapping[str, JSONValue], grid: GridConfig, parsed: ParsedSignal, now: datetime
) -> OpenNewGroup:
    """A new group under the effective config `merged` (and its parsed `grid`), with pyramid 0."""
    return OpenNewGroup(
        config=merged,
        tp_mode=grid.tp_mode,
        max_pyramids=grid.max_pyramids,
        candle=signal_candle(parsed, now),
        pyramid=pyramid_plan(grid, 0, parsed, use_signal_size=bool(merged["use_signal_size"])),
    )
