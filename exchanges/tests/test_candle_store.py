"""The candle store on PostgreSQL (exchanges/candles): file imports (every shared file), atomic failures,
quarantine, `/api/candles` (with 1h built from stored 5m on demand), `import_candles`, and the backfill
through the ccxt adapter against the simulator's klines, resuming after an outage."""

from __future__ import annotations

import gzip
import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from exchanges.candles import rules, selectors, services
from exchanges.candles.services import CandleInputError
from exchanges.models import Candle, CandleBackfill, CandleIssue
from exchanges.simulator.testing import SimulatorProcess

HOUR = 3_600_000


def _name_parts(path: Path) -> tuple[str, str, str]:
    """(exchange, symbol, timeframe) from a shared file name such as binance_BTC_USDT_1m_2024-07-26_30d."""
    parts = path.name.removesuffix(".csv.gz").split("_")
    exchange = "binance" if parts[0] == "freqtrade" else parts[0]  # freqtrade's test data is Binance's
    return exchange, f"{parts[1]}/{parts[2]}", parts[3]


@pytest.mark.slow  # 744k candles: about 25 s
@pytest.mark.django_db
def test_every_shared_candle_file_imports(shared_data: Path) -> None:
    files = sorted((shared_data / "candles").glob("*.csv.gz"))
    assert len(files) == 22
    started = time.monotonic()
    total = 0
    for path in files:
        exchange, symbol, timeframe = _name_parts(path)
        result = services.candles_import(exchange_name=exchange, symbol=symbol, timeframe=timeframe, path=path)
        with gzip.open(path, "rt") as handle:
            rows = sum(1 for _ in handle) - 1
        assert result.rows == rows - result.duplicates, path.name
        assert result.inserted == result.rows, path.name
        total += result.inserted
        if path.name.startswith("freqtrade_XRP_ETH_1m"):
            assert (result.missing, result.quarantined) == (1091, 0)
    elapsed = time.monotonic() - started
    assert Candle.objects.count() == total
    print(f"imported {total} candles from {len(files)} files in {elapsed:.1f} s")
    # Importing a file again stores nothing new.
    again = services.candles_import(
        exchange_name="binance",
        symbol="BTC/USDT",
        timeframe="1d",
        path=shared_data / "candles" / "binance_BTC_USDT_1d.csv.gz",
    )
    assert again.inserted == 0 and again.rows > 400
    # A 100k-candle range read is one index walk.
    t0 = time.monotonic()
    read = selectors.candles_range(exchange_name="binance", symbol="BTC/USDT", timeframe="5m", limit=100_000)
    assert len(read) == 100_000 and read[0].open_ms < read[-1].open_ms
    print(f"read 100k candles in {(time.monotonic() - t0) * 1000:.0f} ms")


@pytest.mark.django_db
def test_the_gap_file_reports_its_missing_minutes_as_issues(shared_data: Path) -> None:
    result = services.candles_import(
        exchange_name="binance",
        symbol="XRP/ETH",
        timeframe="1m",
        path=shared_data / "candles" / "freqtrade_XRP_ETH_1m.csv.gz",
    )
    assert (result.rows, result.missing) == (2469, 1091)
    gaps = CandleIssue.objects.filter(symbol="XRP/ETH", kind="gap")
    assert gaps.count() == result.gaps > 0
    assert sum(int(issue.detail.split()[0]) for issue in gaps) == 1091


CSV = """timestamp_ms,open,high,low,close,volume
{rows}"""


def _csv(rows: list[str]) -> list[str]:
    return CSV.format(rows="\n".join(rows)).splitlines()


def _hourly(count: int, *, bad: dict[int, str] | None = None) -> list[str]:
    lines = [f"{i * HOUR},100,101,99,{100 + (i % 3) * 0.2:.1f},5" for i in range(count)]
    for index, line in (bad or {}).items():
        lines[index] = line
    return lines


@pytest.mark.django_db
def test_a_bad_candle_is_quarantined_reported_and_never_served() -> None:
    lines = _hourly(40, bad={25: f"{25 * HOUR},100,100.5,99,101,5"})  # close above high
    result = services.candles_import(exchange_name="binance", symbol="BTC/USDT", timeframe="1h", lines=_csv(lines))
    assert (result.rows, result.inserted, result.quarantined) == (40, 40, 1)
    bad = Candle.objects.get(open_time=datetime.fromtimestamp(25 * 3600, tz=UTC))
    assert bad.quarantined and bad.quality_note.startswith("ohlc")
    assert CandleIssue.objects.filter(kind="ohlc").count() == 1
    served = selectors.candles_range(exchange_name="binance", symbol="BTC/USDT", timeframe="1h")
    assert len(served) == 39 and 25 * HOUR not in {row.open_ms for row in served}
    everything = selectors.candles_range(
        exchange_name="binance", symbol="BTC/USDT", timeframe="1h", include_quarantined=True
    )
    assert len(everything) == 40


