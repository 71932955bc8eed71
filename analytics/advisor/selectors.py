"""Reads of the advisor (docs/advisor.md): its settings, a user's reviews, this month's spend, and what a
review reads of the account (its markets and their deployed models)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from accounts.models import User
from positions.models import PositionGroup

from ..ml.models import FilterModel, ModelStatus
from .models import SETTINGS_PK, AdvisorReview, AdvisorSettings

REVIEWS_SHOWN = 3  # on the performance page


def advisor_settings_get() -> AdvisorSettings:
    """The operator's settings; the defaults (off) when none were saved."""
    found = AdvisorSettings.objects.filter(pk=SETTINGS_PK).first()
    return found if found is not None else AdvisorSettings(pk=SETTINGS_PK)


def month_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date().replace(day=1), time(0), tzinfo=UTC)


def month_spend(*, now: datetime) -> Decimal:
    """What this UTC month's reviews cost, a running review counting its estimate."""
    total = AdvisorReview.objects.filter(created_at__gte=month_start(now)).aggregate(total=Sum("cost_usd"))["total"]
    return total or Decimal("0")


def review_list(*, user: User, limit: int = REVIEWS_SHOWN) -> list[AdvisorReview]:
    """The user's newest reviews, in one query (the input sent is left unread)."""
    return list(AdvisorReview.objects.filter(user=user).defer("input").order_by("-day", "-created_at")[:limit])


def review_describe(review: AdvisorReview) -> dict[str, Any]:
    """A review as the API and the performance page show it."""
    output = review.output or {}
    return {
        "id": str(review.pk),
        "day": review.day.isoformat(),
        "status": review.status,
        "model": review.model,
        "summary": output.get("summary", ""),
        "observations": list(output.get("observations") or []),
        "actions": list(review.actions_taken or []) or list(output.get("actions") or []),
        "error": review.error,
        "prompt_tokens": review.prompt_tokens,
        "completion_tokens": review.completion_tokens,
        "cost_usd": f"{review.cost_usd.normalize():f}",
        "created_at": review.created_at.isoformat(),
        "finished_at": review.finished_at.isoformat() if review.finished_at else None,
    }


def reviewed_users() -> list[User]:
    """Active users who have traded (a review of an empty account would be money for nothing)."""
    traders = PositionGroup.objects.values("user_id")
    return list(User.objects.filter(is_active=True, pk__in=traders).order_by("pk"))


def user_markets(*, user: User) -> list[tuple[str, str]]:
    """The (symbol, timeframe) pairs the user has traded."""
    rows = PositionGroup.objects.filter(user=user).values_list("symbol", "timeframe").distinct()
    return sorted({(symbol, timeframe) for symbol, timeframe in rows})


def deployed_models(*, markets: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The deployed entry-filter model of each market that has one, as plain fields."""
    if not markets:
        return []
    wanted = set(markets)
    found = FilterModel.objects.filter(status=ModelStatus.DEPLOYED, symbol__in={symbol for symbol, _ in markets}).only(
        "symbol", "timeframe", "horizon", "score", "status", "trained_at", "exchange_name"
    )
    return [
        {
            "symbol": model.symbol,
            "timeframe": model.timeframe,
            "horizon": model.horizon,
            "score": round(model.score, 4),
            "status": model.status,
            "trained_at": model.trained_at.isoformat(),
            "exchange": model.exchange_name,
        }
        for model in found
        if (model.symbol, model.timeframe) in wanted
    ]
