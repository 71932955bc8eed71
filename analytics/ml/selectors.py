"""Reads of the model registry (docs/ml.md#registry)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from .models import FilterModel, ModelStatus


def model_get(*, model_id: uuid.UUID | str) -> FilterModel | None:
    """The model of that id; None when there is none or the id is not a UUID."""
    try:
        key = model_id if isinstance(model_id, uuid.UUID) else uuid.UUID(str(model_id))
    except ValueError:
        return None
    return FilterModel.objects.filter(pk=key).first()


def model_deployed(*, symbol: str, timeframe: str) -> FilterModel | None:
    """The deployed model of a market and timeframe, if any."""
    return FilterModel.objects.filter(symbol=symbol, timeframe=timeframe, status=ModelStatus.DEPLOYED).first()


def model_list(*, symbol: str | None = None, timeframe: str | None = None) -> QuerySet[FilterModel]:
    """Every stored model, newest first (the booster's bytes left unread)."""
    found = FilterModel.objects.defer("booster")
    if symbol:
        found = found.filter(symbol=symbol)
    if timeframe:
        found = found.filter(timeframe=timeframe)
    return found


def model_describe(model: FilterModel) -> dict[str, object]:
    """A model as the API and the task results show it (no booster bytes)."""
    return {
        "id": str(model.pk),
        "exchange": model.exchange_name,
        "symbol": model.symbol,
        "timeframe": model.timeframe,
        "horizon": model.horizon,
        "features": list(model.features),
        "params": model.params,
        "folds": model.folds,
        "holdout": model.holdout,
        "score": model.score,
        "candles": model.candles,
        "rows": model.rows,
        "first_ms": model.first_ms,
        "last_ms": model.last_ms,
        "device": model.device,
        "training_seconds": model.training_seconds,
        "status": model.status,
        "status_reason": model.status_reason,
        "trained_at": model.trained_at.isoformat(),
        "deployed_at": model.deployed_at.isoformat() if model.deployed_at else None,
    }
