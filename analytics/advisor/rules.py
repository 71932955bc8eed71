"""The advisor's pure rules (docs/advisor.md): what the review sends (a whitelist of the day's numbers, no
secret can reach it), the request, the cost estimate and the monthly cap, how an answer is read (garbage is
an `AnswerError` naming what is wrong), and which suggested actions may run. No ORM, no I/O, no clock."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

ACTION_KINDS = ("retrain",)  # what the advisor can do; any other suggested kind is only shown
MAX_ACTIONS_RUN = 3  # per review: a model that answers with a flood of retrains starts at most this many
MAX_OBSERVATIONS = 20
MAX_ACTIONS = 10
MAX_TEXT = 2000
CHARS_PER_TOKEN = 4  # a cautious average for English and JSON; the estimate rounds up
_TOKENS_OVERHEAD = 16  # per message: the role and the chat template around it
COST_PLACES = Decimal("0.000001")

SYSTEM_PROMPT = (
    "You review the daily performance of an automated grid (DCA) trading engine for one account. "
    "You get the day's numbers as JSON: realized and unrealized PnL in the quote currency, drawdown, "
    "deal statistics, exposure per pair, pool usage and the scores of the deployed entry-filter models "
    "(holdout AUC, 0.5 = chance). Answer with one JSON object and nothing else: "
    '{"summary": string, "observations": [string, ...], '
    '"actions": [{"kind": string, "symbol": string, "timeframe": string, "reason": string}, ...]}. '
    'The only action kind the engine understands is "retrain" (retrain the entry filter of one symbol and '
    "timeframe listed under markets); suggest it only when a model's score or the results on that market "
    "call for it. Keep the summary under 100 words."
)


class AnswerError(ValueError):
    """The API's answer is not a review: the message says what is wrong (it is stored with the failure)."""


@dataclass(frozen=True)
class Review:
    summary: str
    observations: tuple[str, ...]
    actions: tuple[dict[str, str], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "observations": list(self.observations), "actions": list(self.actions)}


@dataclass(frozen=True)
class Answer:
    review: Review
    prompt_tokens: int
    completion_tokens: int
    has_usage: bool


@dataclass(frozen=True)
class ActionDecision:
    kind: str
    symbol: str
    timeframe: str
    run: bool
    reason: str  # why it runs or why not

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "run": self.run,
            "reason": self.reason,
        }


# --- what is sent -------------------------------------------------------------------------------------


def _deal(deal: Mapping[str, Any]) -> dict[str, Any]:
    return {key: deal.get(key) for key in ("symbol", "timeframe", "realized_pnl", "return_pct", "closed_at")}


def review_input(
    *,
    day: str,
    numbers: Mapping[str, Any],
    markets: Iterable[tuple[str, str]],
    models: Iterable[Mapping[str, Any]],
    history_days: int = 7,
) -> dict[str, Any]:
    """The review's input: named fields copied out of the performance numbers (`performance_compute`) and the
    model registry, never the whole rows, so that nothing else (an e-mail, a key, a webhook secret) can
    ride along. `markets` are the (symbol, timeframe) pairs the account trades."""
    by_day = list(numbers.get("pnl_by_day") or [])
    day_row = next((row for row in by_day if row.get("day") == day), None)
    return {
        "day": day,
        "as_of": numbers.get("as_of"),
        "capital_base": numbers.get("capital_base"),
        "pnl_of_day": day_row.get("pnl") if day_row else "0",
        "pnl_last_days": [{"day": row.get("day"), "pnl": row.get("pnl")} for row in by_day[-history_days:]],
        "realized_pnl": dict(numbers.get("realized_pnl") or {}),
        "unrealized_pnl": numbers.get("unrealized_pnl"),
        "total_pnl": numbers.get("total_pnl"),
        "drawdown": dict(numbers.get("drawdown") or {}),
        "sharpe": numbers.get("sharpe"),
        "sortino": numbers.get("sortino"),
        "profit_factor": numbers.get("profit_factor"),
        "deals": dict(numbers.get("deals") or {}),
        "best_deals": [_deal(deal) for deal in numbers.get("best_deals") or []],
        "worst_deals": [_deal(deal) for deal in numbers.get("worst_deals") or []],
        "exposure": [
            {key: row.get(key) for key in ("symbol", "held", "cost", "value", "unrealized", "locked_in_resting_legs")}
            for row in numbers.get("exposure") or []
        ],
        "pool": dict(numbers.get("pool") or {}),
        "capital_locked": numbers.get("capital_locked"),
        "markets": [{"symbol": symbol, "timeframe": timeframe} for symbol, timeframe in sorted(set(markets))],
        "models": [
            {key: model.get(key) for key in ("symbol", "timeframe", "horizon", "score", "status", "trained_at")}
            for model in models
        ],
    }


