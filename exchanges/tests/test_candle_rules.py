"""The candle store's pure rules (exchanges/candles/rules.py): file formats and their errors, the quality
checks, and higher timeframes built from lower ones. No database."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from exchanges.candles import rules
from exchanges.candles.rules import CandleFileError, CandleRow

HOUR = 3_600_000


def _lines(text: str) -> list[str]:
    return text.strip().splitlines()


def _read(path: Path, timeframe: str) -> rules.ParsedFile:
    with gzip.open(path, "rt", newline="") as handle:
        return rules.candles_parse(handle, timeframe=timeframe)


def test_our_format_is_read_with_decimals_and_exponents() -> None:
    parsed = rules.candles_parse(
        _lines("""timestamp_ms,open,high,low,close,volume
1734220800000,2.334e-05,2.334e-05,2.282e-05,2.301e-05,5.646710688e+11
1734224400000,2.3e-05,2.36e-05,2.3e-05,2.356e-05,5.585750432e+11"""),
        timeframe="1h",
    )
    assert parsed.format == "ours"
    assert parsed.rows[0] == CandleRow(
        1734220800000,
        Decimal("0.00002334"),
        Decimal("0.00002334"),
        Decimal("0.00002282"),
        Decimal("0.00002301"),
        Decimal("564671068800"),
    )
    assert parsed.report.gaps == () and parsed.report.flagged == ()


def test_tradingview_export_with_seconds_iso_times_and_extra_columns() -> None:
    parsed = rules.candles_parse(
        _lines("""time,open,high,low,close,Volume,Volume MA
1735689600,93576,93702.15,93489.03,93656.18,175.85673,150.2
2025-01-01T01:00:00Z,93656.19,93898.05,93614.95,93761.9,95.41749,140"""),
        timeframe="1h",
    )
    assert parsed.format == "tradingview"
    assert [row.open_ms for row in parsed.rows] == [1735689600000, 1735693200000]
    assert parsed.rows[1].volume == Decimal("95.41749")
    no_volume = rules.candles_parse(_lines("time,open,high,low,close\n1735689600,1,2,0.5,1.5"), timeframe="1h")
    assert no_volume.rows[0].volume == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,o,h,l,c\n1,2,3,4,5", "row 1: unexpected columns"),
        ("timestamp_ms,open,high,low,close,volume\n3600000,1,2,0.5,abc,1", "row 2, field 'close': not a number"),
        ("timestamp_ms,open,high,low,close,volume\n3600000,1,2,0.5,1,1\n0,1,2,0.5,1,1", "row 3: out of order"),
        ("timestamp_ms,open,high,low,close,volume\n3600000,1,2,0.5", "row 2: expected 6 fields, found 4"),
        ("timestamp_ms,open,high,low,close,volume\n3600001,1,2,0.5,1,1", "row 2: open time 3600001 is not on a 1h"),
        ("time,open,high,low,close\nyesterday,1,2,0.5,1", "row 2, field 'time': not a time"),
        ("timestamp_ms,open,high,low,close,volume\n3600000,1,2,0.5,NaN,1", "row 2, field 'close': not a finite"),
        ("", "row 1: the file is empty"),
    ],
)
def test_bad_files_name_the_row_and_field(text: str, message: str) -> None:
    with pytest.raises(CandleFileError) as caught:
        rules.candles_parse(text.splitlines(), timeframe="1h")
    assert str(caught.value).startswith(message)


def test_unknown_timeframe_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        rules.candles_parse(["timestamp_ms,open,high,low,close,volume"], timeframe="7m")


def test_duplicates_are_dropped_and_reported() -> None:
    parsed = rules.candles_parse(
        _lines("""timestamp_ms,open,high,low,close,volume