@pytest.mark.django_db
def test_an_import_with_a_bad_row_stores_nothing() -> None:
    lines = _hourly(30, bad={29: f"{29 * HOUR},100,101,99,1O0,5"})
    with pytest.raises(CandleInputError, match=r"row 31, field 'close': not a number: '1O0'"):
        services.candles_import(exchange_name="binance", symbol="BTC/USDT", timeframe="1h", lines=_csv(lines))
    assert not Candle.objects.exists()
    with pytest.raises(CandleInputError, match="unknown timeframe '2m'"):
        services.candles_import(exchange_name="binance", symbol="BTC/USDT", timeframe="2m", lines=_csv(lines))
    with pytest.raises(CandleInputError, match="write it as BASE/QUOTE"):
        services.candles_import(exchange_name="binance", symbol="BTCUSDT", timeframe="1h", lines=_csv(lines))
    with pytest.raises(CandleInputError, match="Unknown exchange 'nowhere'"):
        services.candles_import(exchange_name="nowhere", symbol="BTC/USDT", timeframe="1h", lines=_csv(lines))


@pytest.mark.django_db
def test_import_candles_command(tmp_path: Path) -> None:
    path = tmp_path / "tv.csv"
    path.write_text("time,open,high,low,close,Volume\n" + "\n".join(f"{i * 3600},1,2,0.5,1.5,3" for i in range(5)))
    out = io.StringIO()
    call_command(
        "import_candles", str(path), "--exchange", "binance", "--symbol", "ETH/USDT", "--timeframe", "1h", stdout=out
    )
    assert "Imported 5 new candles of 5 rows" in out.getvalue()
    assert Candle.objects.filter(symbol="ETH/USDT").count() == 5


@pytest.mark.django_db
def test_candles_api_serves_stored_and_built_timeframes(auth_client, shared_data: Path) -> None:
    services.candles_import(
        exchange_name="binance",
        symbol="SOL/USDT",
        timeframe="5m",
        path=shared_data / "candles" / "binance_SOL_USDT_5m.csv.gz",
    )
    start = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
    end = start + 23 * HOUR
    answer = auth_client.get(
        "/api/candles", {"exchange": "binance", "symbol": "SOL/USDT", "timeframe": "1h", "start": start, "end": end}
    )
    assert answer.status_code == 200, answer.content
    built = answer.json()
    assert len(built) == 24 and built[0][0] == start
    with gzip.open(shared_data / "candles" / "binance_SOL_USDT_1h.csv.gz", "rt") as handle:
        hourly = {int(line.split(",")[0]): line.strip().split(",") for line in handle if line[0].isdigit()}
    for row in built:
        assert [Decimal(value) for value in row[1:]] == [Decimal(value) for value in hourly[row[0]][1:]]
    five = auth_client.get(
        "/api/candles",
        {"exchange": "binance", "symbol": "SOL/USDT", "timeframe": "5m", "start": start, "end": start + HOUR - 1},
    )
    assert len(five.json()) == 12
    bad = auth_client.get("/api/candles", {"exchange": "binance", "symbol": "SOL/USDT", "timeframe": "7m"})
    assert bad.status_code == 400 and "timeframe" in bad.json()["fields"]
    missing = auth_client.get("/api/candles", {"exchange": "binance", "timeframe": "1h"})
    assert missing.status_code == 400 and missing.json()["fields"] == {"symbol": ["is required"]}


@pytest.fixture
def replaying_simulator(shared_data: Path, tmp_path: Path, settings):
    """A simulator replaying 1,500 real BTC/USDT 1h candles fast, serving them as klines."""
    source = shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz"
    with gzip.open(source, "rt") as handle:
        lines = handle.read().splitlines()
    path = tmp_path / "btc_1h.csv"
    path.write_text("\n".join(lines[:1501]) + "\n")
    with SimulatorProcess(extra_args=["--candles", str(path), "--symbol", "BTCUSDT", "--speed", "100000000"]) as sim:
        settings.SIMULATOR_URL = sim.url
        last = int(lines[1500].split(",")[0])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            klines = sim._request("GET", f"/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={last}")
            if klines:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the replay did not finish")
        yield sim, [line.split(",") for line in lines[1:1501]]


