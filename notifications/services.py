"""Writes of notifications: channel settings, the messages of engine events, delivery with retries and
rate limits, "send test" (docs/processes.md#notifications).

Trading never waits for a message: engine events reach `engine_event_enqueue` after their commit and
only hand celery a task; every network call happens in `delivery_send`, in its own task, with a short
timeout, and a channel's failure changes nothing but its own rows.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.logs import audit, log_warning
from accounts.models import User
from core.jsontypes import JSONValue
from exchanges.crypto import decrypt, encrypt
from exchanges.kv import kv_key, redis_client
from positions.hooks import EngineEvent
from positions.rules.guards import daily_loss_reached_by
from positions.services.guards import guard_status

from . import rules, senders
from .choices import ChannelKind, DeliveryStatus, EventType
from .models import Delivery, NotificationChannel, Report

logger = logging.getLogger(__name__)

DELIVER_TASK = "notifications.deliver"
ENGINE_EVENT_TASK = "notifications.engine_event"
TELEGRAM_REGISTER_TASK = "notifications.telegram_register"

# Messages per minute per channel, under each service's own limit (Telegram: 20 a minute to one group).
RATE_PER_MINUTE = {ChannelKind.EMAIL: 30, ChannelKind.TELEGRAM: 20, ChannelKind.DISCORD: 25, ChannelKind.SLACK: 50}
MAX_ATTEMPTS = 6  # the first send and five retries (5, 10, 20, 40, 80 s apart)
DISABLE_AFTER_FAILURES = 3  # consecutive 4xx answers turn a channel off
# Messages are sent by a few threads of their own in each worker process, never by celery's pool: a
# dead channel's timeouts then hold none of the threads trading runs on (docs/processes.md#notifications).
SENDER_THREADS = 2
STALE_AFTER = timedelta(minutes=15)  # a pending delivery untouched this long lost its sender (a crash)


class ChannelSettingsError(Exception):
    """Bad channel settings: `fields` names each bad field (dotted: `telegram.chat_id`) and why."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid notification settings")
        self.fields = fields


def _allowed_hosts() -> dict[str, list[str]]:
    default = {"discord": ["discord.com", "discordapp.com"], "slack": ["hooks.slack.com"]}
    hosts: dict[str, list[str]] = getattr(settings, "NOTIFICATION_WEBHOOK_HOSTS", default)
    return hosts


def _secret_field(kind: str) -> str:
    return {
        ChannelKind.TELEGRAM: "bot_token",
        ChannelKind.DISCORD: "webhook_url",
        ChannelKind.SLACK: "webhook_url",
    }.get(ChannelKind(kind), "")