0,1,2,0.5,1.5,1
0,1,2,0.5,1.5,1
3600000,1.5,2,1,1.8,1"""),
        timeframe="1h",
    )
    assert [row.open_ms for row in parsed.rows] == [0, HOUR]
    assert parsed.report.duplicates == (0,)


def _row(open_ms: int, o: str, h: str, low: str, c: str) -> CandleRow:
    return CandleRow(open_ms, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(1))


def test_inconsistent_non_positive_and_outlier_candles_are_flagged() -> None:
    # A quiet series with small moves, one high below its close, one zero low, one price ×10 (a typo).
    rows = [_row(i * HOUR, "100", "101", "99", str(100 + (i * 7 % 11) * Decimal("0.08"))) for i in range(60)]
    rows[10] = _row(10 * HOUR, "100", "100.2", "99", "100.5")  # close above high
    rows[20] = _row(20 * HOUR, "100", "101", "0", "100.3")  # low of zero
    rows[40] = _row(40 * HOUR, "100", "1010", "99", "1003")  # a wrong decimal point
    report = rules.candles_check(rows, interval_ms=HOUR)
    assert [(flag.open_ms // HOUR, flag.reason) for flag in report.flagged] == [
        (10, "ohlc"),
        (20, "non_positive"),
        (40, "outlier"),
    ]
    assert report.quarantined == {10 * HOUR, 20 * HOUR, 40 * HOUR}


def test_real_binance_files_have_no_outliers_or_bad_candles(shared_data: Path) -> None:
    for name, timeframe in (
        ("binance_BTC_USDT_1h", "1h"),
        ("binance_PEPE_USDT_1h", "1h"),
        ("binance_ETH_USDT_1d", "1d"),
    ):
        parsed = _read(shared_data / "candles" / f"{name}.csv.gz", timeframe)
        assert parsed.report.flagged == (), name


def test_gap_file_reports_its_1091_missing_minutes(shared_data: Path) -> None:
    parsed = _read(shared_data / "candles" / "freqtrade_XRP_ETH_1m.csv.gz", "1m")
    assert len(parsed.rows) == 2469
    assert parsed.report.missing == 1091
    assert parsed.report.gaps  # several runs, each reported with its start
    assert all(gap.start_ms % 60_000 == 0 and gap.missing > 0 for gap in parsed.report.gaps)


@pytest.mark.parametrize("base", ["BTC", "ETH", "SOL"])
def test_5m_to_1h_equals_the_exchanges_own_1h(shared_data: Path, base: str) -> None:
    five = _read(shared_data / "candles" / f"binance_{base}_USDT_5m.csv.gz", "5m").rows
    hourly = {row.open_ms: row for row in _read(shared_data / "candles" / f"binance_{base}_USDT_1h.csv.gz", "1h").rows}
    built = rules.resample(five, from_ms=300_000, to_ms=HOUR)
    compared = [row for row in built if row.open_ms in hourly]
    assert len(compared) > 9000  # 2025-01 .. 2026-02 overlap
    mismatched = [row.open_ms for row in compared if row != hourly[row.open_ms]]
    assert mismatched == []


def test_resample_leaves_out_incomplete_buckets() -> None:
    rows = [_row(i * 300_000, "1", "2", "0.5", "1.5") for i in range(12 + 6)]  # one hour and a half
    del rows[3]  # a gap in the first hour
    assert rules.resample(rows, from_ms=300_000, to_ms=HOUR) == []
    full = [_row(i * 300_000, str(i + 1), str(i + 2), str(i + 0.5), str(i + 1.5)) for i in range(12)]
    (hour,) = rules.resample(full, from_ms=300_000, to_ms=HOUR)
    assert (hour.open, hour.high, hour.low, hour.close, hour.volume) == (
        Decimal(1),
        Decimal(13),
        Decimal("0.5"),
        Decimal("12.5"),
        Decimal(12),
    )
    with pytest.raises(ValueError):
        rules.resample(full, from_ms=HOUR, to_ms=300_000)


def test_stale_and_last_closed() -> None:
    assert rules.last_closed_open_ms(now_ms=10 * HOUR + 5, interval_ms=HOUR) == 9 * HOUR
    assert not rules.is_stale(newest_open_ms=9 * HOUR, interval_ms=HOUR, now_ms=10 * HOUR + 5)
    assert rules.is_stale(newest_open_ms=6 * HOUR, interval_ms=HOUR, now_ms=10 * HOUR + 5)
    assert rules.is_stale(newest_open_ms=None, interval_ms=HOUR, now_ms=0)
    assert rules.lower_timeframes("1h")[:3] == ["30m", "15m", "5m"]
