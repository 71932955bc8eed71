"""Parsing the TradingView webhook body (docs/webhook.md#body): pure functions, no database, no exchange."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.jsontypes import JSONValue
from core.validation import InvalidValueError, decimal_bounded, json_problems, json_sanitized, text_problem

TIMEFRAMES = {
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "45": "45m",
    "60": "1h",
    "120": "2h",
    "180": "3h",
    "240": "4h",
    "360": "6h",
    "480": "8h",
    "720": "12h",
    "D": "1d",
    "1D": "1d",
    "W": "1w",
    "1W": "1w",
}
TIMEFRAME_SECONDS = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "45m": 2700,
    "1h": 3600,
    "2h": 7200,
    "3h": 10800,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "1w": 604800,
}
ENTRY_SIDES = {"buy": "long", "long": "long"}


class WebhookError(Exception):
    """A request we refuse: HTTP status, error code, a sentence, and per-field reasons."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: dict[str, list[str]] | None = None,
        *,
        stored_body: JSONValue = None,
    ):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = fields or {}
        # For a body refused as junk (NUL, lone surrogates, deep nesting): what of it can be stored.
        self.stored_body = stored_body


@dataclass(frozen=True)
class ParsedSignal:
    secret: str
    source: str
    exchange: str
    raw_symbol: str
    timeframe: str
    action: str
    intent_type: str
    intent_side: str
    strategy: str
    trade_id: str
    tv_timestamp: str
    signal_time: datetime | None
    entry_price: Decimal | None
    close_price: Decimal | None
    order_size: Decimal | None
    max_slippage_percent: Decimal | None
    body: dict[str, Any]

    @property
    def is_exit(self) -> bool:
        return self.intent_type == "exit"


def decode_body(raw: bytes) -> dict[str, Any]:
    """JSON object from bytes, or a 400 that says where the JSON broke."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookError(400, "malformed_json", "The body is not UTF-8 text.", {"body": ["not UTF-8"]}) from exc
    if not text.strip():
        raise WebhookError(400, "malformed_json", "The body is empty.", {"body": ["empty"]})
    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError as exc:
        reason = "is nested too deeply"
        raise WebhookError(400, "malformed_json", f"The body {reason}.", {"body": [reason]}) from exc
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        if text.lstrip().startswith("{{") or "{{" in text[: exc.pos + 2]:
            reason += " (the alert looks like an un-rendered TradingView template)"
        raise WebhookError(400, "malformed_json", f"The body is not valid JSON: {reason}.", {"body": [reason]}) from exc
    except ValueError as exc:
        raise WebhookError(400, "malformed_json", str(exc), {"body": [str(exc)]}) from exc
    if not isinstance(data, dict):
        raise WebhookError(400, "invalid", "The body must be a JSON object.", {"body": ["must be a JSON object"]})
    # NUL and lone surrogates reach a decoded string only through a \u escape (json.loads refuses raw
    # control characters, and the text was valid UTF-8): without one, only the depth needs a look.
    problems = json_problems(data) if "\\u" in text or text.count("{") + text.count("[") > 32 else {}
    if problems:
        raise WebhookError(
            400,
            "invalid",
            "; ".join(f"{path}: {reasons[0]}" for path, reasons in problems.items()),
            problems,
            stored_body=json_sanitized(data),
        )
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number in a webhook")


def _placeholders(value: Any, path: str, found: dict[str, list[str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _placeholders(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _placeholders(item, f"{path}[{index}]", found)
    elif isinstance(value, str) and "{{" in value:
        found[path] = [f"still contains a TradingView placeholder ({value[:60]}); the alert was not rendered"]


def _text(
    data: dict[str, Any], key: str, path: str, errors: dict[str, list[str]], *, required: bool, max_len: int = 128
) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            errors[path] = ["is required"]
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        errors[path] = ["must be a string"]
        return ""
    if isinstance(value, int) and abs(value) >= 10**max_len:
        errors[path] = [f"is longer than {max_len} characters"]
        return ""
    text = str(value).strip()
    if not text:
        if required:
            errors[path] = ["is required (it is blank)"]
        return ""
    problem = text_problem(text, max_length=max_len)
    if problem is not None:
        errors[path] = [problem]
        return ""
    return text


def _number(
    data: dict[str, Any], key: str, path: str, errors: dict[str, list[str]], *, positive: bool = True
) -> Decimal | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        number = decimal_bounded(value)
    except InvalidValueError as exc:
        errors[path] = [exc.reason]
        return None
    if positive and number <= 0:
        errors[path] = ["must be greater than zero"]
        return None
    return number


def _object(data: dict[str, Any], key: str, errors: dict[str, list[str]], *, required: bool) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            errors[key] = ["is required"]
        return {}
    if not isinstance(value, dict):
        errors[key] = ["must be a JSON object"]
        return {}
    return value


def parse_time(text: str) -> datetime | None:
    """TradingView's {{timenow}} is ISO 8601 UTC ('2024-01-01T12:00:05Z'); epoch ms/s also accepted."""
    if not text:
        return None
    try:
        if text.isdigit():
            number = int(text)
            return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, tz=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def timeframe_normalize(raw: str) -> str:
    """TradingView's interval (`60`, `1D`) or ours (`1h`) as ours; empty when it is neither."""
    text = raw.strip()
    return (
        TIMEFRAMES.get(text)
        or TIMEFRAMES.get(text.upper())
        or (text.lower() if text.lower() in TIMEFRAME_SECONDS else "")
    )


