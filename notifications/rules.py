"""Pure rules of notifications: which event type an engine event is, the message, the channel settings'
validation, what a delivery's answer means, the backoff, and Telegram commands (docs/processes.md#notifications).

No ORM, no I/O, no settings: services pass what these need.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from core.jsontypes import JSONValue

# Event types (notifications.choices.EventType values), kept as plain strings so the rules need no Django.
ENTRY_PLACED = "entry_placed"
ENTRY_FILLED = "entry_filled"
PYRAMID = "pyramid"
TAKE_PROFIT = "take_profit"
STOP_EXIT = "stop_exit"
EXIT_SIGNAL = "exit_signal"
RISK_OFFSET = "risk_offset"
ORDER_REJECTED = "order_rejected"
GROUP_FAILED = "group_failed"
GUARD_TRIGGERED = "guard_triggered"
SEQUENCE_ANOMALY = "sequence_anomaly"
STRATEGY_DISABLED = "strategy_disabled"

# What closed a group (positions.choices.ExitPurpose values) -> the event type that tells about it.
CLOSE_EVENT = {
    "tp_leg": TAKE_PROFIT,
    "tp_aggregate": TAKE_PROFIT,
    "tp_pyramid": TAKE_PROFIT,
    "exit_signal": EXIT_SIGNAL,
    "manual": EXIT_SIGNAL,
    "stop_loss": STOP_EXIT,
    "trailing_stop": STOP_EXIT,
}
# A loser closed by the risk engine is told by the offset's own message (`risk_offset`), with its winners.
CLOSED_BY_OFFSET = "risk"
# Exit orders whose fill is told by the group's close message (with its PnL) rather than on its own.
CLOSING_PURPOSES = frozenset({"tp_aggregate", "exit_signal", "manual", "stop_loss", "trailing_stop", "risk"})

TITLES = {
    ENTRY_PLACED: "Entry placed",
    ENTRY_FILLED: "Filled",
    PYRAMID: "Pyramid filled",
    TAKE_PROFIT: "Take-profit",
    STOP_EXIT: "Stopped out",
    EXIT_SIGNAL: "Closed",
    RISK_OFFSET: "Risk offset",
    ORDER_REJECTED: "Order rejected",
    GROUP_FAILED: "Group failed",
    GUARD_TRIGGERED: "Guard",
    SEQUENCE_ANOMALY: "Sequence anomaly",
}
# Engine events (`positions.hooks` kinds) that are one event type each.
KIND_EVENT = {
    "order_placed": ENTRY_PLACED,
    "order_rejected": ORDER_REJECTED,
    "group_failed": GROUP_FAILED,
    "guard_refused": GUARD_TRIGGERED,
    "sequence_anomaly": SEQUENCE_ANOMALY,
    "risk_offset": RISK_OFFSET,
    "strategy_disabled": STRATEGY_DISABLED,
}


def _text(data: Mapping[str, JSONValue], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def event_type_for(kind: str, data: Mapping[str, JSONValue]) -> str | None:
    """The notification event type of an engine event (`positions.hooks` kinds), or None when it is not told."""
    if kind == "order_filled":
        order_kind = _text(data, "order_kind")
        if order_kind in ("entry", "dca"):
            pyramid = data.get("pyramid")
            return PYRAMID if order_kind == "entry" and isinstance(pyramid, int) and pyramid > 0 else ENTRY_FILLED
        if order_kind in CLOSING_PURPOSES:
            return None
        return TAKE_PROFIT
    if kind == "group_closed":
        reason = _text(data, "close_reason")
        return None if reason == CLOSED_BY_OFFSET else CLOSE_EVENT.get(reason, EXIT_SIGNAL)
    return KIND_EVENT.get(kind)


def _decimal(value: JSONValue) -> Decimal | None:
    if value is None or isinstance(value, bool | list | dict):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _plain(value: JSONValue) -> str:
    """A Decimal string without trailing zeros (65000.500000 -> 65000.5)."""
    number = _decimal(value)
    if number is None:
        return "?"
    text = format(number.normalize(), "f")
    return text


def message_text(event_type: str, data: Mapping[str, JSONValue], *, link: str = "") -> str:
    """A short message: what happened, the pair, side, price, quantity, PnL and a link to the group page."""
    symbol = _text(data, "symbol") or "?"
    title = TITLES.get(event_type, event_type.replace("_", " ").capitalize())
    lines: list[str] = []
    placed_or_filled = (ENTRY_PLACED, ENTRY_FILLED, PYRAMID, TAKE_PROFIT)
    if event_type in placed_or_filled and data.get("quantity") is not None and "side" in data:
        side = _text(data, "side").upper()
        what = _text(data, "order_kind")
        level = data.get("level")
        label = {"entry": "entry", "dca": f"DCA leg {level}"}.get(what, what.replace("_", " "))
        pyramid = data.get("pyramid")
        if what == "entry" and isinstance(pyramid, int) and pyramid > 0:
            label = f"pyramid {pyramid} entry"
        if event_type == ENTRY_PLACED:
            label = f"{_text(data, 'order_type') or 'limit'}, {label}"
        lines.append(f"{title}: {symbol} {side} {_plain(data.get('quantity'))} @ {_plain(data.get('price'))} ({label})")
        if data.get("avg_entry_price") is not None and event_type != ENTRY_PLACED:
            lines.append(f"Average entry {_plain(data.get('avg_entry_price'))}")
    elif event_type in (ORDER_REJECTED,):
        lines.append(f"{title}: {symbol} {_text(data, 'side').upper()} {_plain(data.get('quantity'))}")
        if data.get("error"):
            lines.append(_text(data, "error")[:200])
    elif event_type in (GUARD_TRIGGERED, SEQUENCE_ANOMALY):
        what = f"{symbol} {_text(data, 'timeframe')} {_text(data, 'action')}".strip()
        if event_type == GUARD_TRIGGERED:
            lines.append(f"{title} {_text(data, 'guard')}: {what} {_text(data, 'outcome') or 'ignored'}")
        else:
            lines.append(f"{title}: {what}")
        if data.get("reason"):
            lines.append(_text(data, "reason")[:300])
    elif event_type == RISK_OFFSET and "net" in data:
        closed, realized = _plain(data.get("loser_quantity")), _plain(data.get("loser_realized"))
        lines.append(f"{title}: {symbol} closed {closed}, realized {realized}")
        winners = data.get("winners")
        for winner in winners if isinstance(winners, list) else []:
            if isinstance(winner, dict):
                lines.append(f"Winner {_text(winner, 'symbol')} realized {_plain(winner.get('realized'))}")
        lines.append(f"Net {_plain(data.get('net'))} USDT")
    elif event_type == STRATEGY_DISABLED and "reason" in data:
        symbols = data.get("symbols")
        names = ", ".join(str(s) for s in symbols) if isinstance(symbols, list) else ""
        lines.append(f"Strategy {_text(data, 'kind')} ({names}) auto-disabled: {_text(data, 'reason')}")
    elif event_type == GROUP_FAILED:
        lines.append(f"{title}: {symbol} {_text(data, 'timeframe')}")
        if data.get("reason"):
            lines.append(_text(data, "reason")[:200])
    elif "close_reason" in data:
        reason = _text(data, "close_reason").replace("_", " ")
        lines.append(f"{title}: {symbol} {_text(data, 'timeframe')} ({reason})")
    elif data.get("message") is not None:
        lines.append(f"{title}: {_text(data, 'message')}" if title else _text(data, "message"))
    else:
        lines.append(f"{title}: {symbol}")
    if "realized_pnl" in data and event_type not in (ENTRY_PLACED, ENTRY_FILLED, PYRAMID, ORDER_REJECTED):
        lines.append(f"PnL {_plain(data.get('realized_pnl'))} USDT")
    if link:
        lines.append(link)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- settings

TELEGRAM_TOKEN = re.compile(r"^\d{3,15}:[A-Za-z0-9_-]{20,64}$")
TELEGRAM_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$|^[^@\s]+@localhost$")


def webhook_url_error(url: str, *, allowed_hosts: Sequence[str], allow_http: bool = False) -> str:
    """Why `url` is not an incoming-webhook URL of one of `allowed_hosts` (empty when it is one).

    Only the service's own hosts are accepted, so a stored URL cannot make the worker call anything else.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        return "must be an https:// URL"
    host = (parts.hostname or "").lower()
    if host not in allowed_hosts and f"{host}:{port}" not in allowed_hosts:
        return f"must be an incoming-webhook URL of {' or '.join(allowed_hosts) or 'the service'}"
    if len(parts.path) < 2:
        return "has no webhook path"
    return ""


