"""The ML task kinds on a real heavy worker (docs/ml.md#tasks): `/api/tasks/train` trains on stored
candles with progress and deploys the model; `/api/tasks/bulk-analysis` scores symbols now; bad
requests, too few candles among them, are 400s naming the field."""

from __future__ import annotations

import time
from typing import Any

import pytest

from accounts.tests.factories import UserClient, UserFactory
from analytics.ml.models import FilterModel, ModelStatus
from analytics.tests.ml_support import csv_lines, cyclic_rows
from exchanges.candles import services as candle_services

FAST = {"num_boost_round": 40, "max_depth": 3}


def _client() -> UserClient:
    client = UserClient()
    client.force_authenticate(UserFactory.create(role="trader"))
    return client


def _wait(client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/tasks/{task_id}").json()
        if body["status"] in {"SUCCESS", "FAILURE", "REVOKED"}:
            return body
        assert time.monotonic() < deadline, f"task still {body['status']}"
        time.sleep(0.2)


def _store_candles(count: int = 1500) -> None:
    candle_services.candles_import(
        exchange_name="binance", symbol="BTC/USDT", timeframe="1h", lines=csv_lines(cyclic_rows(count))
    )


@pytest.mark.django_db(transaction=True)
def test_train_then_bulk_analysis_on_the_heavy_worker(heavy_worker) -> None:
    _store_candles()
    client = _client()
    answer = client.post(
        "/api/tasks/train",
        {"symbol": "BTCUSDT", "timeframe": "1h", "horizon": 5, "params": FAST},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "PENDING"
    body = _wait(client, answer.json()["task_id"])
    assert body["status"] == "SUCCESS", body
    assert body["kind"] == "train" and body["progress"] == 100
    result = body["result"]
    assert result["deployed"] is True and result["score"] > 0.8 and len(result["folds"]) == 4
    model = FilterModel.objects.get(pk=result["model_id"])
    assert model.status == ModelStatus.DEPLOYED and model.symbol == "BTC/USDT" and model.horizon == 5

    answer = client.post(
        "/api/tasks/bulk-analysis", {"symbols": ["BTC/USDT", "ETH/USDT"], "timeframe": "1h"}, format="json"
    )
    assert answer.status_code == 202, answer.content
    body = _wait(client, answer.json()["task_id"])
    assert body["status"] == "SUCCESS", body
    btc, eth = body["result"]["scores"]
    assert btc["symbol"] == "BTC/USDT" and 0 <= btc["score"] <= 1 and btc["model_id"] == str(model.pk)
    assert btc["passes"] == (btc["score"] >= body["result"]["threshold"])
    assert eth == {"symbol": "ETH/USDT", "score": None, "error": "no deployed model"}

    # A backtest with the filter reports its effect: the same run with and without it.
    answer = client.post(
        "/api/tasks/backtest",
        {"strategy": "rsi", "symbol": "BTC/USDT", "timeframe": "1h", "ml_filter": {"threshold": 0.6}},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    body = _wait(client, answer.json()["task_id"])
    assert body["status"] == "SUCCESS", body
    report = body["result"]["metrics"]["ml_filter"]
    assert report["model_id"] == str(model.pk) and report["threshold"] == 0.6
    assert report["with"]["deals"] + report["entries_filtered"] >= report["without"]["deals"] > 0
    assert report["with"]["deals"] == body["result"]["metrics"]["deals"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"symbol": "BTC/USDT", "timeframe": "1h", "horizon": 0}, "horizon"),
        ({"symbol": "BTC/USDT", "timeframe": "1h", "horizon": "5"}, "horizon"),
        ({"symbol": "BTC/USDT", "timeframe": "7h", "horizon": 5}, "timeframe"),
        ({"symbol": "BTC/USDT", "timeframe": "1h", "horizon": 5, "params": {"trees": 3}}, "params.trees"),
        ({"symbol": "BTC/USDT", "timeframe": "1h", "horizon": 5, "colour": "red"}, "colour"),
        ({"symbol": "BTC/USDT", "timeframe": "1h", "horizon": 5}, "symbol"),  # 700 candles: too few
        ({"symbol": "BTC/USDT", "timeframe": "1h", "horizon": 5, "start": "2026-01-20T00:00:00Z"}, "start"),
    ],
)
@pytest.mark.django_db
def test_bad_training_requests_are_400s_naming_the_field(data, field) -> None:
    _store_candles(700)
    answer = _client().post("/api/tasks/train", data, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["fields"], answer.json()
    if field in ("symbol", "start"):
        assert "too few candles to train" in answer.json()["fields"][field][0]


@pytest.mark.django_db
def test_a_backtest_with_the_filter_needs_a_model() -> None:
    _store_candles(700)
    client = _client()
    data = {"strategy": "rsi", "symbol": "BTC/USDT", "timeframe": "1h"}
    for ml_filter, field in [
        (True, "ml_filter"),
        ({"model_id": "00000000-0000-0000-0000-000000000000"}, "ml_filter.model_id"),
        ({"colour": 1}, "ml_filter"),
    ]:
        answer = client.post("/api/tasks/backtest", {**data, "ml_filter": ml_filter}, format="json")
        assert answer.status_code == 400 and field in answer.json()["fields"], answer.content


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"symbols": [], "timeframe": "1h"}, "symbols"),
        ({"symbols": "BTC/USDT", "timeframe": "1h"}, "symbols"),
        ({"symbols": ["BTC/USDT", 5], "timeframe": "1h"}, "symbols.1"),
        ({"symbols": ["BTC/USDT"], "timeframe": "nope"}, "timeframe"),
    ],
)
@pytest.mark.django_db
def test_bad_bulk_analysis_requests_are_400s_naming_the_field(data, field) -> None:
    answer = _client().post("/api/tasks/bulk-analysis", data, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["fields"], answer.json()
