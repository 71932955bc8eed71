"""Candles as plain data: reading candle files, the data-quality checks, and building a higher timeframe
from a lower one (docs/market-data.md). Pure functions: no ORM, no I/O beyond the text handed in, no
clock (the time is an argument), so the store, the backtester and the tests share them.

A candle is `CandleRow` (open time in epoch ms, Decimal prices). Files come in two formats:

- ours, as in `shared/data/candles`: header `timestamp_ms,open,high,low,close,volume`;
- TradingView's chart export: header `time,open,high,low,close[,Volume][,...]`, `time` in epoch
  seconds or ISO 8601; extra indicator columns are ignored, a missing volume is zero.

Any other header, an unparsable number or time, or a row older than the one before it is refused with
an error naming the row (`CandleFileError`); nothing of such a file is stored.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple

import numpy as np

# Interval lengths of the timeframes candles are stored in (the webhook's timeframes).
TIMEFRAME_MS: Final[dict[str, int]] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
OUR_HEADER: Final = ("timestamp_ms", "open", "high", "low", "close", "volume")
TRADINGVIEW_REQUIRED: Final = ("time", "open", "high", "low", "close")
# Robust z-score (0.6745 · (r − median) / MAD) of a close-to-close log return above which a candle is an
# outlier. Crypto returns have fat tails: 3.5, the textbook cut, would flag real crash candles by the
# hundred; at 30 none of the shared Binance files (14 months of 5m, 1h, 15m, 1d) has one, while a
# price typed with a wrong decimal point (×10 or ÷10) is still 40+ MADs away.
OUTLIER_Z: Final = Decimal(30)
MIN_MAD: Final = 1e-3  # 0.1 % per candle
# A live series is stale when its newest candle closed more than this many intervals ago.
STALE_INTERVALS: Final = 2


class CandleFileError(ValueError):
    """A candle file we refuse, naming the row (1 = the header) and the field."""

    def __init__(self, message: str, *, row: int | None = None, field_name: str | None = None) -> None:
        where = f"row {row}" if row is not None else ""
        if field_name:
            where = f"{where}, field {field_name!r}" if where else f"field {field_name!r}"
        super().__init__(f"{where}: {message}" if where else message)
        self.row = row
        self.field_name = field_name


class CandleRow(NamedTuple):
    """One candle: open time in epoch milliseconds (UTC), prices and volume as Decimal. A named tuple,
    not a dataclass: a file builds a hundred thousand of them."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles between two stored ones: `missing` intervals starting at `start_ms`."""

    start_ms: int
    missing: int


@dataclass(frozen=True, slots=True)
class Flagged:
    """A candle that failed a check: it is stored quarantined and never traded on."""

    open_ms: int
    reason: str  # "ohlc", "non_positive", "outlier"
    detail: str


@dataclass(frozen=True, slots=True)
class QualityReport:
    """What the checks found in a run of candles of one timeframe."""

    candles: int
    gaps: tuple[Gap, ...] = ()
    duplicates: tuple[int, ...] = ()  # open times seen twice (the later row was dropped)
    flagged: tuple[Flagged, ...] = ()

    @property
    def missing(self) -> int:
        return sum(gap.missing for gap in self.gaps)

    @property
    def quarantined(self) -> frozenset[int]:
        return frozenset(flag.open_ms for flag in self.flagged)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A candle file read in full: its rows in time order (duplicates dropped) and what the checks found."""

    rows: tuple[CandleRow, ...]
    report: QualityReport
    format: str  # "ours" or "tradingview"


def timeframe_ms(timeframe: str) -> int:
    """The interval of `timeframe` in ms; `ValueError` naming the known ones otherwise."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}") from None


def _number(text: str, row: int, name: str) -> Decimal:
    try:
        value = Decimal(text)  # surrounding blanks are allowed by Decimal itself
    except InvalidOperation:
        raise CandleFileError(f"not a number: {text[:40]!r}", row=row, field_name=name) from None
    if not value.is_finite():
        raise CandleFileError(f"not a finite number: {text[:40]!r}", row=row, field_name=name)
    return value