def _storable(text: str) -> bool:
    """PostgreSQL stores no NUL character, and a lone surrogate has no UTF-8 form."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def channel_secret(*, channel: NotificationChannel) -> str:
    """The decrypted bot token or webhook URL (empty for email). Never log or return it to a client."""
    if not channel.secret_encrypted:
        return ""
    return decrypt(channel.secret_encrypted, context=channel.encryption_context())


def notification_settings_set(
    *, user: User, data: Mapping[str, Any], actor: User | None = None
) -> list[NotificationChannel]:
    """Set the user's channels from `{"channels": {kind: {enabled, events, address|chat_id|bot_token|webhook_url}}}`.

    Channels not named keep their settings; a secret left out (or sent masked) keeps the stored one.
    Everything is validated before anything is written (ChannelSettingsError naming each bad field).
    """
    channels = data.get("channels")
    if not isinstance(channels, dict):
        raise ChannelSettingsError({"channels": "an object of channel name -> settings"})
    existing = {c.kind: c for c in NotificationChannel.objects.filter(user=user)}
    errors: dict[str, str] = {}
    plans: list[tuple[str, dict[str, Any]]] = []
    for kind, values in channels.items():
        if kind not in ChannelKind.values:
            # The name is echoed only when it is plain text: the error body must always encode.
            shown = kind if str(kind).isascii() and str(kind).isprintable() and len(str(kind)) <= 32 else "?"
            errors[f"channels.{shown}"] = f"unknown channel; one of {', '.join(ChannelKind.values)}"
            continue
        if not isinstance(values, dict):
            errors[f"channels.{kind}"] = "an object of settings"
            continue
        values = dict(values)
        for name, value in values.items():
            if isinstance(value, str) and not _storable(value):
                errors[f"{kind}.{name if name.isascii() and name.isprintable() else '?'}"] = "invalid characters"
        secret_name = _secret_field(kind)
        if secret_name and str(values.get(secret_name, "")).startswith("****"):
            values.pop(secret_name)  # the masked value shown by GET: keep the stored secret
        current = existing.get(kind)
        has_secret = bool(current and current.secret_encrypted)
        if kind == ChannelKind.TELEGRAM and "chat_id" not in values and current is not None:
            values["chat_id"] = current.chat_id
        if isinstance(values.get("chat_id"), int) and not isinstance(values.get("chat_id"), bool):
            values["chat_id"] = str(values["chat_id"])  # Telegram's chat ids are numbers in its own JSON
        enabled = values.get("enabled", current.enabled if current else False)
        if not isinstance(enabled, bool):
            errors[f"{kind}.enabled"] = "true or false"
        events = values.get("events")
        if events is not None:
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                errors[f"{kind}.events"] = "a list of event types"
            else:
                unknown = set(events) - set(EventType.values) | ({EventType.TEST} & set(events))
                if unknown:
                    allowed = ", ".join(e for e in EventType.values if e != EventType.TEST)
                    errors[f"{kind}.events"] = f"{len(unknown)} unknown event type(s); known: {allowed}"
        validated: Mapping[str, JSONValue] = {k: v for k, v in values.items() if isinstance(v, str)}
        for field, why in rules.channel_errors(
            kind,
            validated,
            allowed_hosts=_allowed_hosts(),
            allow_http=bool(getattr(settings, "NOTIFICATION_ALLOW_HTTP", False)),
            secret_required=bool(enabled) and not has_secret,
        ).items():
            errors[f"{kind}.{field}"] = why
        plans.append((kind, values))
    if errors:
        raise ChannelSettingsError(errors)
    saved: list[NotificationChannel] = []
    with transaction.atomic():
        for kind, values in plans:
            channel, _ = NotificationChannel.objects.select_for_update().get_or_create(user=user, kind=kind)
            fields = {"updated_at"}
            if "enabled" in values:
                channel.enabled = values["enabled"]
                fields.add("enabled")
                if channel.enabled:  # turning it back on clears what turned it off
                    channel.consecutive_failures, channel.disabled_reason = 0, ""
                    fields |= {"consecutive_failures", "disabled_reason"}
            if values.get("events") is not None:
                channel.events = list(dict.fromkeys(values["events"]))
                fields.add("events")
            if kind == ChannelKind.EMAIL and "address" in values:
                channel.address = str(values["address"])
                fields.add("address")
            if kind == ChannelKind.TELEGRAM and "chat_id" in values:
                channel.chat_id = str(values["chat_id"])
                fields.add("chat_id")
            secret_name = _secret_field(kind)
            if secret_name and values.get(secret_name):
                secret = str(values[secret_name])
                channel.secret_encrypted = encrypt(secret, context=channel.encryption_context())
                channel.secret_last4 = secret[-4:]
                fields |= {"secret_encrypted", "secret_last4"}
                if kind == ChannelKind.TELEGRAM:
                    channel.inbound_token = secrets.token_urlsafe(32)
                    fields.add("inbound_token")
            channel.save(update_fields=sorted(fields))
            if "inbound_token" in fields and channel.enabled:
                transaction.on_commit(functools.partial(_telegram_register_enqueue, str(channel.pk)))
            audit(
                user=actor or user,
                action="notification_channel_set",
                resource="notification_channel",
                resource_id=channel.pk,
                details={"kind": kind, "enabled": channel.enabled, "events": channel.events},
            )
            saved.append(channel)
    return saved


def _telegram_register_enqueue(channel_id: str) -> None:
    current_app.send_task(TELEGRAM_REGISTER_TASK, args=(channel_id,))


def channel_target(*, channel: NotificationChannel) -> str:
    """Where an email channel sends: its own address, else the account's."""
    return channel.address or channel.user.email


def _link(group_id: str) -> str:
    base = str(getattr(settings, "PUBLIC_BASE_URL", "")).rstrip("/")
    return f"{base}/positions/{group_id}/" if base and group_id else ""