def parse_signal(data: dict[str, Any]) -> ParsedSignal:
    """Validate the body (docs/webhook.md#required-fields); 400 with every bad field named."""
    placeholders: dict[str, list[str]] = {}
    _placeholders(data, "", placeholders)
    placeholders.pop("secret", None)  # a secret is never echoed back, even as a placeholder
    if placeholders:
        raise WebhookError(
            400, "unrendered_placeholder", "The alert still contains TradingView placeholders ({{...}}).", placeholders
        )
    errors: dict[str, list[str]] = {}
    tv = _object(data, "tv", errors, required=True)
    intent = _object(data, "execution_intent", errors, required=True)
    strategy_info = _object(data, "strategy_info", errors, required=False)
    risk = _object(data, "risk", errors, required=False)

    exchange = _text(tv, "exchange", "tv.exchange", errors, required=True, max_len=32)
    raw_symbol = _text(tv, "symbol", "tv.symbol", errors, required=True, max_len=40)
    raw_timeframe = _text(tv, "timeframe", "tv.timeframe", errors, required=True, max_len=8)
    action = _text(tv, "action", "tv.action", errors, required=True, max_len=16).lower()
    intent_type = _text(intent, "type", "execution_intent.type", errors, required=True, max_len=16).lower()
    intent_side = _text(intent, "side", "execution_intent.side", errors, required=True, max_len=16).lower()
    strategy = _text(intent, "strategy", "execution_intent.strategy", errors, required=False, max_len=32).lower()
    trade_id = _text(strategy_info, "trade_id", "strategy_info.trade_id", errors, required=False)
    tv_timestamp = _text(data, "timestamp", "timestamp", errors, required=False, max_len=64)
    source = _text(data, "source", "source", errors, required=False, max_len=32).lower() or "tradingview"
    entry_price = _number(tv, "entry_price", "tv.entry_price", errors)
    close_price = _number(tv, "close_price", "tv.close_price", errors)
    order_size = _number(tv, "order_size", "tv.order_size", errors)
    slippage = _number(risk, "max_slippage_percent", "risk.max_slippage_percent", errors)

    timeframe = ""
    if raw_timeframe:
        timeframe = timeframe_normalize(raw_timeframe)
        if not timeframe:
            errors["tv.timeframe"] = [f"unknown timeframe {raw_timeframe!r}; use TradingView's 1, 5, 15, 60, 240, 1D"]
    if action and action not in ("buy", "sell", "long", "short", "exit", "close"):
        errors["tv.action"] = [f"unknown action {action!r}; expected buy or sell"]
    if intent_type and intent_type not in ("signal", "exit"):
        if intent_type in ("reduce", "reverse"):
            errors["execution_intent.type"] = [f"{intent_type!r} is not supported; use signal or exit"]
        else:
            errors["execution_intent.type"] = [f"unknown type {intent_type!r}; expected signal or exit"]
    if intent_type == "signal" and intent_side:
        if intent_side in ("sell", "short"):
            errors["execution_intent.side"] = [
                "a sell that is not an exit is not supported on spot; send type exit to close a position"
            ]
        elif intent_side not in ENTRY_SIDES:
            errors["execution_intent.side"] = [f"unknown side {intent_side!r}; expected buy or long"]
        elif strategy and strategy != "grid":
            errors["execution_intent.strategy"] = [f"unknown strategy {strategy!r}; expected grid"]
    if intent_type == "signal" and not errors and entry_price is None and close_price is None:
        errors["tv.entry_price"] = ["an entry needs tv.entry_price or tv.close_price"]
    if errors:
        raise WebhookError(400, "invalid", "; ".join(f"{k}: {v[0]}" for k, v in errors.items()), errors)
    return ParsedSignal(
        secret="",
        source=source,
        exchange=exchange.lower(),
        raw_symbol=raw_symbol,
        timeframe=timeframe,
        action=action,
        intent_type=intent_type,
        intent_side=intent_side,
        strategy=strategy or "grid",
        trade_id=trade_id,
        tv_timestamp=tv_timestamp,
        signal_time=parse_time(tv_timestamp),
        entry_price=entry_price,
        close_price=close_price,
        order_size=order_size,
        max_slippage_percent=slippage,
        body=data,
    )