def _time_ms(text: str, row: int, name: str, *, seconds: bool) -> int:
    raw = text.strip()
    try:
        if raw.lstrip("-").isdigit():
            number = int(raw)
            return number * 1000 if seconds else number
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CandleFileError(f"not a time: {raw[:40]!r}", row=row, field_name=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def candles_parse(lines: Iterable[str], *, timeframe: str) -> ParsedFile:
    """Read a candle file (either format, see the module's docstring) and check it (`candles_check`).

    Rows must be in time order; a row with the open time of the row before is a duplicate, reported and
    dropped. Raises `CandleFileError` naming the first bad row.
    """
    interval = timeframe_ms(timeframe)
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise CandleFileError("the file is empty", row=1)
    names = [name.strip().lower() for name in header]
    if tuple(names[: len(OUR_HEADER)]) == OUR_HEADER:
        kind, time_column, seconds = "ours", 0, False
        columns = {name: index for index, name in enumerate(OUR_HEADER)}
    elif all(name in names for name in TRADINGVIEW_REQUIRED):
        kind, seconds = "tradingview", True
        columns = {name: names.index(name) for name in TRADINGVIEW_REQUIRED}
        time_column = columns["time"]
        if "volume" in names:
            columns["volume"] = names.index("volume")
    else:
        raise CandleFileError(
            f"unexpected columns {','.join(header)!r}; expected {','.join(OUR_HEADER)!r} "
            f"or TradingView's export ({','.join(TRADINGVIEW_REQUIRED)},Volume)",
            row=1,
        )
    width = max(columns.values()) + 1
    rows: list[CandleRow] = []
    duplicates: list[int] = []
    previous: int | None = None
    for number, record in enumerate(reader, start=2):
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) < width:
            raise CandleFileError(f"expected {width} fields, found {len(record)}", row=number)
        open_ms = _time_ms(record[time_column], number, names[time_column], seconds=seconds)
        values = [_number(record[columns[name]], number, name) for name in ("open", "high", "low", "close")]
        volume = _number(record[columns["volume"]], number, "volume") if "volume" in columns else Decimal(0)
        if open_ms % interval:
            raise CandleFileError(f"open time {open_ms} is not on a {timeframe} boundary", row=number)
        if previous is not None and open_ms < previous:
            raise CandleFileError(
                f"out of order: open time {open_ms} is before the previous row's {previous}", row=number
            )
        if open_ms == previous:
            duplicates.append(open_ms)
            continue
        previous = open_ms
        rows.append(CandleRow(open_ms, values[0], values[1], values[2], values[3], volume))
    report = candles_check(rows, interval_ms=interval)
    report = QualityReport(report.candles, report.gaps, tuple(duplicates), report.flagged)
    return ParsedFile(rows=tuple(rows), report=report, format=kind)


def candle_flags(candle: CandleRow) -> list[Flagged]:
    """The checks one candle fails on its own: non-positive prices, OHLC inconsistency."""
    low, high, open_, close = candle.low, candle.high, candle.open, candle.close
    if low <= 0 or open_ <= 0 or close <= 0 or high <= 0:
        return [Flagged(candle.open_ms, "non_positive", "a price is zero or negative")]
    if candle.volume < 0:
        return [Flagged(candle.open_ms, "ohlc", "negative volume")]
    if not (low <= open_ <= high and low <= close <= high):
        return [Flagged(candle.open_ms, "ohlc", "low <= open, close <= high does not hold")]
    return []


def outliers(rows: Sequence[CandleRow], *, skip: frozenset[int] = frozenset(), z: Decimal = OUTLIER_Z) -> list[Flagged]:
    """Spikes: candles whose close jumped from the last good close by more than `z` robust z-scores
    (against the median and MAD of the run's close-to-close log moves) and whose next candle jumps back;
    the newest candle, which has no next one yet, on its own jump. The candle after a spike is measured
    from the last good close, so it is not flagged too."""
    kept = [row for row in rows if row.open_ms not in skip]
    if len(kept) < 21:
        return []
    # A statistic, not money: floats, vectorised (a 120k-candle file in milliseconds).
    closes = np.array([float(row.close) for row in kept])
    moves = np.diff(np.log(closes))
    median = float(np.median(moves))
    # A floor under the spread: a run of near-identical moves (a flat or synthetic feed) must not make
    # every ordinary move an outlier.
    mad = max(float(np.median(np.abs(moves - median))), MIN_MAD)
    limit = float(z)
    if not (np.abs(0.6745 * (moves - median) / mad) > limit).any():
        return []

    def score(after: float, before: float) -> float:
        return 0.6745 * (math.log(after / before) - median) / mad

    found: list[Flagged] = []
    good = float(closes[0])
    for index in range(1, len(kept)):
        close = float(closes[index])
        move_in = score(close, good)
        if abs(move_in) > limit:
            following = float(closes[index + 1]) if index + 1 < len(kept) else None
            move_out = None if following is None else score(following, close)
            if move_out is None or (abs(move_out) > limit and (move_out > 0) != (move_in > 0)):
                found.append(
                    Flagged(kept[index].open_ms, "outlier", f"robust z-score {move_in:.1f} of the close-to-close move")
                )
                continue
        good = close
    return found


