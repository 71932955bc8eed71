"""`POST /api/tasks/backtest` and `/api/backtests` (docs/tasks.md#backtest): real candles from the store,
run on a real celery worker on the heavy queue, stored once; every bad request a 400 naming its field."""

from __future__ import annotations

import time
from typing import Any

import pytest

from accounts.tests.factories import UserClient, UserFactory
from analytics.backtest.files import read_candles
from analytics.models import BackgroundTask, BacktestRun
from exchanges.candles.services import candles_store

START_MS = 1726272000000  # the first candle of the shared 1h file, 2024-09-14 00:00 UTC
HOUR_MS = 3_600_000


def _client() -> UserClient:
    client = UserClient()
    client.force_authenticate(UserFactory.create(role="trader"))
    return client


@pytest.fixture
def stored_candles(shared_data):
    """40 days of real BTC/USDT 1h candles in the store (binance)."""
    rows = read_candles(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", timeframe="1h")[: 40 * 24]
    candles_store(exchange_name="binance", symbol="BTC/USDT", timeframe="1h", rows=rows)
    return rows


def _wait(client: UserClient, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/tasks/{task_id}").json()
        if body["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
            return body
        assert time.monotonic() < deadline, f"task still {body['status']}"
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_a_strategy_backtest_runs_on_the_heavy_worker_and_is_stored(heavy_worker, stored_candles) -> None:
    client = _client()
    answer = client.post(
        "/api/tasks/backtest",
        {"strategy": "rsi", "symbol": "BTCUSDT", "timeframe": "1h", "exchange": "Binance"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    body = _wait(client, answer.json()["task_id"])
    assert body["status"] == "SUCCESS", body
    assert body["params"]["symbol"] == "BTC/USDT" and body["params"]["strategy"]["params"]["length"] == 14
    backtest_id = body["result"]["backtest_id"]
    listed = client.get("/api/backtests").json()
    assert [run["id"] for run in listed] == [backtest_id]
    assert listed[0]["metrics"]["candles"] == len(stored_candles) and "deals" not in listed[0]
    for key in ("total_return_pct", "max_drawdown_pct", "win_rate", "sharpe", "realized_pnl", "fees"):
        assert key in listed[0]["metrics"]
    detail = client.get(f"/api/backtests/{backtest_id}").json()
    assert len(detail["equity"]) == len(stored_candles)  # one point per candle, under the chart's limit
    first_time, realized, marked = detail["equity"][0]
    assert first_time >= START_MS and isinstance(realized, float) and isinstance(marked, float)
    closed = [deal for deal in detail["deals"] if deal["closed_ms"] is not None]
    assert closed and len(closed) == detail["metrics"]["deals"]  # a deal still open at the end is listed too
    assert all(deal["legs"] and deal["realized_pnl"] for deal in closed)
    assert all(fill["side"] in ("buy", "sell") for fill in detail["fills"])


@pytest.mark.django_db(transaction=True)
def test_a_signals_csv_backtest_trades_its_alerts(heavy_worker, stored_candles) -> None:
    client = _client()
    entry, exit_ = START_MS + 48 * HOUR_MS, START_MS + 20 * 24 * HOUR_MS
    csv_text = f"timestamp,action,price\n{entry},entry,\n{exit_},exit,\n"
    answer = client.post(
        "/api/tasks/backtest",
        {"signals_csv": csv_text, "symbol": "BTC/USDT", "timeframe": "1h", "exchange": "binance"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    body = _wait(client, answer.json()["task_id"])
    assert body["status"] == "SUCCESS", body
    detail = client.get(f"/api/backtests/{body['result']['backtest_id']}").json()
    assert detail["source"] == "signals_csv" and "signals_csv" not in detail["config"]
    assert detail["fills"] and detail["fills"][0]["time_ms"] >= entry
    assert BacktestRun.objects.count() == 1


BAD = [
    ({}, "strategy"),
    ({"strategy": "rsi", "signals_csv": "timestamp,action\n"}, "strategy"),
    ({"strategy": "nope"}, "strategy.kind"),
    ({"strategy": {"kind": "rsi", "params": {"length": -3}}}, "strategy.length"),
    ({"strategy": "rsi", "symbol": "NOPE"}, "symbol"),
    ({"strategy": "rsi", "timeframe": "7x"}, "timeframe"),
    ({"strategy": "rsi", "exchange": "no-such-exchange"}, "exchange"),
    ({"strategy": "rsi", "start": "2020-01-01", "end": "2020-02-01"}, "start"),
    ({"strategy": "rsi", "start": "2024-10-01", "end": "2024-09-20"}, "end"),
    ({"strategy": "rsi", "start": "yesterday"}, "start"),
    ({"strategy": "rsi", "detail_timeframe": "4h"}, "detail_timeframe"),
    ({"strategy": "rsi", "detail_timeframe": "1m"}, "detail_timeframe"),
    ({"strategy": "rsi", "config": {"levels": "many"}}, "config.levels"),
    ({"strategy": "rsi", "config": {"max_open_groups": 0}}, "config.max_open_groups"),
    ({"strategy": "rsi", "colour": "blue"}, "colour"),
    ({"signals_csv": "time,what\n1,entry\n"}, "signals_csv"),
    ({"signals_csv": "timestamp,action\n2024-09-15T00:00:00Z,buy\n"}, "signals_csv"),
    ({"tv_trades_csv": "Trade #,Type\n1,Entry long\n"}, "tv_trades_csv"),
    ({"signals_csv": "timestamp,action\n" + "1726300000000,entry\n" * 30_000}, "signals_csv"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_a_bad_backtest_request_is_a_400_naming_the_field(db, stored_candles, change, field) -> None:
    client = _client()
    body = {"symbol": "BTC/USDT", "timeframe": "1h", "exchange": "binance", **change}
    answer = client.post("/api/tasks/backtest", body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["fields"], answer.json()
    assert not BackgroundTask.objects.exists()


def test_an_upload_over_the_limit_is_refused_by_its_size(db, stored_candles, settings) -> None:
    settings.TASK_UPLOAD_MAX_BYTES = 100
    client = _client()
    csv_text = "timestamp,action,price\n" + "1726300000000,entry,\n" * 10
    answer = client.post(
        "/api/tasks/backtest",
        {"signals_csv": csv_text, "symbol": "BTC/USDT", "timeframe": "1h", "exchange": "binance"},
        format="json",
    )
    assert answer.status_code == 400
    assert "over the 100 byte limit" in answer.json()["fields"]["signals_csv"][0]


def test_a_csv_can_be_uploaded_as_a_file(db, stored_candles) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = _client()
    upload = SimpleUploadedFile("signals.csv", b"timestamp,action,price\n1726444800000,entry,\n", "text/csv")
    answer = client.post(
        "/api/tasks/backtest",
        {"signals_csv": upload, "symbol": "BTC/USDT", "timeframe": "1h", "exchange": "binance"},
        format="multipart",
    )
    assert answer.status_code == 202, answer.content
    task = BackgroundTask.objects.get(pk=answer.json()["task_id"])
    assert task.params["signals_csv"].startswith("timestamp,action,price")
