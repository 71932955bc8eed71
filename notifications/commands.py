"""Telegram commands from the owner's chat, answered through the same selectors and services as the web
(docs/processes.md#telegram-commands). Only the channel's configured chat is obeyed; anything else is
logged and ignored."""

from __future__ import annotations

import hmac
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.logs import audit, log_warning
from accounts.models import User
from positions import jobs, selectors
from positions.choices import FINAL_GROUP_STATUSES, GroupStatus
from positions.models import PositionGroup
from positions.services.guards import guard_pause_set, guard_status

from . import rules, senders
from .choices import ChannelKind
from .models import NotificationChannel
from .services import channel_secret

CLOSE_GROUP_TASK = "positions.close_group"
HELP = (
    "/status: open groups and the pool\n"
    "/profit: realized today and in all, unrealized now\n"
    "/positions: open groups\n"
    "/close <id>: close a group at market (asks to confirm)\n"
    "/pause, /resume: stop or allow new groups"
)


def _open_groups(user: User) -> list[PositionGroup]:
    return list(selectors.group_list(viewer=user, status="open").filter(user=user))


def _fmt(value: Decimal | None) -> str:
    if value is None:
        return "?"
    return f"{value.quantize(Decimal('0.01')):f}"


def command_status(*, user: User) -> str:
    groups = _open_groups(user)
    by_status: dict[str, int] = {}
    for group in groups:
        by_status[group.status] = by_status.get(group.status, 0) + 1
    queued = user.queued_signals.count()
    parts = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items())) or "none"
    guards = guard_status(user=user)
    engine = "paused" if guards["paused"] or guards["system_paused"] else "running"
    return f"Open groups: {len(groups)} ({parts})\nQueued signals: {queued}\nNew entries: {engine}"


def command_profit(*, user: User) -> str:
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    closed = PositionGroup.objects.filter(user=user, status=GroupStatus.CLOSED)
    realized_all = sum((g.realized_pnl for g in closed.only("realized_pnl")), Decimal("0"))
    realized_today = sum(
        (g.realized_pnl for g in closed.filter(closed_at__gte=today).only("realized_pnl")), Decimal("0")
    )
    groups = _open_groups(user)
    prices = selectors.last_prices(groups=groups)
    unrealized = Decimal("0")
    for group in groups:
        pnl = selectors.group_pnl(group=group, price=prices.get(group.symbol))
        unrealized += Decimal(pnl["unrealized"] or "0") + group.realized_pnl
    return (
        f"Realized today: {_fmt(realized_today)} USDT\n"
        f"Realized in all: {_fmt(realized_all)} USDT\n"
        f"Open groups now: {_fmt(unrealized)} USDT"
    )


def command_positions(*, user: User) -> str:
    groups = _open_groups(user)
    if not groups:
        return "No open groups."
    prices = selectors.last_prices(groups=groups)
    lines = []
    for group in groups[:20]:
        pnl = selectors.group_pnl(group=group, price=prices.get(group.symbol))
        lines.append(
            f"{str(group.pk)[:8]} {group.symbol} {group.timeframe} {group.status} "
            f"avg {_fmt(group.avg_entry_price)} PnL {pnl['unrealized'] or '?'}"
        )
    return "\n".join(lines)


def command_close(*, user: User, args: tuple[str, ...], chat_id: str) -> str:
    if not args:
        return "Usage: /close <id> (the id's first characters, as /positions shows them)"
    prefix = args[0].lower()
    matches = [g for g in _open_groups(user) if str(g.pk).startswith(prefix)]
    if len(matches) != 1:
        return "No open group with that id." if not matches else "Several groups start with that id; give more of it."
    group = matches[0]
    if group.status in FINAL_GROUP_STATUSES or group.status == GroupStatus.CLOSING:
        return f"{group.symbol} is already {group.status}."
    if len(args) < 2 or args[1].lower() != "yes":
        return f"Close {group.symbol} {group.timeframe} at market? Send /close {str(group.pk)[:8]} yes"
    # The web's close (positions.api.views) audits and hands the close to the same task.
    audit(
        user=user,
        action="position_close",
        resource="position_group",
        resource_id=group.pk,
        details={"via": "telegram", "chat_id": chat_id},
    )
    jobs.enqueue(CLOSE_GROUP_TASK, str(group.pk), "manual")
    return f"Closing {group.symbol} {group.timeframe}: open orders are cancelled and the position sold at market."


def _answer(*, user: User, command: rules.Command, chat_id: str) -> str:
    if command.name == "status":
        return command_status(user=user)
    if command.name == "profit":
        return command_profit(user=user)
    if command.name == "positions":
        return command_positions(user=user)
    if command.name == "close":
        return command_close(user=user, args=command.args, chat_id=chat_id)
    if command.name in ("pause", "resume"):
        paused = command.name == "pause"
        # The same guard switch as PUT /api/guards {"paused": ...}: audited, announced live.
        guard_pause_set(user=user, paused=paused, actor=user, reason="by the user (Telegram)" if paused else "")
        if paused:
            return "Paused: no new groups open; running grids and take-profits keep working. /resume to undo."
        return "Resumed: new groups may open again."
    return HELP


def telegram_update_handle(*, channel_id: Any, token: str, update: dict[str, Any]) -> str:
    """Handle one Telegram update for a channel; answers in the chat and returns what it did.

    `token` must be the channel's inbound secret (Telegram sends it in `X-Telegram-Bot-Api-Secret-Token`);
    a message from any chat but the configured one is logged and ignored.
    """
    channel = (
        NotificationChannel.objects.select_related("user").filter(pk=channel_id, kind=ChannelKind.TELEGRAM).first()
    )
    if channel is None or not channel.inbound_token or not hmac.compare_digest(channel.inbound_token, token):
        return "forbidden"
    message = update.get("message") or update.get("edited_message") or {}
    if not isinstance(message, dict):
        return "ignored"
    chat = message.get("chat") or {}
    chat_id = str(chat.get("id", "")) if isinstance(chat, dict) else ""
    text = str(message.get("text") or "")
    if not chat_id or not hmac.compare_digest(chat_id, channel.chat_id):
        log_warning(
            "SECURITY",
            "Telegram command from another chat ignored",
            user=channel.user,
            details={"chat_id": chat_id, "text": text[:50]},
        )
        return "ignored"
    command = rules.command_parse(text)
    if not command.name and not text.startswith("/"):
        return "ignored"
    reply = _answer(user=channel.user, command=command, chat_id=chat_id)
    senders.send_telegram(bot_token=channel_secret(channel=channel), chat_id=channel.chat_id, text=reply)
    return command.name or "help"
