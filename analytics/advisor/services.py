"""Writes of the advisor (docs/advisor.md): the operator's settings (the API key encrypted), key rotation,
and the daily review: build the input, claim the day under the monthly cap, call the API outside any
transaction, store the answer or the failure, and run the allowed actions. Nothing here raises into
trading: a review that goes wrong is a stored failure."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.logs import audit
from accounts.models import User
from exchanges import crypto

from .. import tasks_framework
from ..choices import TaskKind
from ..performance import performance_compute
from . import rules, selectors
from .client import AdvisorCallError, AdvisorTimeoutError, base_url_problem, chat_complete
from .models import SETTINGS_PK, AdvisorReview, AdvisorSettings, ReviewStatus

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 512
MAX_TIMEOUT_S = 300
DEFAULT_RETRAIN_HORIZON = 12  # candles ahead, when the market has no deployed model to copy it from
EDITABLE = (
    "enabled",
    "base_url",
    "model",
    "monthly_cost_cap_usd",
    "price_input_per_1k_usd",
    "price_output_per_1k_usd",
    "max_output_tokens",
    "timeout_seconds",
    "may_act",
    "allowed_actions",
)


# --- settings ------------------------------------------------------------------------------------------


def _money(value: Any, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: ["must be a number of USD"]}) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError({field: ["must be zero or more"]})
    return amount


def advisor_settings_clean(values: dict[str, Any]) -> dict[str, Any]:
    """Check and normalize the editable settings; `ValidationError` naming each bad field."""
    clean = {name: values[name] for name in EDITABLE if name in values}
    errors: dict[str, list[str]] = {}
    if "base_url" in clean:
        clean["base_url"] = str(clean["base_url"] or "").strip()
        problem = base_url_problem(clean["base_url"]) if clean["base_url"] else None
        if problem:
            errors["base_url"] = [problem]
    for name in ("monthly_cost_cap_usd", "price_input_per_1k_usd", "price_output_per_1k_usd"):
        if name in clean:
            try:
                clean[name] = _money(clean[name], name)
            except ValidationError as exc:
                errors.update(exc.message_dict)
    for name, top, unit in (("timeout_seconds", MAX_TIMEOUT_S, "seconds"), ("max_output_tokens", 100_000, "tokens")):
        if name in clean:
            value = clean[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                errors[name] = [f"a whole number of {unit} from 1 to {top}"]
    if "allowed_actions" in clean:
        allowed = clean["allowed_actions"] or []
        unknown = [kind for kind in allowed if kind not in rules.ACTION_KINDS] if isinstance(allowed, list) else None
        if unknown is None or unknown:
            errors["allowed_actions"] = [f"a list of: {', '.join(rules.ACTION_KINDS)}"]
        else:
            clean["allowed_actions"] = sorted(set(allowed))
    if clean.get("enabled"):
        if not clean.get("base_url"):
            errors.setdefault("base_url", ["needed to enable the advisor"])
        if not str(clean.get("model") or "").strip():
            errors.setdefault("model", ["needed to enable the advisor"])
    if errors:
        raise ValidationError(errors)
    return clean


def advisor_settings_update(
    *, actor: User | None, api_key: str | None = None, clear_api_key: bool = False, ip: str | None = None, **values: Any
) -> AdvisorSettings:
    """Save the operator's settings (only the fields given); `api_key` replaces the stored key (encrypted),
    `clear_api_key` removes it. Atomic and audited; the audit names what changed, never the key."""
    if api_key is not None and (len(api_key) > MAX_KEY_LENGTH or not api_key.strip()):
        raise ValidationError({"api_key": [f"a non-empty key of at most {MAX_KEY_LENGTH} characters"]})
    with transaction.atomic():
        row, _ = AdvisorSettings.objects.select_for_update().get_or_create(pk=SETTINGS_PK)
        merged = {name: getattr(row, name) for name in EDITABLE} | values
        clean = advisor_settings_clean(merged)
        changed = sorted(name for name in EDITABLE if getattr(row, name) != clean[name])
        for name in EDITABLE:
            setattr(row, name, clean[name])
        if api_key is not None:
            row.api_key_encrypted = crypto.encrypt(api_key.strip(), context=row.encryption_context())
            row.api_key_last4 = api_key.strip()[-4:]
            changed.append("api_key")
        elif clear_api_key and row.api_key_encrypted:
            row.api_key_encrypted, row.api_key_last4 = "", ""
            changed.append("api_key")
        row.updated_by = actor if getattr(actor, "pk", None) else None
        row.save()
        audit(
            user=actor,
            action="advisor_settings_update",
            resource="advisor_settings",
            resource_id=row.pk,
            details={"changed": changed, "enabled": row.enabled, "may_act": row.may_act},
            ip=ip,
        )
    return row


def advisor_secrets_rotate() -> dict[str, int]:
    """Re-encrypt the advisor's API key with the first ENCRYPTION_KEYS entry (docs/security.md#secrets). A
    key that cannot be decrypted raises `crypto.DecryptionError`, and nothing changes."""
    with transaction.atomic():
        row = AdvisorSettings.objects.select_for_update().filter(pk=SETTINGS_PK).exclude(api_key_encrypted="").first()
        if row is None:
            return {"secrets": 0, "from_old_keys": 0}
        try:
            plain = crypto.decrypt(row.api_key_encrypted, context=row.encryption_context())
        except crypto.DecryptionError as exc:
            raise crypto.DecryptionError(f"advisor settings: {exc}") from None
        from_old = int(crypto.needs_rotation(row.api_key_encrypted))
        row.api_key_encrypted = crypto.encrypt(plain, context=row.encryption_context())
        row.save(update_fields=["api_key_encrypted"])
    return {"secrets": 1, "from_old_keys": from_old}


# --- the review ----------------------------------------------------------------------------------------


def _finish(review: AdvisorReview, **fields: Any) -> AdvisorReview:
    for name, value in fields.items():
        setattr(review, name, value)
    review.finished_at = timezone.now()
    review.save(update_fields=[*fields, "finished_at"])
    return review


def _claim(
    *,
    user: User,
    day: Any,
    settings: AdvisorSettings,
    review_input: dict[str, Any],
    body: dict[str, Any],
    now: datetime,
) -> AdvisorReview:
    """The day's review row, written before the call: RUNNING with the estimated cost (so that the month's
    spend counts it while it runs), or SKIPPED with the reason when the cap would be passed. The settings
    row's lock makes the spend and the new row one step for concurrent reviews. `IntegrityError` when the
    user already has this day's review."""
    estimate = rules.cost_usd(
        prompt_tokens=rules.prompt_tokens_estimate(body),
        completion_tokens=settings.max_output_tokens,
        price_in_per_1k=settings.price_input_per_1k_usd,
        price_out_per_1k=settings.price_output_per_1k_usd,
    )
    with transaction.atomic():
        AdvisorSettings.objects.select_for_update().filter(pk=SETTINGS_PK).first()
        refusal = rules.cap_refusal(
            spent=selectors.month_spend(now=now), estimate=estimate, cap=settings.monthly_cost_cap_usd
        )
        return AdvisorReview.objects.create(
            user=user,
            day=day,
            model=settings.model,
            input=review_input,
            status=ReviewStatus.SKIPPED if refusal else ReviewStatus.RUNNING,
            error=refusal or "",
            estimated_cost_usd=estimate,
            cost_usd=Decimal("0") if refusal else estimate,
            created_at=now,
            finished_at=timezone.now() if refusal else None,
        )


