"""The ML filter's features, walk-forward training and model registry (docs/ml.md)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.ml import services
from analytics.ml.features import FEATURES, features_frame, labels
from analytics.ml.filter import backtest_entry_filter, model_booster, score_latest
from analytics.ml.models import FilterModel, ModelStatus
from analytics.ml.params import SCORE_CANDLES, WARMUP, MLInputError, params_validate
from analytics.ml.training import fit_walk_forward, labelled_rows, train_on_candles, walk_forward_windows
from analytics.tests.ml_support import HOUR, cyclic_frame
from strategies.library import candles_frame

FAST = {"num_boost_round": 60, "max_depth": 3}


def _real_candles(shared_data: Path, name: str, count: int):
    with gzip.open(shared_data / "candles" / name, "rt") as handle:
        lines = handle.read().splitlines()[1 : count + 1]
    return candles_frame([tuple(float(v) for v in line.split(",")) for line in lines])


def test_features_at_t_use_candles_up_to_t_only(shared_data):
    """Computed on candles[: t + 1], row t is what it is on the whole series, for many t (real candles)."""
    candles = _real_candles(shared_data, "binance_BTC_USDT_1h.csv.gz", 1400)
    full = features_frame(candles)
    assert list(full.columns) == list(FEATURES)
    rng = np.random.default_rng(11)
    picks = sorted({*rng.integers(0, len(candles), 40).tolist(), 0, WARMUP - 2, WARMUP - 1, WARMUP, len(candles) - 1})
    for t in picks:
        prefix = features_frame(candles.iloc[: t + 1]).iloc[-1].to_numpy()
        np.testing.assert_array_equal(prefix, full.iloc[t].to_numpy(), err_msg=f"row {t}")
    # Known from the warm-up on, for every feature.
    assert full.iloc[WARMUP:].notna().all().all()
    assert full.iloc[: WARMUP - 1].isna().all().all()


def test_the_label_is_the_direction_horizon_candles_ahead():
    candles = candles_frame([(i * HOUR, 1, 1, 1, close, 1) for i, close in enumerate([10, 11, 9, 12, 12])])
    assert labels(candles, 2).tolist()[:3] == [0.0, 1.0, 1.0]
    assert np.isnan(labels(candles, 2).to_numpy()[3:]).all()


@pytest.mark.parametrize("rows", [800, 1000, 4321, 119_000])
@pytest.mark.parametrize("horizon", [1, 12, 48])
@pytest.mark.parametrize("folds", [2, 4, 7])
def test_walk_forward_windows_never_let_training_see_the_test_window(rows, horizon, folds):
    windows, final = walk_forward_windows(rows, horizon=horizon, folds=folds, holdout_fraction=0.15)
    assert len(windows) == folds
    previous_test_end = 0
    for window in windows:
        assert 0 <= window.train_start < window.train_end <= window.test_start < window.test_end <= rows
        # The last training row's label reads the close `horizon` rows on: still before the test window.
        assert (window.train_end - 1) + horizon < window.test_start
        assert window.test_start >= previous_test_end  # test windows follow each other, never overlap
        previous_test_end = window.test_end
        assert window.train_end - window.train_start == windows[0].train_end - windows[0].train_start  # rolling
    assert previous_test_end + horizon <= final.test_start  # the holdout is after every fold
    assert (final.train_end - 1) + horizon < final.test_start and final.test_end == rows
    assert final.test_end - final.test_start == int(rows * 0.15)


def test_too_few_rows_for_the_folds_is_a_clear_error():
    with pytest.raises(MLInputError, match="need at least") as raised:
        walk_forward_windows(620, horizon=48, folds=7, holdout_fraction=0.15)
    assert raised.value.field_name == "candles"
    needed = int(str(raised.value).split("need at least ")[1].split()[0])
    walk_forward_windows(needed, horizon=48, folds=7, holdout_fraction=0.15)  # the figure given is enough


def test_too_few_candles_is_a_clear_error():
    with pytest.raises(MLInputError, match="too few candles") as raised:
        train_on_candles(cyclic_frame(700), horizon=5, params=FAST)
    assert raised.value.field_name == "candles"
    with pytest.raises(MLInputError) as raised:
        train_on_candles(cyclic_frame(30), horizon=5)
    assert raised.value.field_name == "candles"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_depth": 0}, "params.max_depth"),
        ({"max_depth": 2.5}, "params.max_depth"),
        ({"learning_rate": "fast"}, "params.learning_rate"),
        ({"trees": 5}, "params.trees"),
        ({"folds": 1}, "params.folds"),
        ({"holdout_fraction": 0.9}, "params.holdout_fraction"),
    ],
)
def test_bad_training_parameters_name_the_field(params, field):
    with pytest.raises(MLInputError) as raised:
        params_validate(params)
    assert raised.value.field_name == field


def test_walk_forward_training_learns_a_predictable_market():
    progress: list[int] = []
    result = train_on_candles(cyclic_frame(), horizon=5, params=FAST, device="cpu", progress=progress.append)
    assert progress[-1] == 100 and progress == sorted(progress)
    assert len(result.folds) == 4 and all(fold["auc"] > 0.8 for fold in result.folds)
    assert result.holdout["auc"] > 0.8 and result.score == result.holdout["auc"]
    assert result.features == FEATURES and result.device == "cpu" and result.booster


def _shuffled(candles, horizon: int):
    """A model trained on the same rows with their labels shuffled, so it learns nothing; its holdout keeps
    the true labels, so it is scored as any model would be."""
    features, label = labelled_rows(candles, horizon)
    holdout = int(len(label) * 0.15)
    values = label.to_numpy().copy()
    np.random.default_rng(5).shuffle(values[:-holdout])
    shuffled = pd.Series(values, index=label.index)
    checked = params_validate(FAST)
    return fit_walk_forward(features, shuffled, horizon=horizon, params=checked, candles=len(candles), device="cpu")


def _store(result) -> FilterModel:
    return services.model_store(result=result, exchange_name="binance", symbol="BTC/USDT", timeframe="1h")


@pytest.mark.django_db
def test_a_worse_model_is_kept_as_a_candidate_and_the_deployed_one_stays():
    candles = cyclic_frame()
    good = _store(train_on_candles(candles, horizon=5, params=FAST, device="cpu"))
    assert good.status == ModelStatus.DEPLOYED and good.status_reason == "first model deployed"

    worse = _store(_shuffled(candles, 5))
    assert worse.score < good.score
    assert worse.status == ModelStatus.CANDIDATE
    assert "does not beat the deployed model's" in worse.status_reason and str(good.pk) in worse.status_reason
    assert "on the same holdout window" in worse.status_reason  # the deployed model scored on the new rows
    good.refresh_from_db()
    assert good.status == ModelStatus.DEPLOYED
    assert FilterModel.objects.count() == 2  # both kept, with their scores


@pytest.mark.django_db
def test_a_first_model_no_better_than_chance_is_not_deployed():
    model = _store(_shuffled(cyclic_frame(), 5))
    if model.score <= 0.5:
        assert model.status == ModelStatus.CANDIDATE and "chance" in model.status_reason
    else:  # shuffled labels happened to score above 0.5: deployed, as the rule says
        assert model.status == ModelStatus.DEPLOYED


@pytest.mark.django_db
def test_a_better_model_replaces_the_deployed_one_and_roll_back_restores_it():
    candles = cyclic_frame()
    worse = services.model_deploy(model_id=_store(_shuffled(candles, 5)).pk)
    assert worse.status == ModelStatus.DEPLOYED
    better = _store(train_on_candles(candles, horizon=5, params=FAST, device="cpu"))
    worse.refresh_from_db()
    assert better.status == ModelStatus.DEPLOYED and worse.status == ModelStatus.RETIRED
    assert str(better.pk) in worse.status_reason

    restored = services.model_rollback(symbol="BTC/USDT", timeframe="1h")
    better.refresh_from_db()
    assert restored.pk == worse.pk and restored.status == ModelStatus.DEPLOYED
    assert better.status == ModelStatus.RETIRED
    assert FilterModel.objects.filter(status=ModelStatus.DEPLOYED).count() == 1


@pytest.mark.django_db
def test_the_deployed_model_is_scored_on_the_new_models_holdout():
    """A deployed model whose own holdout happened to score well is measured again on the new model's
    holdout rows: like against like."""
    candles = cyclic_frame()
    lucky = services.model_deploy(model_id=_store(_shuffled(candles, 5)).pk)
    FilterModel.objects.filter(pk=lucky.pk).update(score=0.9999)  # as if its own holdout had been kind
    better = _store(train_on_candles(candles, horizon=5, params=FAST, device="cpu"))
    assert better.score < 0.9999
    assert better.status == ModelStatus.DEPLOYED, better.status_reason
    assert "on the same holdout window" in better.status_reason


@pytest.mark.django_db
def test_roll_back_without_an_earlier_model_is_a_clear_error():
    with pytest.raises(MLInputError, match="no earlier deployed model"):
        services.model_rollback(symbol="BTC/USDT", timeframe="1h")


@pytest.mark.django_db
def test_training_from_the_store_needs_stored_candles():
    with pytest.raises(MLInputError, match="no stored 1h candles") as raised:
        services.model_train(exchange_name="binance", symbol="NOPE/USDT", timeframe="1h", horizon=5)
    assert raised.value.field_name == "symbol"


@pytest.mark.django_db
def test_the_backtest_filter_scores_each_entry_on_its_candle_and_the_ones_before():
    candles = cyclic_frame()
    model = _store(train_on_candles(candles, horizon=5, params=FAST, device="cpu"))
    allow = backtest_entry_filter(model, candles, threshold=0.5)
    booster = model_booster(model)
    opens = candles.index.to_numpy()
    answers = set()
    for t in range(WARMUP + 10, len(candles), 37):
        decided_at = int(opens[t]) + HOUR // 2  # an alert of candle t: it acts at the candle's close
        expected = score_latest(booster, candles.iloc[: t + 1])
        assert expected is not None
        assert allow(decided_at, "BTC/USDT") == (expected >= 0.5)
        # The live filter reads only the newest SCORE_CANDLES: the same score, to well within a rounding.
        if t + 1 >= SCORE_CANDLES:
            live = score_latest(booster, candles.iloc[t + 1 - SCORE_CANDLES : t + 1])
            assert live is not None and abs(live - expected) < 1e-6
        answers.add(allow(decided_at, "BTC/USDT"))
    assert answers == {True, False}  # it filters some entries and passes others
    assert allow(int(opens[5]), "BTC/USDT") is True  # before the features are known: passes


@pytest.mark.django_db
def test_the_admin_lists_models_and_deploys_and_rolls_back(client):
    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory.create(role="admin", is_staff=True, is_superuser=True))
    candles = cyclic_frame()
    good = _store(train_on_candles(candles, horizon=5, params=FAST, device="cpu"))
    worse = _store(_shuffled(candles, 5))
    listing = client.get("/admin/analytics/filtermodel/")
    assert listing.status_code == 200 and "does not beat" in listing.content.decode()
    assert client.get(f"/admin/analytics/filtermodel/{worse.pk}/change/").status_code == 200

    def act(action: str, *models: FilterModel) -> None:
        data = {"action": action, "_selected_action": [str(model.pk) for model in models]}
        assert client.post("/admin/analytics/filtermodel/", data).status_code == 302

    act("deploy", worse)
    good.refresh_from_db()
    worse.refresh_from_db()
    assert worse.status == ModelStatus.DEPLOYED and good.status == ModelStatus.RETIRED
    act("roll_back", worse)
    good.refresh_from_db()
    assert good.status == ModelStatus.DEPLOYED


@pytest.mark.django_db
def test_the_api_lists_models_and_only_a_manager_deploys_or_rolls_back():
    from accounts.tests.factories import UserClient, UserFactory

    candles = cyclic_frame()
    good = _store(train_on_candles(candles, horizon=5, params=FAST, device="cpu"))
    worse = _store(_shuffled(candles, 5))
    trader, manager = UserClient(), UserClient()
    trader.force_authenticate(UserFactory.create(role="trader"))
    manager.force_authenticate(UserFactory.create(role="manager"))

    listed = trader.get("/api/ml/models?symbol=BTC/USDT&timeframe=1h").json()["models"]
    assert {model["id"] for model in listed} == {str(good.pk), str(worse.pk)}
    assert "booster" not in listed[0] and listed[0]["holdout"]["auc"] == listed[0]["score"]
    assert trader.get(f"/api/ml/models/{worse.pk}").json()["status"] == "candidate"
    assert trader.get("/api/ml/models/00000000-0000-0000-0000-000000000000").status_code == 404

    assert trader.post(f"/api/ml/models/{worse.pk}/deploy").status_code == 403
    answer = manager.post(f"/api/ml/models/{worse.pk}/deploy")
    assert answer.status_code == 200 and answer.json()["status"] == "deployed"
    assert manager.post("/api/ml/models/rollback", {"symbol": "BTC/USDT"}, format="json").json()["fields"] == {
        "timeframe": ["timeframe is required"]
    }
    answer = manager.post("/api/ml/models/rollback", {"symbol": "BTC/USDT", "timeframe": "1h"}, format="json")
    assert answer.status_code == 200 and answer.json()["id"] == str(good.pk)
    answer = manager.post("/api/ml/models/rollback", {"symbol": "ETH/USDT", "timeframe": "1h"}, format="json")
    assert answer.status_code == 400 and "no earlier deployed model" in answer.json()["detail"]
