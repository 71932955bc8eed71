"""The heavy worker as a real process with a prefork pool (as `make run` starts it), not a thread in the
test: an optimization, whose job starts a process pool of its own inside the pool process, runs to its
end (docs/processes.md#heavy-worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from accounts.tests.factories import UserClient, UserFactory
from analytics.backtest.files import read_candles
from exchanges.candles.services import candles_store
from tradingsite.stack import ROOT, worker_argv
from tradingsite.tests.support import test_database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prefork_heavy_worker(tmp_path):
    """`-Q heavy` with a prefork pool; a second queue name keeps it at normal priority (a heavy-only worker
    lowers its session's, and a busy test machine would starve it)."""
    argv = worker_argv(
        name=f"heavy-test-{os.getpid()}@%h",
        loglevel="warning",
        pool="prefork",
        concurrency=1,
        extra=["-Q", "heavy,heavy-test", "--without-mingle", "--without-gossip"],
    )
    env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "tradingsite.settings.test"}
    log = (tmp_path / "heavy-worker.log").open("w")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield tmp_path / "heavy-worker.log"
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def test_an_optimization_runs_in_the_prefork_heavy_worker(shared_data, prefork_heavy_worker) -> None:
    rows = read_candles(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", timeframe="1h")[: 20 * 24]
    candles_store(exchange_name="binance", symbol="BTC/USDT", timeframe="1h", rows=rows)
    client = UserClient()
    client.force_authenticate(UserFactory.create(role="trader"))
    answer = client.post(
        "/api/tasks/optimize",
        {
            "strategy": "rsi",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "exchange": "binance",
            "space": {"stop_loss_percent": ["5", "10"]},
            "monte_carlo_runs": 10,
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    deadline = time.monotonic() + 180
    while True:
        body = client.get(answer.json()["status_url"]).json()
        if body["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
            break
        assert time.monotonic() < deadline, prefork_heavy_worker.read_text()[-3000:]
        time.sleep(0.5)
    assert body["status"] == "SUCCESS", body.get("error")
    assert len(body["result"]["results"]) == 2