def advisor_review_run(
    *, user: User, day: Any = None, now: datetime | None = None, settings: AdvisorSettings | None = None
) -> AdvisorReview | None:
    """Review `day` (default: yesterday, UTC) of `user`. None when the advisor is off (nothing is sent);
    the existing row when the user already has that day's review; otherwise the stored review: OK with
    the answer (and what was done about its actions), FAILED with the reason, or SKIPPED under the cap."""
    settings = settings or selectors.advisor_settings_get()
    if not settings.enabled or not settings.base_url or not settings.model:
        return None
    now = now or timezone.now()
    day = day or (now - timedelta(days=1)).date()
    existing = AdvisorReview.objects.filter(user=user, day=day).first()
    if existing is not None:
        return existing
    markets = selectors.user_markets(user=user)
    models = selectors.deployed_models(markets=markets)
    numbers = performance_compute(user=user, now=now)
    review_input = rules.review_input(day=day.isoformat(), numbers=numbers, markets=markets, models=models)
    body = rules.request_body(
        model=settings.model, review_input=review_input, max_output_tokens=settings.max_output_tokens
    )
    try:
        review = _claim(user=user, day=day, settings=settings, review_input=review_input, body=body, now=now)
    except IntegrityError:  # another run claimed this day a moment ago
        return AdvisorReview.objects.filter(user=user, day=day).first()
    if review.status == ReviewStatus.SKIPPED:
        return review
    return _call_and_store(review=review, settings=settings, body=body, markets=markets, models=models)


def _cost(settings: AdvisorSettings, tokens: tuple[int, int]) -> Decimal:
    return rules.cost_usd(
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        price_in_per_1k=settings.price_input_per_1k_usd,
        price_out_per_1k=settings.price_output_per_1k_usd,
    )