def gaps(rows: Sequence[CandleRow], *, interval_ms: int) -> list[Gap]:
    """Runs of missing candles between consecutive rows (rows in time order)."""
    found: list[Gap] = []
    for before, after in zip(rows, rows[1:], strict=False):
        step = after.open_ms - before.open_ms
        if step > interval_ms:
            found.append(Gap(before.open_ms + interval_ms, step // interval_ms - 1))
    return found


def candles_check(rows: Sequence[CandleRow], *, interval_ms: int) -> QualityReport:
    """Gaps, and the candles to quarantine: inconsistent or non-positive ones, then outlier moves among
    the rest (rows in time order, one timeframe)."""
    flagged = [flag for row in rows for flag in candle_flags(row)]
    bad = frozenset(flag.open_ms for flag in flagged)
    flagged.extend(outliers(rows, skip=bad))
    flagged.sort(key=lambda flag: flag.open_ms)
    return QualityReport(candles=len(rows), gaps=tuple(gaps(rows, interval_ms=interval_ms)), flagged=tuple(flagged))


def is_stale(*, newest_open_ms: int | None, interval_ms: int, now_ms: int) -> bool:
    """Whether a live series has stopped: its newest candle closed more than `STALE_INTERVALS` ago."""
    if newest_open_ms is None:
        return True
    return now_ms - (newest_open_ms + interval_ms) > STALE_INTERVALS * interval_ms


def last_closed_open_ms(*, now_ms: int, interval_ms: int) -> int:
    """The open time of the newest candle of `interval_ms` that has closed at `now_ms`."""
    return now_ms - now_ms % interval_ms - interval_ms


def resample(rows: Sequence[CandleRow], *, from_ms: int, to_ms: int) -> list[CandleRow]:
    """Candles of `to_ms` built from those of `from_ms` (rows in time order): open of the first, highest
    high, lowest low, close of the last, summed volume. Only complete buckets (every lower candle
    present) become candles: a bucket with a gap, or one still open, is left out."""
    if to_ms % from_ms or to_ms < from_ms:
        raise ValueError(f"cannot build {to_ms} ms candles from {from_ms} ms ones")
    per_bucket = to_ms // from_ms
    out: list[CandleRow] = []
    bucket: list[CandleRow] = []
    bucket_start: int | None = None
    for row in rows:
        start = row.open_ms - row.open_ms % to_ms
        if start != bucket_start:
            if bucket_start is not None and len(bucket) == per_bucket:
                out.append(_merge(bucket_start, bucket))
            bucket, bucket_start = [], start
        bucket.append(row)
    if bucket_start is not None and len(bucket) == per_bucket:
        out.append(_merge(bucket_start, bucket))
    return out


def _merge(start: int, bucket: Sequence[CandleRow]) -> CandleRow:
    return CandleRow(
        open_ms=start,
        open=bucket[0].open,
        high=max(row.high for row in bucket),
        low=min(row.low for row in bucket),
        close=bucket[-1].close,
        volume=sum((row.volume for row in bucket), Decimal(0)),
    )


def lower_timeframes(timeframe: str) -> list[str]:
    """The stored timeframes `timeframe` can be built from, nearest first (5m before 1m for 1h)."""
    target = timeframe_ms(timeframe)
    candidates = [name for name, ms in TIMEFRAME_MS.items() if ms < target and target % ms == 0]
    return sorted(candidates, key=lambda name: -TIMEFRAME_MS[name])