@pytest.mark.django_db
def test_backfill_through_the_adapter_pages_and_resumes_after_an_outage(replaying_simulator) -> None:
    sim, rows = replaying_simulator
    since = datetime.fromtimestamp(int(rows[0][0]) / 1000, tz=UTC)
    until = datetime.fromtimestamp((int(rows[-1][0]) + HOUR) / 1000, tz=UTC)
    sim.add_fault("GET /api/v3/klines", "error_500", count=10)
    failed = services.candles_backfill(
        exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", since=since, until=until
    )
    assert failed.status == "failed" and failed.error and failed.fetched == 0
    sim.clear_faults()
    done = services.candles_backfill(
        exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", since=since, until=until, page_limit=500
    )
    assert done.pk == failed.pk  # the same backfill, resumed
    assert (done.status, done.fetched, done.progress) == ("done", 1500, 100)
    stored = selectors.candles_range(exchange_name="simulator", symbol="BTC/USDT", timeframe="1h")
    assert [(row.open_ms, row.close) for row in stored] == [(int(r[0]), Decimal(r[4])) for r in rows]
    assert CandleBackfill.objects.count() == 1
    # Run again: nothing new, nothing duplicated.
    again = services.candles_backfill(
        exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", since=since, until=until
    )
    assert again.fetched == 0 and Candle.objects.count() == 1500

    # The live sync: nothing new on 1h; 4h (none stored) gets its last closed candles, as the exchange
    # builds them, equal to ours built from the stored 1h; an hour without candles is a stale feed.
    now = datetime.fromtimestamp((int(rows[-1][0]) + HOUR) / 1000 + 5, tz=UTC)
    assert services.candles_sync(exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", now=now) == 0
    assert services.candles_sync(exchange_name="simulator", symbol="BTC/USDT", timeframe="4h", now=now) > 300 // 4 - 2
    four = {
        row.open_ms: row
        for row in selectors.candles_range(exchange_name="simulator", symbol="BTC/USDT", timeframe="4h")
    }
    built = rules.resample(stored, from_ms=HOUR, to_ms=4 * HOUR)
    compared = [row for row in built if row.open_ms in four]
    assert len(compared) > 50 and all(four[row.open_ms] == row for row in compared)
    assert not CandleIssue.objects.filter(kind="stale").exists()
    later = datetime.fromtimestamp(now.timestamp() + 3 * 3600, tz=UTC)
    assert services.candles_sync(exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", now=later) == 0
    assert CandleIssue.objects.filter(kind="stale", timeframe="1h").count() == 1


@pytest.mark.django_db
def test_backfill_api_answers_202_with_a_task(auth_client, settings) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    answer = auth_client.post(
        "/api/candles/backfill",
        {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "since": "2025-01-01"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["status"] == "PENDING"
    job = CandleBackfill.objects.get(pk=body["task_id"])
    assert (job.symbol, job.timeframe, job.cursor) == ("BTC/USDT", "1h", datetime(2025, 1, 1, tzinfo=UTC))
    detail = auth_client.get(body["status_url"])
    assert detail.status_code == 200 and detail.json()["progress"] == 0
    bad = auth_client.post(
        "/api/candles/backfill", {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}, format="json"
    )
    assert bad.status_code == 400 and "since" in bad.json()["fields"]
    for since in ("138999112440059491516416", "99999-01-01T00:00:00"):  # no date holds them: 400, not 500
        huge = auth_client.post(
            "/api/candles/backfill",
            {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "since": since},
            format="json",
        )
        assert huge.status_code == 400 and "since" in huge.json()["fields"], since


def test_rules_module_used_by_the_store_is_pure() -> None:
    assert rules.timeframe_ms("1h") == HOUR


@pytest.mark.django_db
def test_many_markets_read_together_serve_what_each_read_alone_serves(django_assert_max_num_queries) -> None:
    day = 24 * HOUR
    daily = [f"{i * day},100,110,90,{100 + i},5" for i in range(5)]
    services.candles_import(exchange_name="binance", symbol="BTC/USDT", timeframe="1d", lines=_csv(daily))
    services.candles_import(exchange_name="binance", symbol="ETH/USDT", timeframe="1h", lines=_csv(_hourly(72)))
    markets = [("binance", "BTC/USDT"), ("binance", "ETH/USDT"), ("binance", "SOL/USDT"), ("kraken", "BTC/USDT")]
    with django_assert_max_num_queries(5):  # two, and candles_range building the ETH/USDT days from hours
        together = selectors.candles_range_many(markets=markets, timeframe="1d", start_ms=day, end_ms=3 * day)
    for exchange_name, symbol in markets:
        alone = selectors.candles_range(
            exchange_name=exchange_name, symbol=symbol, timeframe="1d", start_ms=day, end_ms=3 * day
        )
        assert together[(exchange_name, symbol)] == alone, symbol
    assert [row.close for row in together[("binance", "BTC/USDT")]] == [101, 102, 103]
    assert len(together[("binance", "ETH/USDT")]) == 2  # days 1 and 2 are whole in 72 hours
    assert together[("binance", "SOL/USDT")] == together[("kraken", "BTC/USDT")] == []