def _call_and_store(
    *,
    review: AdvisorReview,
    settings: AdvisorSettings,
    body: dict[str, Any],
    markets: list[tuple[str, str]],
    models: list[dict[str, Any]],
) -> AdvisorReview:
    api_key = ""
    if settings.api_key_encrypted:  # a local server may need no key
        try:
            api_key = crypto.decrypt(settings.api_key_encrypted, context=settings.encryption_context())
        except crypto.DecryptionError:
            error = "the API key cannot be decrypted with the configured keys"
            return _finish(review, status=ReviewStatus.FAILED, error=error, cost_usd=Decimal("0"))
    try:
        answer_body = chat_complete(
            base_url=settings.base_url, api_key=api_key, body=body, timeout_s=float(settings.timeout_seconds)
        )
    except AdvisorTimeoutError as exc:  # the provider may have billed it: the estimate stays counted
        return _finish(review, status=ReviewStatus.FAILED, error=str(exc))
    except AdvisorCallError as exc:
        return _finish(review, status=ReviewStatus.FAILED, error=str(exc), cost_usd=Decimal("0"))
    tokens = rules.usage_read(answer_body)
    billed = {
        "prompt_tokens": tokens[0] if tokens else 0,
        "completion_tokens": tokens[1] if tokens else 0,
        "cost_usd": _cost(settings, tokens) if tokens else review.estimated_cost_usd,
    }
    try:
        answer = rules.answer_parse(answer_body)
    except rules.AnswerError as exc:
        return _finish(review, status=ReviewStatus.FAILED, error=f"unusable answer: {exc}", **billed)
    review = _finish(review, status=ReviewStatus.OK, output=answer.review.as_dict(), **billed)
    taken = _act(review=review, settings=settings, actions=answer.review.actions, markets=markets, models=models)
    if taken:
        review.actions_taken = taken
        review.save(update_fields=["actions_taken"])
    return review


def _act(
    *,
    review: AdvisorReview,
    settings: AdvisorSettings,
    actions: tuple[dict[str, str], ...],
    markets: list[tuple[str, str]],
    models: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each suggested action with what was done: a `retrain` the operator allowed submits a training task
    (`analytics.ml.task_kinds`) for the market, with its deployed model's horizon and exchange."""
    decisions = rules.actions_decide(
        actions, may_act=settings.may_act, allowed=settings.allowed_actions or [], markets=markets
    )
    by_market = {(model["symbol"], model["timeframe"]): model for model in models}
    taken = []
    for decision, action in zip(decisions, actions, strict=True):
        entry = decision.as_dict() | {"reason_given": action.get("reason", ""), "done": False}
        if decision.run:
            model = by_market.get((decision.symbol, decision.timeframe), {})
            data = {
                "symbol": decision.symbol,
                "timeframe": decision.timeframe,
                "horizon": int(model.get("horizon") or DEFAULT_RETRAIN_HORIZON),
            }
            if model.get("exchange"):
                data["exchange"] = model["exchange"]
            try:
                task = tasks_framework.task_submit(owner=review.user, kind=TaskKind.TRAIN.value, data=data)
            except (tasks_framework.TaskInputError, tasks_framework.TaskLimitError) as exc:
                entry["reason"] = f"not started: {exc}"
            except Exception:  # acting is a bonus: the stored review stands whatever happens here
                logger.exception("advisor action %s %s %s failed", decision.kind, decision.symbol, decision.timeframe)
                entry["reason"] = "not started: an unexpected error (see the log)"
            else:
                entry |= {"done": True, "task_id": str(task.pk), "reason": "training task submitted"}
        taken.append(entry)
    return taken


def advisor_review_all(*, now: datetime | None = None) -> dict[str, int]:
    """The daily review of every user who has traded, when the advisor is on (the scheduled task). One user's
    trouble is logged and stored and the others go on."""
    settings = selectors.advisor_settings_get()
    counts = {"users": 0, **{status.value: 0 for status in ReviewStatus}}
    if not settings.enabled:
        return counts
    now = now or timezone.now()
    for user in selectors.reviewed_users():
        counts["users"] += 1
        try:
            review = advisor_review_run(user=user, now=now, settings=settings)
        except Exception:  # a review must never stop the others (or anything else): logged, counted
            logger.exception("advisor review of user %s failed", user.pk)
            _fail_running(user=user, day=(now - timedelta(days=1)).date())
            counts[ReviewStatus.FAILED.value] += 1
            continue
        if review is not None:
            counts[review.status] += 1
    return counts


def _fail_running(*, user: User, day: Any) -> None:
    AdvisorReview.objects.filter(user=user, day=day, status=ReviewStatus.RUNNING).update(
        status=ReviewStatus.FAILED,
        error="the review stopped on an unexpected error (see the log)",
        finished_at=timezone.now(),
    )