def channel_errors(
    kind: str,
    values: Mapping[str, JSONValue],
    *,
    allowed_hosts: Mapping[str, Sequence[str]],
    allow_http: bool = False,
    secret_required: bool = True,
) -> dict[str, str]:
    """Field -> why it is wrong, for one channel's settings. `secret_required` is False when the channel
    already has a stored secret and the request may leave it out."""
    errors: dict[str, str] = {}
    if kind == "email":
        address = _text(values, "address")
        if address and (len(address) > 254 or not EMAIL.match(address)):
            errors["address"] = "not an email address"
    elif kind == "telegram":
        token = _text(values, "bot_token")
        if token and not TELEGRAM_TOKEN.match(token):
            errors["bot_token"] = "not a Telegram bot token (digits, a colon, then the key BotFather gave)"
        elif not token and secret_required:
            errors["bot_token"] = "required"
        chat = _text(values, "chat_id")
        if not chat:
            errors["chat_id"] = "required"
        elif not TELEGRAM_CHAT_ID.match(chat):
            errors["chat_id"] = "not a Telegram chat id (a number, or @channel)"
    elif kind in ("discord", "slack"):
        url = _text(values, "webhook_url")
        if len(url) > 2000:
            errors["webhook_url"] = "longer than 2000 characters"
        elif url:
            problem = webhook_url_error(url, allowed_hosts=allowed_hosts.get(kind, ()), allow_http=allow_http)
            if problem:
                errors["webhook_url"] = problem
        elif secret_required:
            errors["webhook_url"] = "required"
    else:
        errors["channel"] = "unknown channel"
    return errors


