"""Walk-forward training of the entry filter (docs/ml.md#training): pure functions of a candle frame, no
database (the service `analytics.ml.services.model_train` reads the candles and stores the result).

The labelled rows (features known, label known) are laid out in time order as

    [ fold windows ............................................ ] gap [ holdout ]
      train₀ gap test₀
         train₁ gap test₁            (rolling: each train window has the same length and
               train₂ gap test₂       ends `horizon` rows before its test window starts)

A row's label reads the close `horizon` rows later, so a training window ends `horizon` rows before the
window it is scored on starts: no training label is computed from a price of the test window
(`walk_forward_windows`; analytics/tests/test_ml.py checks it for many sizes). Each fold trains a booster
on its window and scores the next one; the model that is stored is trained on every row before the
holdout (less the gap) and scored once on the holdout, the final stretch it never saw. Its holdout AUC
is the score the registry compares (docs/ml.md#registry).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from .features import FEATURES, features_frame, labels
from .params import MIN_ROWS, MLInputError, horizon_validate, params_validate

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]


@functools.cache
def training_device() -> str:
    """ "cuda" when this process can train on a GPU, else "cpu" (the `ML_DEVICE` environment variable
    forces either). Probed once per process with a tiny booster: a machine without a GPU, or an xgboost
    built without CUDA, answers "cpu" without an error."""
    forced = os.environ.get("ML_DEVICE", "").strip().lower()
    if forced in ("cpu", "cuda"):
        return forced
    if not xgb.build_info().get("USE_CUDA") or not (shutil.which("nvidia-smi") or os.path.exists("/dev/nvidia0")):
        return "cpu"
    try:
        probe = xgb.DMatrix(np.array([[0.0], [1.0], [2.0], [3.0]]), label=np.array([0, 1, 0, 1]))
        xgb.train({"device": "cuda", "tree_method": "hist", "verbosity": 0}, probe, num_boost_round=1)
    except xgb.core.XGBoostError:
        logger.info("xgboost could not use the GPU; training on the CPU")
        return "cpu"
    return "cuda"


@dataclass(frozen=True)
class Window:
    """Row positions [start, end) of a training window and of the window it is scored on."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


def walk_forward_windows(
    rows: int, *, horizon: int, folds: int, holdout_fraction: float
) -> tuple[list[Window], Window]:
    """The rolling fold windows and the final (train, holdout) window over `rows` labelled rows.

    Every test window starts at least `horizon` rows after its training window ends, and test windows
    follow each other without overlapping; the holdout is the last `holdout_fraction` of the rows.
    `MLInputError` when the rows are too few for that.
    """
    holdout = int(rows * holdout_fraction)
    # Fold test windows of `size` rows; each training window is two of them long.
    size = (rows - holdout - 2 * horizon) // (folds + 2)
    if rows < MIN_ROWS or holdout < 50 or size < 50:
        needed = max(
            MIN_ROWS,
            math.ceil(50 / holdout_fraction),
            math.ceil(((folds + 2) * 50 + 2 * horizon + folds + 2) / (1 - holdout_fraction)),
        )
        raise MLInputError(
            f"too few candles to train: {rows} labelled rows after the indicators' warm-up, need at least"
            f" {needed} for {folds} walk-forward folds and a holdout (add candles or shorten the horizon)",
            field_name="candles",
        )
    fold_windows = []
    for k in range(folds):
        test_start = 2 * size + horizon + k * size
        fold_windows.append(
            Window(
                train_start=test_start - horizon - 2 * size,
                train_end=test_start - horizon,
                test_start=test_start,
                test_end=test_start + size,
            )
        )
    holdout_start = rows - holdout
    final = Window(train_start=0, train_end=holdout_start - horizon, test_start=holdout_start, test_end=rows)
    return fold_windows, final


def auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); 0.5 with one class."""
    truth = truth.astype(bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return 0.5
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def scores(truth: np.ndarray, probability: np.ndarray) -> dict[str, float | int]:
    return {
        "auc": round(auc(truth, probability), 6),
        "accuracy": round(float(((probability >= 0.5) == truth.astype(bool)).mean()), 6),
        "base_rate": round(float(truth.mean()), 6),
        "rows": len(truth),
    }


def _booster_params(params: Mapping[str, float | int], device: str) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "tree_method": "hist",
        "device": device,
        "max_depth": int(params["max_depth"]),
        "eta": float(params["learning_rate"]),
        "subsample": float(params["subsample"]),
        "colsample_bytree": float(params["colsample_bytree"]),
        "min_child_weight": float(params["min_child_weight"]),
        "lambda": float(params["reg_lambda"]),
        "seed": int(params["seed"]),
        "nthread": os.cpu_count() or 1,
        "verbosity": 0,
    }


def _fit(x: np.ndarray, y: np.ndarray, params: Mapping[str, float | int], device: str) -> xgb.Booster:
    matrix = xgb.DMatrix(x, label=y, feature_names=list(FEATURES))
    return xgb.train(_booster_params(params, device), matrix, num_boost_round=int(params["num_boost_round"]))


def predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """P(the close `horizon` candles later is higher) for each row of features."""
    return np.asarray(booster.predict(xgb.DMatrix(x, feature_names=list(FEATURES))), dtype=float)


def booster_load(raw: bytes) -> xgb.Booster:
    """A stored booster, set to predict on the CPU (whatever it was trained on)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    booster.set_param({"device": "cpu", "nthread": 1})
    return booster