def notify(
    *,
    user_id: Any,
    event_type: str,
    text: str,
    occurred_at: datetime | None = None,
    channels: Iterable[NotificationChannel] | None = None,
    dispatch: bool = True,
    report: Report | None = None,
) -> list[Delivery]:
    """One pending delivery per enabled channel of the user that takes `event_type`; after commit they go
    to this process's sender threads (no celery round trip per message). `dispatch=False`: the caller
    sends them itself. With `report`, its chart goes with the message (`_send`)."""
    candidates = (
        list(channels)
        if channels is not None
        else list(NotificationChannel.objects.filter(user_id=user_id, enabled=True).select_related("user"))
    )
    deliveries = [
        Delivery(
            channel=channel,
            user_id=channel.user_id,
            event_type=event_type,
            text=text,
            occurred_at=occurred_at or timezone.now(),
            report=report,
        )
        for channel in candidates
        if channel.enabled and (event_type == EventType.TEST or event_type in channel.events)
    ]
    if not deliveries:
        return []
    Delivery.objects.bulk_create(deliveries)
    if dispatch:
        ids = [str(d.pk) for d in deliveries]
        transaction.on_commit(functools.partial(_senders.submit_all, ids))
    return deliveries


def notify_operators(*, event_type: str, text: str, dispatch: bool = True) -> list[Delivery]:
    """The same message to every operator (manager or admin) who takes `event_type`."""
    channels = NotificationChannel.objects.filter(
        enabled=True, user__role__in=["manager", "admin"], user__is_active=True
    ).select_related("user")
    return notify(user_id=None, event_type=event_type, text=text, channels=channels, dispatch=dispatch)


def engine_event_enqueue(event: EngineEvent) -> None:
    """The `positions.hooks` subscriber: hand the event to a task (no database, no network here)."""
    payload = {
        "kind": event.kind,
        "user_id": event.user_id,
        "group_id": event.group_id,
        "data": event.data,
        "at": time.time(),
    }
    current_app.send_task(ENGINE_EVENT_TASK, args=(json.dumps(payload),))


def engine_event_notify(*, payload: Mapping[str, Any]) -> list[Delivery]:
    """The messages of one engine event (`positions.hooks`), one per enabled channel that takes its type."""
    data: dict[str, JSONValue] = dict(payload.get("data") or {})
    event_type = rules.event_type_for(str(payload["kind"]), data)
    if event_type is None:
        return []
    text = rules.message_text(event_type, data, link=_link(str(payload.get("group_id") or "")))
    at = payload.get("at")
    occurred = datetime.fromtimestamp(float(at), tz=UTC) if at else None
    sent = notify(user_id=payload["user_id"], event_type=event_type, text=text, occurred_at=occurred)
    if payload["kind"] == "group_closed":
        sent += _daily_loss_reached(payload, data, occurred)
    return sent


def _daily_loss_reached(
    payload: Mapping[str, Any], data: Mapping[str, JSONValue], occurred: datetime | None
) -> list[Delivery]:
    """The daily-loss guard's message when this loss close is the one that reached the limit: the trader hears
    it now, not only when the next entry is refused (docs/processes.md#notifications)."""
    try:
        closed_pnl = Decimal(str(data.get("realized_pnl")))
    except ArithmeticError:
        return []
    if closed_pnl >= 0:
        return []
    user = User.objects.filter(pk=payload["user_id"]).first()
    if user is None:
        return []
    status = guard_status(user=user)
    limit = status["daily_loss_limit_usd"]
    realized = status["realized_today"]
    if limit is None or realized is None:
        return []
    if not daily_loss_reached_by(realized_today=Decimal(realized), closed_pnl=closed_pnl, limit=Decimal(limit)):
        return []
    guard_data: dict[str, JSONValue] = {
        "guard": "daily_loss",
        "symbol": data.get("symbol"),
        "timeframe": data.get("timeframe"),
        "action": "close",
        "outcome": "reached: new groups are refused",
        "reason": f"realized loss today {status['loss_today']} reached daily_loss_limit_usd {limit}"
        " (until 00:00 UTC or an operator's reset)",
    }
    text = rules.message_text(rules.GUARD_TRIGGERED, guard_data, link=_link(str(payload.get("group_id") or "")))
    return notify(user_id=payload["user_id"], event_type=rules.GUARD_TRIGGERED, text=text, occurred_at=occurred)


# ----------------------------------------------------------------------------------------- delivery