# ----------------------------------------------------------------------------------------- delivery

SENT, RETRY, FAILED = "sent", "retry", "failed"


@dataclass(frozen=True)
class Answer:
    """What sending one message came back with."""

    status_code: int | None  # None: no HTTP answer (timeout, refused connection, SMTP error)
    permanent: bool = False  # a non-HTTP error that retrying cannot fix (e.g. SMTP recipient refused)
    retry_after_s: float | None = None
    detail: str = ""


def delivery_outcome(answer: Answer) -> str:
    """SENT on 2xx; RETRY on 429, 5xx and errors without an answer; FAILED on other 4xx or a permanent error."""
    code = answer.status_code
    if code is None:
        return FAILED if answer.permanent else RETRY
    if 200 <= code < 300:
        return SENT
    if code == 429 or code >= 500:
        return RETRY
    return FAILED


def backoff_seconds(attempt: int, *, retry_after_s: float | None = None, cap_s: int = 300) -> int:
    """Wait before attempt `attempt + 1`: what the service asked for, else 5 s doubled per attempt, capped."""
    if retry_after_s is not None and retry_after_s > 0:
        return min(cap_s, int(retry_after_s) + 1)
    return int(min(cap_s, 5 * 2 ** max(0, attempt - 1)))


def should_disable(consecutive_failures: int, *, limit: int) -> bool:
    """A channel that keeps refusing (4xx) is turned off instead of failing every message."""
    return consecutive_failures >= limit


# ----------------------------------------------------------------------------------------- Telegram

COMMANDS = ("status", "profit", "positions", "pause", "resume", "close", "help")


@dataclass(frozen=True)
class Command:
    name: str  # one of COMMANDS, or "" when the text is not a command we know
    args: tuple[str, ...] = ()


def command_parse(text: str) -> Command:
    """`/close 1a2b yes` -> Command("close", ("1a2b", "yes")); `/status@MyBot` -> Command("status")."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return Command("")
    name = words[0][1:].split("@", 1)[0].lower()
    return Command(name if name in COMMANDS else "", tuple(words[1:]))
