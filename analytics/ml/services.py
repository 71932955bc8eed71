"""Writes of the model registry (docs/ml.md#registry): train a model from stored candles, store it and
deploy it only when it is better, deploy an earlier one again (roll back).

Deploy-if-better: a new model is deployed when its holdout AUC beats the deployed model's of the same
symbol and timeframe (or, with none deployed, beats chance: 0.5); the model it replaces is retired.
Otherwise it is stored as a candidate with the reason. No model is ever deleted here, so every earlier
model keeps its scores and can be deployed again (`model_deploy`, `model_rollback`; the admin's action).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from exchanges.candles import selectors as candle_selectors
from exchanges.candles.rules import TIMEFRAME_MS

from .models import FilterModel, ModelStatus
from .params import MLInputError, horizon_validate, params_validate

if TYPE_CHECKING:
    import pandas as pd

    from .training import TrainResult

CHANCE = 0.5


def _candles(
    *, exchange_name: str, symbol: str, timeframe: str, start_ms: int | None, end_ms: int | None
) -> pd.DataFrame:
    # Imported here: pandas and pandas-ta load only where a model is trained, not in every process that
    # imports the registry's services (the admin does).
    from strategies.library import candles_frame

    rows = candle_selectors.candles_range(
        exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms
    )
    if not rows:
        raise MLInputError(f"no stored {timeframe} candles of {symbol} on {exchange_name}", field_name="symbol")
    # pandas works in floats (strategies.library): the prices are Decimal up to here.
    return candles_frame([(row.open_ms, *(float(value) for value in row[1:])) for row in rows])


def model_fit(
    *,
    exchange_name: str,
    symbol: str,
    timeframe: str,
    horizon: int,
    params: dict[str, Any] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train a model on the stored candles of a series (walk-forward, `analytics.ml.training`), storing
    nothing. `MLInputError` for bad input or too few candles."""
    if timeframe not in TIMEFRAME_MS:
        raise MLInputError(f"unknown timeframe {timeframe!r}", field_name="timeframe")
    horizon = horizon_validate(horizon)
    # Imported here: xgboost loads only where a model is trained (the admin imports these services).
    from .training import train_on_candles

    checked = params_validate(params)
    candles = _candles(
        exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms
    )
    return train_on_candles(candles, horizon=horizon, params=checked, progress=progress)


def model_train(
    *,
    exchange_name: str,
    symbol: str,
    timeframe: str,
    horizon: int,
    params: dict[str, Any] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    created_by_id: Any = None,
    progress: Callable[[int], None] | None = None,
) -> FilterModel:
    """`model_fit`, then `model_store`: the model is deployed if it beats the deployed one."""
    result = model_fit(
        exchange_name=exchange_name,
        symbol=symbol,
        timeframe=timeframe,
        horizon=horizon,
        params=params,
        start_ms=start_ms,
        end_ms=end_ms,
        progress=progress,
    )
    return model_store(
        result=result, exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, created_by_id=created_by_id
    )


def model_store(
    *, result: TrainResult, exchange_name: str, symbol: str, timeframe: str, created_by_id: Any = None
) -> FilterModel:
    """Store a trained model; deploy it only when its holdout score beats the deployed one's."""
    with transaction.atomic():
        # The deployed row, locked: two trainings finishing at once compare against the same one in turn.
        deployed = (
            FilterModel.objects.select_for_update()
            .defer("booster")
            .filter(symbol=symbol, timeframe=timeframe, status=ModelStatus.DEPLOYED)
            .first()
        )
        model = FilterModel(
            exchange_name=exchange_name,
            symbol=symbol,
            timeframe=timeframe,
            horizon=result.horizon,
            features=list(result.features),
            params=result.params,
            folds=result.folds,
            holdout={**result.holdout, **result.extra},
            score=result.score,
            candles=result.candles,
            rows=result.rows,
            first_ms=result.first_ms,
            last_ms=result.last_ms,
            booster=result.booster,
            device=result.device,
            training_seconds=result.seconds,
            created_by_id=created_by_id,
        )
        rival = None if deployed is None else _deployed_score(deployed, result)
        if deployed is None and result.score <= CHANCE:
            model.status_reason = f"holdout AUC {result.score:.4f} is no better than chance ({CHANCE})"
        elif deployed is not None and rival is not None and result.score <= rival[0]:
            beaten = f"the deployed model's {rival[0]:.4f} {rival[1]} ({deployed.pk})"
            model.status_reason = f"holdout AUC {result.score:.4f} does not beat {beaten}"
        else:
            model.status = ModelStatus.DEPLOYED
            model.deployed_at = timezone.now()
            model.status_reason = "first model deployed"
            if deployed is not None and rival is not None:
                model.status_reason = (
                    f"holdout AUC {result.score:.4f} beats the deployed model's {rival[0]:.4f} {rival[1]}"
                )
                _retire(deployed, reason=f"replaced by {model.pk}: {model.status_reason}")
        model.save()
    return model


def _deployed_score(deployed: FilterModel, result: TrainResult) -> tuple[float, str]:
    """The deployed model's AUC to beat: on the new model's own holdout rows when it reads the same
    features for the same horizon (like against like, whatever period each was trained on), else its
    stored holdout score. The deployed model has not trained on those rows unless the new one was
    trained on an earlier stretch than it; then the comparison favours the deployed model."""
    if deployed.horizon == result.horizon and list(deployed.features) == list(result.features):
        same = result.holdout_auc_of(bytes(deployed.booster))
        if same is not None:
            return same, "on the same holdout window"
    return deployed.score, "on its own holdout window"


def _retire(model: FilterModel, *, reason: str) -> None:
    model.status = ModelStatus.RETIRED
    model.status_reason = reason[:300]
    model.save(update_fields=["status", "status_reason"])


def model_deploy(*, model_id: uuid.UUID | str, reason: str = "deployed by hand") -> FilterModel:
    """Deploy a stored model whatever its score (a roll back, or an operator's choice); the deployed
    model of its symbol and timeframe is retired. `FilterModel.DoesNotExist` when there is none."""
    with transaction.atomic():
        model = FilterModel.objects.select_for_update().defer("booster").get(pk=model_id)
        if model.status == ModelStatus.DEPLOYED:
            return model
        current = (
            FilterModel.objects.select_for_update()
            .defer("booster")
            .filter(symbol=model.symbol, timeframe=model.timeframe, status=ModelStatus.DEPLOYED)
            .first()
        )
        if current is not None:
            _retire(current, reason=f"replaced by {model.pk} ({reason})")
        model.status = ModelStatus.DEPLOYED
        model.status_reason = reason[:300]
        model.deployed_at = timezone.now()
        model.save(update_fields=["status", "status_reason", "deployed_at"])
    return model


def model_rollback(*, symbol: str, timeframe: str) -> FilterModel:
    """Deploy again the model that was deployed before the current one of a symbol and timeframe.
    `MLInputError` when there is none."""
    current = FilterModel.objects.filter(symbol=symbol, timeframe=timeframe, status=ModelStatus.DEPLOYED).first()
    earlier = FilterModel.objects.filter(
        symbol=symbol, timeframe=timeframe, status=ModelStatus.RETIRED, deployed_at__isnull=False
    )
    if current is not None and current.deployed_at is not None:
        earlier = earlier.filter(deployed_at__lt=current.deployed_at)
    previous = earlier.order_by("-deployed_at").first()
    if previous is None:
        raise MLInputError(f"no earlier deployed model of {symbol} {timeframe} to roll back to", field_name="symbol")
    return model_deploy(model_id=previous.pk, reason=f"rolled back from {current.pk if current else 'none'}")