@dataclass(frozen=True)
class TrainResult:
    """A trained model and how it scored, ready for the registry."""

    booster: bytes  # xgboost's UBJSON model
    horizon: int
    params: dict[str, float | int]
    features: tuple[str, ...]
    folds: list[dict[str, Any]]
    holdout: dict[str, Any]
    candles: int
    rows: int
    first_ms: int
    last_ms: int
    seconds: float
    device: str
    extra: dict[str, Any] = field(default_factory=dict)
    # The holdout's features and labels, kept in memory (never stored) so that the registry can score the
    # deployed model on the same rows (`holdout_auc_of`).
    holdout_x: np.ndarray | None = field(default=None, repr=False, compare=False)
    holdout_y: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float:
        """The holdout AUC: what deploy-if-better compares."""
        return float(self.holdout["auc"])

    def holdout_auc_of(self, booster_bytes: bytes) -> float | None:
        """Another model's AUC on this result's holdout rows (None when they were not kept)."""
        if self.holdout_x is None or self.holdout_y is None:
            return None
        return auc(self.holdout_y, predict(booster_load(booster_bytes), self.holdout_x))


def labelled_rows(candles: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.Series]:
    """The rows with every feature and the label known: (features, labels), in time order."""
    features = features_frame(candles)
    label = labels(candles, horizon)
    known = features.notna().all(axis=1) & np.isfinite(features).all(axis=1) & label.notna()
    return features[known], label[known]


def fit_walk_forward(
    features: pd.DataFrame,
    label: pd.Series,
    *,
    horizon: int,
    params: Mapping[str, float | int],
    candles: int,
    device: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train and score the folds, then the final model on everything before the holdout."""
    started = time.perf_counter()
    device = device or training_device()
    fold_windows, final = walk_forward_windows(
        len(features), horizon=horizon, folds=int(params["folds"]), holdout_fraction=float(params["holdout_fraction"])
    )
    x = features.to_numpy(dtype=np.float32)
    y = label.to_numpy(dtype=float)
    times = features.index.to_numpy(dtype=np.int64)
    steps = len(fold_windows) + 1

    def span(window: Window) -> dict[str, Any]:
        return {
            "train": [int(times[window.train_start]), int(times[window.train_end - 1])],
            "test": [int(times[window.test_start]), int(times[window.test_end - 1])],
        }

    folds = []
    for index, window in enumerate(fold_windows):
        booster = _fit(
            x[window.train_start : window.train_end], y[window.train_start : window.train_end], params, device
        )
        truth = y[window.test_start : window.test_end]
        folds.append({**span(window), **scores(truth, predict(booster, x[window.test_start : window.test_end]))})
        if progress is not None:
            progress(int(100 * (index + 1) / steps))
    booster = _fit(x[final.train_start : final.train_end], y[final.train_start : final.train_end], params, device)
    holdout = {**span(final), **scores(y[final.test_start : final.test_end], predict(booster, x[final.test_start :]))}
    if progress is not None:
        progress(100)
    return TrainResult(
        booster=bytes(booster.save_raw("ubj")),
        horizon=horizon,
        params=dict(params),
        features=FEATURES,
        folds=folds,
        holdout=holdout,
        candles=candles,
        rows=len(features),
        first_ms=int(times[0]),
        last_ms=int(times[-1]),
        seconds=round(time.perf_counter() - started, 3),
        device=device,
        extra={"fold_auc_mean": round(float(np.mean([fold["auc"] for fold in folds])), 6)},
        holdout_x=x[final.test_start :],
        holdout_y=y[final.test_start : final.test_end],
    )


def train_on_candles(
    candles: pd.DataFrame,
    *,
    horizon: int,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Features, labels and walk-forward training on one candle series; `MLInputError` for bad input or
    too few candles."""
    horizon = horizon_validate(horizon)
    checked = params_validate(params)
    features, label = labelled_rows(candles, horizon)
    return fit_walk_forward(
        features, label, horizon=horizon, params=checked, candles=len(candles), device=device, progress=progress
    )