def candle_start(moment: datetime, timeframe: str) -> datetime:
    """The opening time of the candle of `timeframe` that contains `moment` (UTC, epoch-aligned)."""
    seconds = TIMEFRAME_SECONDS[timeframe]
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


REDACTED = "[redacted]"
# A key naming any of these holds a credential, whatever its case or where it sits (docs/security.md#redaction).
_SENSITIVE_WORDS = ("secret", "token", "password", "passwd", "passphrase", "credential", "signature", "private")
# URLs that carry their own credential: chat webhooks, bot tokens, signed query strings.
_SENSITIVE_URL_PARTS = ("/webhooks/", "/webhook/", "/services/", "/bot", "token=", "key=", "secret=", "sig=")


@functools.lru_cache(maxsize=2048)
def _sensitive_key(key: str) -> bool:
    lowered = key.lower()
    if any(word in lowered for word in _SENSITIVE_WORDS):
        return True
    # "key", "api_key", "apiKey", "x-api-key", "auth": but not "keyword" or "monkey".
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower().replace("-", "_").replace(" ", "_").split("_")
    return "key" in words or "auth" in words or lowered.endswith("apikey") or lowered == "authorization"


def _sensitive_value(value: str, own: frozenset[str]) -> bool:
    if value in own:
        return True
    if "://" in value:
        lowered = value.lower()
        return any(part in lowered for part in _SENSITIVE_URL_PARTS)
    return False


def redact_secret(data: Any, *, secrets: tuple[str, ...] = ()) -> Any:
    """`data` as it may be stored: the value of every key that names a credential (case-insensitive, at
    any depth), URLs that carry one, and any value equal to one of `secrets` (the user's own) replaced
    by a marker; Decimals as strings."""
    own = frozenset(secret for secret in secrets if isinstance(secret, str) and len(secret) >= 8)
    return _redacted(data, own)


def _redacted(data: Any, own: frozenset[str]) -> Any:
    if isinstance(data, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _sensitive_key(k) else _redacted(v, own)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [_redacted(v, own) for v in data]
    if isinstance(data, Decimal):
        return str(data)
    if isinstance(data, str) and _sensitive_value(data, own):
        return REDACTED
    return data


def alert_template(*, secret: str, exchange: str, exit_signal: bool = False) -> dict[str, Any]:
    """The alert body (docs/webhook.md#body) for a grid buy (or, with `exit_signal`, the exit of the position), with
    TradingView's placeholders where TradingView fills values in (what a trader pastes into an alert; tests and
    benches fill the values themselves)."""
    return {
        "secret": secret,
        "source": "tradingview",
        "timestamp": "{{timenow}}",
        "tv": {
            "exchange": exchange,
            "symbol": "{{ticker}}",
            "timeframe": "{{interval}}",
            "action": "{{strategy.order.action}}",
            "market_position": "{{strategy.market_position}}",
            "market_position_size": "{{strategy.market_position_size}}",
            "prev_market_position": "{{strategy.prev_market_position}}",
            "prev_market_position_size": "{{strategy.prev_market_position_size}}",
            "entry_price": "{{strategy.order.price}}",
            "close_price": "{{close}}",
            "order_size": "{{strategy.order.contracts}}",
        },
        "strategy_info": {
            "trade_id": "{{strategy.order.id}}",
            "alert_name": "{{alert_name}}",
            "alert_message": "{{strategy.order.comment}}",
        },
        "execution_intent": {
            "type": "exit" if exit_signal else "signal",
            "side": "sell" if exit_signal else "buy",
            "strategy": "grid",
            "position_size_type": "quote",
            "precision_mode": "auto",
        },
        "risk": {"stop_loss": None, "take_profit": None, "max_slippage_percent": 0.2},
    }
