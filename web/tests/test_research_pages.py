"""The backtests, optimization, ML models and performance pages (docs/web.md#backtests): owners only, the
task service's validation beside the fields, "apply this config" through config_set, operators only for
deploying models."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from accounts.models import User
from accounts.tests.factories import UserFactory
from analytics.models import BackgroundTask, BacktestRun
from exchanges.tests.factories import ExchangeConfigFactory
from positions.models import EngineConfig
from web.demo import populate

pytestmark = pytest.mark.django_db


def _client(role: str = "trader") -> tuple[User, Client]:
    user = UserFactory.create(role=role)
    client = Client()
    client.force_login(user)
    return user, client


def _run(owner: User) -> BacktestRun:
    return BacktestRun.objects.create(
        owner=owner, symbol="BTC/USDT", timeframe="1h", exchange_name="binance",
        params={"source": "strategy", "strategy": {"kind": "rsi", "params": {}}},
        metrics={"total_return_pct": 1.5, "max_drawdown_pct": 2.0, "deals": 1, "win_rate": 100.0, "candles": 10},
        deals=[{"id": 1, "opened_ms": 1726272000000, "closed_ms": 1726279200000, "close_reason": "tp_aggregate",
                "pyramids": 1, "safety_orders_used": 0, "invested": "100", "realized_pnl": "1.5", "return_pct": 1.5,
                "max_floating_drawdown_pct": 0.5}],
        equity=[[1726272000000, 1000.0, 1000.0], [1726275600000, 1000.0, 990.0], [1726279200000, 1001.5, 1001.5]],
        fills=[{"time_ms": 1726272000000, "side": "buy", "price": "60000", "quantity": "0.001", "kind": "entry"},
               {"time_ms": 1726279200000, "side": "sell", "price": "61500", "quantity": "0.001", "kind": "tp"}],
    )  # fmt: skip


def test_pages_answer_their_owner_and_refuse_others() -> None:
    owner, client = _client()
    run = _run(owner)
    for path in ("/backtests/", f"/backtests/{run.pk}/", "/backtests/optimize/", "/backtests/models/", "/performance/"):
        assert client.get(path).status_code == 200, path
    detail = client.get(f"/backtests/{run.pk}/").content.decode()
    assert "+1.50 %" in detail and "tp_aggregate" in detail
    candles = client.get(f"/backtests/{run.pk}/candles").json()
    assert candles == {"candles": [], "thinned": False}  # none stored: the chart says so, no error
    _, stranger = _client()
    assert stranger.get(f"/backtests/{run.pk}/").status_code == 404
    assert stranger.get(f"/backtests/{run.pk}/candles").status_code == 404
    assert Client().get("/backtests/").status_code == 302


def test_a_refused_backtest_names_the_field_and_keeps_what_was_typed() -> None:
    _, client = _client()
    page = client.post(
        "/backtests/run",
        {"source": "strategy", "strategy": "rsi", "strategy_params": '{"length": 1}', "symbol": "NOPE/USDT",
         "timeframe": "1h", "exchange": "binance", "config": '{"tp_mode": "sideways"}'},
    )  # fmt: skip
    assert page.status_code == 400
    html = page.content.decode()
    assert 'value="NOPE/USDT"' in html and "sideways" in html  # typed values kept
    assert "field-error" in html and not BackgroundTask.objects.exists()


def test_compare_two_runs_and_apply_an_optimization_result_with_its_diff() -> None:
    owner, client = _client()
    a, b = _run(owner), _run(owner)
    page = client.get(f"/backtests/compare?run={a.pk}&run={b.pk}")
    assert page.status_code == 200 and "total_return_pct" in page.content.decode()
    EngineConfig.objects.create(user=owner, data={"tp_mode": "per_leg"})
    task = BackgroundTask.objects.create(
        owner=owner, kind="optimize", status="SUCCESS", progress=100, params={"symbol": "BTC/USDT", "timeframe": "1h"},
        result={"candidates": 1, "objective": "return", "results": [
            {"rank": 1, "values": {"tp_mode": "aggregate", "tp_aggregate_percent": "2"}, "objective": 3.0,
             "metrics": {"total_return_pct": 3.0, "max_drawdown_pct": 1.0, "deals": 4}}]},
    )  # fmt: skip
    html = client.get(f"/backtests/optimize/{task.pk}/").content.decode()
    assert "What changes" in html and "per_leg" in html and "aggregate" in html
    done = client.post(f"/backtests/optimize/{task.pk}/apply/1")
    assert done.status_code == 302
    stored = EngineConfig.objects.get(user=owner).data
    assert stored["tp_mode"] == "aggregate" and stored["tp_aggregate_percent"] == "2"
    _, stranger = _client()
    assert stranger.post(f"/backtests/optimize/{task.pk}/apply/1").status_code == 404
    assert EngineConfig.objects.get(user=owner).data == stored


def test_viewers_read_but_cannot_run_and_only_managers_deploy_models() -> None:
    _, viewer = _client("viewer")
    assert viewer.get("/backtests/").status_code == 200
    assert viewer.post("/backtests/run", {"symbol": "BTC/USDT"}).status_code == 403
    _, trader = _client()
    assert trader.post(f"/backtests/models/{uuid.uuid4()}/deploy").status_code == 403
    _, manager = _client("manager")
    assert manager.post(f"/backtests/models/{uuid.uuid4()}/deploy").status_code == 404


def test_performance_shows_the_ledger_numbers() -> None:
    owner, client = _client()
    populate(user=owner, exchange_config=ExchangeConfigFactory.create(user=owner), groups=6, legs=3, closed_share=0.5)
    html = client.get("/performance/").content.decode()
    assert "Export CSV" in html and "PnL by month" in html and "Exposure by pair" in html