def _rate_wait_s(channel: NotificationChannel) -> float:
    """Seconds until this channel may send again (0: now); books the send when it may."""
    limit = RATE_PER_MINUTE.get(ChannelKind(channel.kind), 20)
    now = time.time()
    window = int(now // 60)
    key = kv_key("notif", "rate", channel.pk, window)
    client = redis_client()
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count <= limit:
        return 0.0
    return (window + 1) * 60 - now


def _chart(delivery: Delivery) -> senders.Attachment | None:
    """The report chart that goes with the message, as a file (None: the message has none)."""
    if delivery.report_id is None:
        return None
    found = Report.objects.filter(pk=delivery.report_id).values_list("day", "chart_png").first()
    png = found[1] if found is not None else None
    if found is None or not png:
        return None
    return f"equity-{found[0].isoformat()}.png", bytes(png), "image/png"


def report_chart_link(*, report_id: Any) -> str:
    """Where the report's chart is served (signed-in users only), for channels that take no file."""
    base = str(getattr(settings, "PUBLIC_BASE_URL", "")).rstrip("/")
    return f"{base}/api/notifications/reports/{report_id}/chart.png" if base else ""


def _send(channel: NotificationChannel, delivery: Delivery) -> rules.Answer:
    """One message on its channel; a report's chart goes as a file where the channel takes one (email
    attachment, Telegram photo, Discord upload) and as a link on Slack, whose incoming webhooks take no file."""
    kind = ChannelKind(channel.kind)
    chart = _chart(delivery)
    if kind == ChannelKind.EMAIL:
        subject = delivery.text.splitlines()[0][:120] if delivery.text else "Trading engine"
        return senders.send_email(
            address=channel_target(channel=channel), subject=subject, text=delivery.text, attachment=chart
        )
    secret = channel_secret(channel=channel)
    if kind == ChannelKind.TELEGRAM:
        if chart is not None:
            return senders.send_telegram_photo(
                bot_token=secret, chat_id=channel.chat_id, caption=delivery.text, photo=chart
            )
        return senders.send_telegram(bot_token=secret, chat_id=channel.chat_id, text=delivery.text)
    if kind == ChannelKind.DISCORD:
        return senders.send_discord(webhook_url=secret, text=delivery.text, attachment=chart)
    text = delivery.text
    link = report_chart_link(report_id=delivery.report_id) if chart is not None else ""
    if link:
        text = f"{text}\nChart: {link}"
    return senders.send_slack(webhook_url=secret, text=text)


def delivery_send(*, delivery_id: Any) -> tuple[str, int]:
    """Send one pending delivery: (`rules.SENT` | `rules.RETRY` | `rules.FAILED`, seconds to wait before a retry).

    The rate limit postpones (RETRY); 429, 5xx and timeouts RETRY with backoff until MAX_ATTEMPTS; any
    other 4xx fails the message and counts against the channel, which is turned off after
    DISABLE_AFTER_FAILURES in a row.
    """
    delivery = Delivery.objects.select_related("channel", "channel__user").filter(pk=delivery_id).first()
    if delivery is None:  # its user or channel was deleted meanwhile
        return rules.FAILED, 0
    channel = delivery.channel
    if delivery.status != DeliveryStatus.PENDING:
        return rules.SENT if delivery.status == DeliveryStatus.SENT else rules.FAILED, 0
    if not channel.enabled and delivery.event_type != EventType.TEST:
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SKIPPED, error="channel turned off")
        return rules.FAILED, 0
    # One message at a time per channel: a dead channel's timeouts do not pile up.
    in_flight = kv_key("notif", "sending", channel.pk)
    if not redis_client().set(in_flight, "1", nx=True, ex=int(senders.timeout_s()) + 5):
        return rules.RETRY, 2
    try:
        wait = _rate_wait_s(channel)
        if wait > 0:
            return rules.RETRY, int(wait) + 1
        answer = _send(channel, delivery)
    finally:
        redis_client().delete(in_flight)
    outcome = rules.delivery_outcome(answer)
    attempts = delivery.attempts + 1
    now = timezone.now()
    if outcome == rules.RETRY and attempts >= MAX_ATTEMPTS:
        outcome = rules.FAILED
    with transaction.atomic():
        if outcome == rules.SENT:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.SENT, attempts=attempts, sent_at=now, error=""
            )
            NotificationChannel.objects.filter(pk=channel.pk).update(consecutive_failures=0, last_success_at=now)
            return outcome, 0
        if outcome == rules.RETRY:
            Delivery.objects.filter(pk=delivery.pk).update(attempts=attempts, error=answer.detail[:500])
            return outcome, rules.backoff_seconds(attempts, retry_after_s=answer.retry_after_s)
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, attempts=attempts, error=answer.detail[:500]
        )
        _channel_failed(channel=channel, answer=answer, at=now)
    return outcome, 0


