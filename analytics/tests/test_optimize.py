"""Optimization (docs/optimization.md): the search space, walk-forward windows, reproducible results,
and the `optimize` task from the API on a real heavy worker."""

from __future__ import annotations

import pickle
import time
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from accounts.tests.factories import UserClient, UserFactory
from analytics.backtest import CandleSeries
from analytics.backtest.files import load_market_rules, read_candles
from analytics.backtest.signals import strategy_signals
from analytics.optimize.runner import Problem, optimize
from analytics.optimize.search import (
    DAY_MS,
    MAX_CANDIDATES,
    SearchError,
    apply_values,
    candidates,
    monte_carlo_drawdown,
    space_check,
    walk_forward,
)
from exchanges.candles.rules import CandleRow
from exchanges.candles.services import candles_store

SPACE = {"tp_aggregate_percent": ["1", "2", "3"], "tp_mode": ["aggregate", "per_leg"]}


# ------------------------------------------------------------------------------------------- pure


def test_walk_forward_windows_never_let_train_and_test_overlap() -> None:
    start = 1_700_000_000_000
    windows = walk_forward(start, start + 100 * DAY_MS, train_days=30, test_days=10)
    assert len(windows) == 7  # 30 + 10 fits, then one step of 10 days each time: 30+70 = 100
    for window in windows:
        assert window.train_start < window.train_end == window.test_start < window.test_end
        assert window.train_end - window.train_start == 30 * DAY_MS
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.test_start == before.test_end  # test periods tile, no overlap
        assert after.train_start == before.train_start + 10 * DAY_MS
    assert windows[-1].test_end <= start + 100 * DAY_MS
    with pytest.raises(SearchError, match="too short"):
        walk_forward(start, start + 20 * DAY_MS, train_days=30, test_days=10)


def test_bad_spaces_name_the_field() -> None:
    for space, field in (
        ({}, "space"),
        ({"levels_of_doom": [1]}, "space.levels_of_doom"),
        ({"tp_mode": []}, "space.tp_mode"),
        ({"tp_mode": ["aggregate", "aggregate"]}, "space.tp_mode"),
        ({"generator.nope": [1]}, "space.generator.nope"),
    ):
        with pytest.raises(SearchError) as caught:
            space_check(space)
        assert field in caught.value.errors, (space, caught.value.errors)
    huge = {
        "tp_aggregate_percent": [str(i) for i in range(1, 41)],
        "trailing_stop_percent": [str(i) for i in range(1, 21)],
    }
    with pytest.raises(SearchError, match=f"800 combinations; at most {MAX_CANDIDATES}"):
        candidates(space_check(huge), method="grid")
    assert len(candidates(space_check(huge), method="random", samples=25, seed=3)) == 25


def test_random_search_is_reproducible_with_its_seed() -> None:
    space = space_check(
        {"tp_aggregate_percent": [str(i) for i in range(1, 21)], "stop_loss_percent": ["5", "10", "15"]}
    )
    first = candidates(space, method="random", samples=12, seed=42)
    assert first == candidates(space, method="random", samples=12, seed=42)
    assert first != candidates(space, method="random", samples=12, seed=43)
    assert len({tuple(sorted(c.items())) for c in first}) == 12  # distinct


def test_generator_values_replace_explicit_levels() -> None:
    merged = apply_values({"levels": [{"gap_percent": "0"}], "capital_usd": "100"}, {"generator.step_scale": "1.2"})
    assert "levels" not in merged and merged["generator"] == {"step_scale": "1.2"} and merged["capital_usd"] == "100"


def test_monte_carlo_of_deal_order_is_seeded_and_bounded() -> None:
    pnls = [50.0, -120.0, 30.0, -40.0, 80.0, -10.0, 25.0, -60.0]
    result = monte_carlo_drawdown(pnls, 1000.0, runs=500, seed=7)
    assert result == monte_carlo_drawdown(pnls, 1000.0, runs=500, seed=7)
    assert result is not None and 0 < result["p5"] <= result["p50"] <= result["p95"] <= result["worst"]
    # The worst order puts every loss first: 230 lost from 1000 is the deepest drawdown possible.
    assert result["worst"] <= 23.0 + 1e-9


# ---------------------------------------------------------------------------------- on real candles


