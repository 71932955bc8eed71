"""Webhook intake: validate, classify and persist a signal in one transaction. Never calls an exchange."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.logs import log_info, log_warning
from accounts.models import User
from exchanges.models import ExchangeConfig
from exchanges.selectors import market_rule_resolve, market_rules_count

from ..choices import GroupStatus, ProcessingStatus, SignalClassification, SignalSource, SignalStatus
from ..config import effective_config
from ..events import publish_group, publish_signal
from ..grid import capital_for_pyramid
from ..models import EngineConfig, PositionGroup, Pyramid, WebhookSignal
from ..webhook import ParsedSignal, WebhookError, candle_start, decode_body, parse_signal, redact_secret

KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "USD", "TRY")
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: dict[str, Any]


def _error(exc: WebhookError) -> IntakeResult:
    return IntakeResult(exc.status, {"error": exc.code, "detail": exc.detail, "fields": exc.fields})


def _store_rejection(
    *,
    user: User | None,
    ip: str | None,
    exc: WebhookError,
    body: Any,
    raw: bytes,
    started: float,
    parsed: ParsedSignal | None = None,
) -> None:
    WebhookSignal.objects.create(
        user=user,
        source_ip=ip,
        body=redact_secret(body) if isinstance(body, dict) else None,
        raw_excerpt="" if isinstance(body, dict) else _excerpt(raw),
        status=SignalStatus.REJECTED,
        http_status=exc.status,
        reason=f"{exc.code}: {exc.detail}"[:2000],
        action=parsed.action if parsed else "",
        symbol=(parsed.raw_symbol if parsed else "")[:32],
        ack_ms=(time.perf_counter() - started) * 1000,
    )


def _excerpt(raw: bytes) -> str:
    text = raw[:512].decode("utf-8", errors="replace")
    # The body may hold a secret in a non-JSON format; keep only its shape.
    return "".join("*" if ch.isalnum() else ch for ch in text)


def _rate_limited(user_id: Any) -> bool:
    """Fixed one-minute window per user in Redis, shared by every web process (one round trip)."""
    from exchanges.kv import kv_key, redis_client

    key = kv_key("webhook-rate", user_id, int(time.time() // 60))
    pipe = redis_client().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 90)
    count, _ = pipe.execute()
    return int(count) > settings.WEBHOOK_RATE_LIMIT_PER_MINUTE


def resolve_symbol(config: ExchangeConfig, raw: str) -> tuple[str, str]:
    """(unified symbol, exchange symbol) from TradingView's ticker, using the cached market rules.

    With no rules cached for this exchange yet, the unified form is derived from known quote assets and
    the market rules are checked when the signal is processed (the group waits until then).
    """
    ticker = raw.split(":")[-1].strip().upper().removesuffix(".P")
    compact = ticker.replace("/", "").replace("-", "").replace("_", "")
    match = market_rule_resolve(exchange_name=config.exchange_name, raw=ticker)
    if match is not None:
        return match.symbol, match.exchange_symbol
    if market_rules_count(exchange_name=config.exchange_name):
        raise WebhookError(
            400,
            "unknown_symbol",
            f"{raw!r} is not a market on {config.exchange_name}.",
            {"tv.symbol": [f"unknown symbol {raw!r} on {config.exchange_name}"]},
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


def signal_receive(*, user_id: str, raw: bytes, content_type: str, ip: str | None) -> IntakeResult:
    """Everything the webhook view does, in order; every request leaves a `WebhookSignal` row."""
    started = time.perf_counter()
    user: User | None = None
    body: Any = None
    parsed: ParsedSignal | None = None
    try:
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
        try:
            user = User.objects.filter(pk=uuid.UUID(user_id), is_active=True).first()
        except ValueError:
            user = None
        if user is None:
            raise WebhookError(404, "not_found", "No such webhook URL.")
        if settings.WEBHOOK_ALLOWED_IPS and ip not in settings.WEBHOOK_ALLOWED_IPS:
            raise WebhookError(403, "ip_not_allowed", "Requests from this address are not accepted.")
        body = decode_body(raw)
        secret = body.get("secret")
        if secret is None or secret == "":
            raise WebhookError(401, "secret_missing", "The body has no secret.", {"secret": ["is required"]})
        if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), user.webhook_secret.encode()):
            raise WebhookError(403, "secret_invalid", "The secret is wrong.", {"secret": ["does not match"]})
        if _rate_limited(user.pk):
            raise WebhookError(429, "throttled", "Too many webhooks for this user; slow down.")
        parsed = parse_signal(body)
        config = ExchangeConfig.objects.filter(
            user=user, exchange_name__iexact=parsed.exchange, is_enabled=True
        ).first()
        if config is None:
            raise WebhookError(
                400,
                "unknown_exchange",
                f"No enabled exchange config named {parsed.exchange!r}.",
                {"tv.exchange": [f"no enabled exchange config named {parsed.exchange!r}"]},
            )
        symbol, exchange_symbol = resolve_symbol(config, parsed.raw_symbol)
    except WebhookError as exc:
        _store_rejection(user=user, ip=ip, exc=exc, body=body, raw=raw, started=started, parsed=parsed)
        if exc.status in (401, 403):
            log_warning("WEBHOOK", f"Webhook refused: {exc.detail}", user=user, ip=ip)
        return _error(exc)
    return _classify_and_store(
        user=user, config=config, parsed=parsed, symbol=symbol, exchange_symbol=exchange_symbol, ip=ip, started=started
    )


def _classify_and_store(
    *,
    user: User,
    config: ExchangeConfig,
    parsed: ParsedSignal,
    symbol: str,
    exchange_symbol: str,
    ip: str | None,
    started: float,
) -> IntakeResult:
    now = timezone.now()
    side = "long"
    with transaction.atomic():
        # One user's signals are classified one at a time: the pool count and the open-group check
        # must not race. The idempotency decision itself is the unique constraint below. NO KEY UPDATE,
        # not UPDATE: a worker that holds one of this user's group rows may insert rows that reference
        # the user (logs) and must not wait for us while we wait for that group (a deadlock).
        User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
        signal = WebhookSignal(
            user=user,
            exchange_config=config,
            received_at=now,
            source_ip=ip,
            source=parsed.source if parsed.source in SignalSource.values else SignalSource.OTHER,
            body=redact_secret(parsed.body),
            trade_id=parsed.trade_id,
            tv_timestamp=parsed.tv_timestamp,
            action=parsed.action,
            intent_type=parsed.intent_type,
            symbol=symbol,
            timeframe=parsed.timeframe,
            side=side,
            entry_price=parsed.entry_price or parsed.close_price,
            order_size=parsed.order_size,
            status=SignalStatus.ACCEPTED,
            http_status=202,
            idempotency_key=_idempotency_key(parsed),
        )
        try:
            with transaction.atomic():
                signal.save()
        except IntegrityError:
            signal.pk = uuid.uuid4()
            signal.idempotency_key = None
            signal.status, signal.http_status = SignalStatus.DUPLICATE, 200
            signal.reason = "the same trade_id, timestamp and action was already received"
            signal.ack_ms = (time.perf_counter() - started) * 1000
            signal.save()
            return IntakeResult(200, {"status": "duplicate", "reason": signal.reason, "signal_id": str(signal.pk)})

        identity = {
            "user": user,
            "exchange_config": config,
            "symbol": symbol,
            "timeframe": parsed.timeframe,
            "side": side,
        }
        group = (
            PositionGroup.objects.select_for_update()
            .filter(**identity)
            .exclude(status__in=[GroupStatus.CLOSED, GroupStatus.FAILED])
            .first()
        )
        if parsed.is_exit:
            result = _classify_exit(signal, group, identity)
        elif group is not None:
            result = _classify_pyramid(signal, group, parsed, now)
        else:
            result = _classify_new(signal, user, config, parsed, symbol, exchange_symbol, now)
        signal.ack_ms = (time.perf_counter() - started) * 1000
        signal.save()
        publish_signal(signal)
        if signal.processing_status == ProcessingStatus.PENDING:
            from ..tasks import process_signal

            signal_id = str(signal.pk)
            transaction.on_commit(lambda: process_signal.delay(signal_id))
    return result


def _classify_exit(signal: WebhookSignal, group: PositionGroup | None, identity: dict[str, Any]) -> IntakeResult:
    from riskengine.services import queue_remove

    signal.classification = SignalClassification.EXIT
    dropped = queue_remove(**identity)
    if group is None:
        if dropped:
            signal.reason = "the queued entry for this position was removed"
            return IntakeResult(
                202,
                {
                    "signal_id": str(signal.pk),
                    "classification": "exit",
                    "status": "accepted",
                    "group_id": None,
                    "message": "Queued signal removed",
                },
            )
        signal.status, signal.http_status = SignalStatus.IGNORED, 200
        signal.reason = "no open position for this symbol and timeframe"
        return IntakeResult(200, {"status": "ignored", "reason": signal.reason, "signal_id": str(signal.pk)})
    signal.group = group
    if group.status == GroupStatus.CLOSING:
        signal.status, signal.http_status = SignalStatus.IGNORED, 200
        signal.reason = "the position is already closing"
        return IntakeResult(200, {"status": "ignored", "reason": signal.reason, "signal_id": str(signal.pk)})
    signal.processing_status = ProcessingStatus.PENDING
    return IntakeResult(
        202,
        {
            "signal_id": str(signal.pk),
            "classification": "exit",
            "status": "accepted",
            "group_id": str(group.pk),
            "message": "Position exit pending execution",
        },
    )


def _candle(parsed: ParsedSignal, now):  # type: ignore[no-untyped-def]
    return candle_start(parsed.signal_time or now, parsed.timeframe)


def _classify_pyramid(signal: WebhookSignal, group: PositionGroup, parsed: ParsedSignal, now) -> IntakeResult:  # type: ignore[no-untyped-def]
    signal.classification = SignalClassification.PYRAMID
    signal.group = group
    candle = _candle(parsed, now)
    if group.status == GroupStatus.CLOSING:
        signal.status, signal.http_status = SignalStatus.IGNORED, 200
        signal.reason = "the position is closing"
    elif group.last_pyramid_candle == candle:
        signal.status, signal.http_status = SignalStatus.DUPLICATE, 200
        signal.reason = f"a pyramid was already added in this {group.timeframe} candle"
    elif group.pyramid_count >= group.max_pyramids:
        signal.status, signal.http_status = SignalStatus.IGNORED, 200
        signal.reason = f"max pyramids reached ({group.max_pyramids})"
    if signal.status != SignalStatus.ACCEPTED:
        signal.idempotency_key = None if signal.status == SignalStatus.DUPLICATE else signal.idempotency_key
        log_info(
            "WEBHOOK",
            f"Pyramid {signal.status}: {signal.reason}",
            user=group.user,
            details={"group_id": str(group.pk), "signal_id": str(signal.pk)},
        )
        return IntakeResult(200, {"status": signal.status, "reason": signal.reason, "signal_id": str(signal.pk)})
    index = group.pyramid_count
    _pyramid_create(group, signal, index, parsed)
    group.pyramid_count = index + 1
    group.last_pyramid_candle = candle
    group.save(update_fields=["pyramid_count", "last_pyramid_candle", "updated_at"])
    publish_group(group)
    signal.processing_status = ProcessingStatus.PENDING
    return IntakeResult(
        202,
        {
            "signal_id": str(signal.pk),
            "classification": "pyramid",
            "status": "accepted",
            "group_id": str(group.pk),
            "message": f"Pyramid {index} added and pending execution",
        },
    )


def _pyramid_create(group: PositionGroup, signal: WebhookSignal, index: int, parsed: ParsedSignal) -> Pyramid:
    _, grid = effective_config(group.config, symbol=group.symbol, timeframe=group.timeframe)
    capital = capital_for_pyramid(grid, index)
    if group.config.get("use_signal_size") and parsed.order_size:
        capital = parsed.order_size
    from ..grid import levels_for_pyramid

    levels = [
        {"gap_percent": str(lv.gap_percent), "weight_percent": str(lv.weight_percent), "tp_percent": str(lv.tp_percent)}
        for lv in levels_for_pyramid(grid, index)
    ]
    return Pyramid.objects.create(
        group=group,
        index=index,
        signal=signal,
        entry_price=parsed.entry_price or parsed.close_price,
        capital_usd=capital,
        levels=levels,
        entry_order_type=grid.entry_order_type,
    )


def _classify_new(
    signal: WebhookSignal,
    user: User,
    config: ExchangeConfig,
    parsed: ParsedSignal,
    symbol: str,
    exchange_symbol: str,
    now,
) -> IntakeResult:  # type: ignore[no-untyped-def]
    from riskengine.services import pool_has_room, queue_upsert

    stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first()
    merged, grid = effective_config(stored, symbol=symbol, timeframe=parsed.timeframe)
    if not pool_has_room(user=user, max_open_groups=merged["max_open_groups"]):
        signal.classification = SignalClassification.QUEUED
        queued, reason = queue_upsert(
            signal=signal,
            exchange_config=config,
            symbol=symbol,
            timeframe=parsed.timeframe,
            side="long",
            entry_price=parsed.entry_price or parsed.close_price,
            max_size=merged.get("queue_max_size"),
        )
        if queued is None:
            signal.status, signal.http_status, signal.reason = SignalStatus.IGNORED, 200, reason
            return IntakeResult(200, {"status": "ignored", "reason": reason, "signal_id": str(signal.pk)})
        signal.reason = reason
        return IntakeResult(
            202,
            {
                "signal_id": str(signal.pk),
                "classification": "queued",
                "status": "accepted",
                "group_id": None,
                "message": "Execution pool is full; signal queued",
            },
        )
    group = group_open(
        signal=signal,
        user=user,
        config=config,
        symbol=symbol,
        exchange_symbol=exchange_symbol,
        timeframe=parsed.timeframe,
        merged=merged,
        grid=grid,
        parsed=parsed,
        now=now,
    )
    signal.classification = SignalClassification.NEW_ENTRY
    signal.group = group
    signal.processing_status = ProcessingStatus.PENDING
    return IntakeResult(
        202,
        {
            "signal_id": str(signal.pk),
            "classification": "new_entry",
            "status": "accepted",
            "group_id": str(group.pk),
            "message": "Position group created and pending execution",
        },
    )


def group_open(
    *,
    signal: WebhookSignal,
    user: User,
    config: ExchangeConfig,
    symbol: str,
    exchange_symbol: str,
    timeframe: str,
    merged: dict[str, Any],
    grid,
    parsed: ParsedSignal,
    now,
) -> PositionGroup:  # type: ignore[no-untyped-def]
    """Create a `waiting` group with pyramid 0 (the caller holds the user lock and has checked the pool)."""
    group = PositionGroup.objects.create(
        user=user,
        exchange_config=config,
        symbol=symbol,
        exchange_symbol=exchange_symbol,
        timeframe=timeframe,
        side="long",
        status=GroupStatus.WAITING,
        config=merged,
        tp_mode=grid.tp_mode,
        max_pyramids=grid.max_pyramids,
        pyramid_count=1,
        last_pyramid_candle=_candle(parsed, now),
    )
    _pyramid_create(group, signal, 0, parsed)
    from .state import group_event

    group_event(group, "opened", f"Opened by {signal.source} signal at {parsed.entry_price or parsed.close_price}")
    publish_group(group)
    return group


def promote_signal(*, entry) -> PositionGroup:  # type: ignore[no-untyped-def]
    """Open the group of a queued signal (the caller holds the user lock and has checked the pool)."""
    from dataclasses import replace

    signal = entry.signal
    # The queued body was valid when it arrived; its price is the latest replacement's.
    parsed = replace(parse_signal(signal.body or {}), entry_price=entry.entry_price)
    stored = EngineConfig.objects.filter(user=entry.user).values_list("data", flat=True).first()
    merged, grid = effective_config(stored, symbol=entry.symbol, timeframe=entry.timeframe)
    group = group_open(
        signal=signal,
        user=entry.user,
        config=entry.exchange_config,
        symbol=entry.symbol,
        exchange_symbol="",  # taken from the market rules when the grid is computed
        timeframe=entry.timeframe,
        merged=merged,
        grid=grid,
        parsed=parsed,
        now=timezone.now(),
    )
    WebhookSignal.objects.filter(pk=signal.pk).update(group=group, processing_status=ProcessingStatus.PENDING)
    from ..tasks import process_signal

    signal_id = str(signal.pk)
    transaction.on_commit(lambda: process_signal.delay(signal_id))
    return group