def request_body(*, model: str, review_input: Mapping[str, Any], max_output_tokens: int) -> dict[str, Any]:
    """The `/v1/chat/completions` body (OpenAI's chat API, which compatible servers follow)."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(review_input, sort_keys=True, default=str)},
        ],
        "response_format": {"type": "json_object"},
        "max_tokens": max_output_tokens,
        "temperature": 0.2,
    }


# --- cost ----------------------------------------------------------------------------------------------


def prompt_tokens_estimate(body: Mapping[str, Any]) -> int:
    """An upper-leaning guess of the prompt's tokens before sending it: characters / 4, rounded up."""
    messages = body.get("messages") or []
    chars = sum(len(str(message.get("content", ""))) for message in messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + _TOKENS_OVERHEAD * len(messages)


def cost_usd(
    *, prompt_tokens: int, completion_tokens: int, price_in_per_1k: Decimal, price_out_per_1k: Decimal
) -> Decimal:
    cost = (Decimal(prompt_tokens) * price_in_per_1k + Decimal(completion_tokens) * price_out_per_1k) / 1000
    return cost.quantize(COST_PLACES, rounding=ROUND_CEILING)


def _usd(amount: Decimal) -> str:
    return f"{amount.normalize():f}"


def cap_refusal(*, spent: Decimal, estimate: Decimal, cap: Decimal) -> str | None:
    """Why a review may not start under the monthly cap, or None when it may."""
    if spent + estimate > cap:
        return (
            f"monthly cost cap: {_usd(spent)} USD spent this month + {_usd(estimate)} USD estimated for this"
            f" review would pass the cap of {_usd(cap)} USD"
        )
    return None


# --- what comes back -----------------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnswerError(f"{where} must be a non-empty string")
    return value.strip()[:MAX_TEXT]


def _content_json(content: str) -> Any:
    text = content.strip()
    if text.startswith("```"):  # some models fence the object even when asked for a JSON object
        text = text.strip("`").strip()
        if text.lower().startswith("json"):
            text = text[4:]
    try:
        return json.loads(text)
    except ValueError:
        raise AnswerError(f"the answer is not JSON: {content[:120]!r}") from None


def _token_count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AnswerError(f"usage.{name} must be a whole number of tokens")
    return value


def answer_parse(body: Any) -> Answer:
    """Read a chat-completions answer: its first choice's content as a review, and its token usage.
    `AnswerError` says what is wrong with anything else."""
    if isinstance(body, str):
        raise AnswerError(f"the answer is not JSON: {body[:120]!r}")
    if not isinstance(body, dict):
        raise AnswerError("the answer is not a JSON object")
    usage = body.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise AnswerError("usage must be an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise AnswerError("the answer has no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise AnswerError("the answer's first choice has no message content")
    data = _content_json(content)
    if not isinstance(data, dict):
        raise AnswerError("the review must be a JSON object")
    summary = _text(data.get("summary"), "summary")
    observations = data.get("observations", [])
    if not isinstance(observations, list):
        raise AnswerError("observations must be a list of strings")
    actions = data.get("actions", [])
    if not isinstance(actions, list):
        raise AnswerError("actions must be a list of objects")
    read_actions = []
    for index, action in enumerate(actions[:MAX_ACTIONS]):
        if not isinstance(action, dict):
            raise AnswerError(f"actions.{index} must be an object")
        read = {"kind": _text(action.get("kind"), f"actions.{index}.kind")[:32]}
        for key in ("symbol", "timeframe"):
            value = action.get(key)
            if value not in (None, ""):
                read[key] = _text(value, f"actions.{index}.{key}")[:32]
        read["reason"] = str(action.get("reason") or "")[:MAX_TEXT]
        read_actions.append(read)
    review = Review(
        summary=summary,
        observations=tuple(_text(item, f"observations.{i}") for i, item in enumerate(observations[:MAX_OBSERVATIONS])),
        actions=tuple(read_actions),
    )
    usage = usage or {}
    return Answer(
        review=review,
        prompt_tokens=_token_count(usage, "prompt_tokens"),
        completion_tokens=_token_count(usage, "completion_tokens"),
        has_usage=bool(usage),
    )


def usage_read(body: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of an answer whose usage is readable, whatever its content: a garbage
    review is still billed."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    try:
        return _token_count(usage, "prompt_tokens"), _token_count(usage, "completion_tokens")
    except AnswerError:
        return None


# --- acting --------------------------------------------------------------------------------------------


def actions_decide(
    actions: Sequence[Mapping[str, str]],
    *,
    may_act: bool,
    allowed: Iterable[str],
    markets: Iterable[tuple[str, str]],
) -> list[ActionDecision]:
    """Which of a review's suggested actions run: only when the operator lets the advisor act, the kind is
    one the engine knows and the operator allowed, the market is one the account trades, not twice in one
    review, and at most `MAX_ACTIONS_RUN`. Every other action is shown with the reason it did not run."""
    allowed_kinds = set(allowed)
    # BTCUSDT and BTC/USDT name one market; the account's own spelling is the one used.
    traded = {(symbol.replace("/", "").upper(), timeframe): symbol for symbol, timeframe in markets}
    decided: list[ActionDecision] = []
    seen: set[tuple[str, str, str]] = set()
    running = 0
    for action in actions:
        kind = str(action.get("kind", "")).strip().lower()
        symbol = str(action.get("symbol") or "").strip().upper()
        timeframe = str(action.get("timeframe") or "").strip()
        market = traded.get((symbol.replace("/", ""), timeframe))
        reason = "runs"
        if kind not in ACTION_KINDS:
            reason = f"not an action the engine can take (it knows: {', '.join(ACTION_KINDS)})"
        elif not may_act:
            reason = "acting is off: shown only"
        elif kind not in allowed_kinds:
            reason = f"the operator has not allowed {kind!r}"
        elif not symbol or not timeframe:
            reason = "needs a symbol and a timeframe"
        elif market is None:
            reason = f"{symbol} {timeframe} is not a market this account trades"
        elif (kind, market, timeframe) in seen:
            reason = "already suggested in this review"
        elif running >= MAX_ACTIONS_RUN:
            reason = f"at most {MAX_ACTIONS_RUN} actions run per review"
        run = reason == "runs"
        if run and market is not None:
            symbol = market
            running += 1
            seen.add((kind, market, timeframe))
        decided.append(ActionDecision(kind=kind, symbol=symbol, timeframe=timeframe, run=run, reason=reason))
    return decided