def _channel_failed(*, channel: NotificationChannel, answer: rules.Answer, at: datetime) -> None:
    locked = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
    locked.consecutive_failures += 1
    locked.last_failure_at = at
    fields = ["consecutive_failures", "last_failure_at", "updated_at"]
    code = answer.status_code
    # A refusal (4xx but 429, or a permanent SMTP error) says the settings are wrong; a slow service does not.
    refused = (code is not None and 400 <= code < 500 and code != 429) or answer.permanent
    if refused and locked.enabled and rules.should_disable(locked.consecutive_failures, limit=DISABLE_AFTER_FAILURES):
        locked.enabled = False
        locked.disabled_reason = (
            f"turned off after {locked.consecutive_failures} refused messages: {answer.detail[:300]}"
        )
        fields += ["enabled", "disabled_reason"]
        log_warning(
            "SYSTEM",
            f"Notification channel {locked.kind} turned off",
            user=locked.user_id,
            details={"channel": locked.kind, "reason": locked.disabled_reason},
        )
    locked.save(update_fields=fields)


class _Senders:
    """The process's sender threads, made again after a fork (prefork children get their own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, delivery_id: str) -> None:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(max_workers=SENDER_THREADS, thread_name_prefix="notify")
                self._pid = os.getpid()
            pool = self._pool
        pool.submit(_send_in_background, delivery_id)

    def submit_all(self, delivery_ids: list[str]) -> None:
        for delivery_id in delivery_ids:
            self.submit(delivery_id)


_senders = _Senders()


def delivery_dispatch(*, delivery_id: Any) -> None:
    """Hand one delivery to this process's sender threads and return at once (the `deliver` task)."""
    _senders.submit(str(delivery_id))


def _send_in_background(delivery_id: str) -> None:
    try:
        outcome, wait_s = delivery_send(delivery_id=delivery_id)
        if outcome == rules.RETRY:
            current_app.send_task(DELIVER_TASK, args=(delivery_id,), countdown=wait_s)
    except Exception:  # a sender thread must survive any one message
        logger.exception("notification delivery %s failed", delivery_id)
    finally:
        connection.close()  # this thread's own database connection


def deliveries_resume(*, now: datetime | None = None) -> int:
    """Send again the pending deliveries nobody has touched for STALE_AFTER (their process died mid-send)."""
    cutoff = (now or timezone.now()) - STALE_AFTER
    stale = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, created_at__lt=cutoff, attempts__lt=MAX_ATTEMPTS
        ).values_list("pk", flat=True)[:500]
    )
    for delivery_id in stale:
        current_app.send_task(DELIVER_TASK, args=(str(delivery_id),))
    return len(stale)


def delivery_give_up(*, delivery_id: Any, reason: str) -> None:
    """A delivery whose task could not run to the end (e.g. its retries ran out) is marked failed."""
    Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, error=reason[:500]
    )


def channel_test(*, user: User, kind: str) -> Delivery:
    """ "Send test": one message to the channel now, in the request, its outcome recorded and returned."""
    channel = NotificationChannel.objects.select_related("user").filter(user=user, kind=kind).first()
    if (
        channel is None
        or (kind != ChannelKind.EMAIL and not channel.secret_encrypted)
        or (kind == ChannelKind.TELEGRAM and not channel.chat_id)
    ):
        raise ChannelSettingsError({"channel": f"{kind} is not set up"})
    delivery = Delivery.objects.create(
        channel=channel,
        user=user,
        event_type=EventType.TEST,
        text="Test message from your trading engine: this channel works.",
    )
    answer = _send(channel, delivery)
    now = timezone.now()
    if rules.delivery_outcome(answer) == rules.SENT:
        delivery.status, delivery.sent_at = DeliveryStatus.SENT, now
    else:
        delivery.status, delivery.error = DeliveryStatus.FAILED, answer.detail[:500] or "not delivered"
    delivery.attempts = 1
    delivery.save(update_fields=["status", "sent_at", "error", "attempts"])
    return delivery


def telegram_webhook_register(*, channel_id: Any) -> str:
    """Tell Telegram to post the bot's updates to this engine (`PUBLIC_BASE_URL`) with the inbound secret."""
    channel = NotificationChannel.objects.filter(pk=channel_id, kind=ChannelKind.TELEGRAM).first()
    if channel is None or not channel.secret_encrypted or not channel.inbound_token:
        return "not set up"
    base = str(getattr(settings, "PUBLIC_BASE_URL", "")).rstrip("/")
    answer = senders.telegram_set_webhook(
        bot_token=channel_secret(channel=channel),
        url=f"{base}/api/notifications/telegram/{channel.pk}",
        secret_token=channel.inbound_token,
    )
    return "registered" if rules.delivery_outcome(answer) == rules.SENT else f"not registered: {answer.detail}"