@pytest.fixture
def problem(shared_data) -> Problem:
    rows = read_candles(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", timeframe="1h")[: 60 * 24]
    return Problem(
        symbol="BTC/USDT",
        timeframe="1h",
        candles=CandleSeries.from_rows(rows),
        signals=strategy_signals("rsi", None, rows, symbol="BTC/USDT"),
        base_config={},
        market_rules=load_market_rules(None, "BTC/USDT"),
        candidates=candidates(space_check(SPACE), method="grid"),
    )


def test_an_optimization_ranks_reports_out_of_sample_and_reproduces(problem: Problem) -> None:
    start = int(problem.candles.open_ms[0])
    windows = walk_forward(start, int(problem.candles.open_ms[-1]) + 3_600_000, train_days=20, test_days=10)
    report = optimize(problem, space=space_check(SPACE), objective="return", windows=windows, workers=2, seed=5)
    results = report["results"]
    assert [item["rank"] for item in results] == list(range(1, 7)) and report["candidates"] == 6
    objectives = [item["objective"] for item in results if item["objective"] is not None]
    assert objectives == sorted(objectives, reverse=True)
    assert results[0]["objective"] == results[0]["metrics"]["total_return_pct"]
    heat = report["heatmap"]
    assert heat["x_key"] == "tp_aggregate_percent" and len(heat["z"]) == 2 and len(heat["z"][0]) == 3
    walk = report["walk_forward"]
    assert len(walk["windows"]) == len(windows) == 4
    for step in walk["windows"]:
        assert step["best_values"] in problem.candidates and "total_return_pct" in step["test_metrics"]
    assert report["monte_carlo"] is None or report["monte_carlo"]["runs"] == 1000
    again = optimize(problem, space=space_check(SPACE), objective="return", windows=windows, workers=1, seed=5)
    for key in ("results", "heatmap", "monte_carlo"):
        assert again[key] == report[key]  # same seed, same numbers, whether on 1 process or 2
    assert [s["test_metrics"] for s in again["walk_forward"]["windows"]] == [s["test_metrics"] for s in walk["windows"]]


# ---------------------------------------------------------------------------------------- the task


def _wait(client: UserClient, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/tasks/{task_id}").json()
        if body["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
            return body
        assert time.monotonic() < deadline, f"task still {body['status']}"
        time.sleep(0.3)


@pytest.mark.django_db(transaction=True)
def test_the_optimize_task_runs_from_the_api_and_refuses_bad_searches(heavy_worker, shared_data) -> None:
    rows = read_candles(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", timeframe="1h")[: 45 * 24]
    candles_store(exchange_name="binance", symbol="BTC/USDT", timeframe="1h", rows=rows)
    client = UserClient()
    client.force_authenticate(UserFactory.create(role="trader"))
    base = {"strategy": "rsi", "symbol": "BTCUSDT", "timeframe": "1h", "exchange": "binance"}
    for extra, field in (
        ({"space": {}}, "space"),
        ({"space": {"bogus": [1]}}, "space.bogus"),
        ({"space": SPACE, "objective": "luck"}, "objective"),
        ({"space": {"tp_aggregate_percent": ["-4"]}}, "space.tp_aggregate_percent"),
        ({"space": SPACE, "walk_forward": {"train_days": 0, "test_days": 5}}, "train_days"),
    ):
        refused = client.post("/api/tasks/optimize", {**base, **extra}, format="json")
        assert refused.status_code == 400, (extra, refused.content)
        assert field in str(refused.json()), (field, refused.json())
    answer = client.post(
        "/api/tasks/optimize",
        {**base, "space": SPACE, "objective": "return_drawdown", "walk_forward": {"train_days": 20, "test_days": 10}},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    body = _wait(client, answer.json()["task_id"])
    assert body["status"] == "SUCCESS", body
    result = body["result"]
    assert result["candidates"] == 6 and len(result["results"]) == 6
    assert result["walk_forward"]["out_of_sample"]["deals"] >= 0


def test_a_series_pickles_to_the_same_decimals_digit_for_digit() -> None:
    """The optimizer sends the candles to its processes pickled (as text): every Decimal comes back with
    its digits, exponent and sign, and the float columns unchanged."""
    rows = [
        CandleRow(
            1_000, Decimal("92792.05"), Decimal("92848.010"), Decimal("1E-8"), Decimal("-0"), Decimal("51.41651")
        ),
        CandleRow(2_000, Decimal("0.00001234"), Decimal("3"), Decimal("2.50"), Decimal("2.5"), Decimal("0")),
    ]
    series = CandleSeries.from_rows(rows)
    back = pickle.loads(pickle.dumps(series))
    assert [tuple(map(str, row)) for row in back.rows] == [tuple(map(str, row)) for row in rows]
    assert all(type(row) is CandleRow for row in back.rows)
    for name in ("open_ms", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(back, name), getattr(series, name))
    empty = pickle.loads(pickle.dumps(CandleSeries.from_rows([])))
    assert len(empty) == 0
