"""Writes of the candle store (docs/market-data.md#store): file import, backfill through the exchange
adapter, the live sync of closed candles, and the quality findings they report.

Every write of candles goes through `candles_store`: COPY into a temporary table, then one INSERT ... ON
CONFLICT DO NOTHING into the store, so a re-import or an overlapping page never duplicates a candle and
100k rows take about a second. The checks themselves are pure (`exchanges.candles.rules`).
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from .. import services as exchange_services
from ..exceptions import ExchangeError
from ..models import Candle, CandleBackfill, CandleIssue
from ..selectors import market_rules_count, market_symbol_resolve
from . import rules
from .rules import CandleFileError, CandleRow, Flagged, QualityReport

logger = logging.getLogger(__name__)

BACKFILL_PAGE = 1000  # Binance's largest klines page


class CandleInputError(ValueError):
    """An import or backfill request we refuse: unknown symbol or timeframe, a bad file (the row named)."""

    def __init__(self, message: str, *, field_name: str) -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass(frozen=True)
class ImportResult:
    """What an import or a sync stored and found."""

    exchange_name: str
    symbol: str
    timeframe: str
    rows: int  # candles read (after dropping duplicates)
    inserted: int  # new in the store (the rest were there already)
    quarantined: int
    missing: int  # candles missing in gaps
    gaps: int
    duplicates: int
    first: datetime | None = None
    last: datetime | None = None
    issues: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange_name,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "rows": self.rows,
            "inserted": self.inserted,
            "quarantined": self.quarantined,
            "gaps": self.gaps,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
        }


def _at(open_ms: int) -> datetime:
    return datetime.fromtimestamp(open_ms / 1000, tz=UTC)


def candle_symbol_resolve(*, exchange_name: str, raw: str) -> str:
    """The unified symbol (``BTC/USDT``) of `raw`: through the exchange's market rules when we hold them,
    else `raw` itself when it is written ``BASE/QUOTE``. `CandleInputError` otherwise."""
    match = market_symbol_resolve(exchange_name=exchange_name, raw=raw.strip().upper())
    if match is not None:
        return match[0]
    if market_rules_count(exchange_name=exchange_name):
        raise CandleInputError(f"{raw!r} is not a market on {exchange_name}.", field_name="symbol")
    parts = raw.strip().upper().split("/")
    if len(parts) == 2 and all(part.isalnum() for part in parts):
        return f"{parts[0]}/{parts[1]}"
    raise CandleInputError(
        f"unknown symbol {raw!r}: no market rules for {exchange_name}; write it as BASE/QUOTE", field_name="symbol"
    )


def candle_exchange_check(raw: str) -> str:
    """``" Binance "`` → ``binance``; `CandleInputError` for a name that is no ccxt exchange nor the simulator."""
    try:
        return exchange_services.exchange_name_normalize(raw)
    except ValidationError as exc:
        raise CandleInputError(" ".join(exc.message_dict.get("exchange", [str(exc)])), field_name="exchange") from None


def candle_timeframe_check(timeframe: str) -> str:
    try:
        rules.timeframe_ms(timeframe)
    except ValueError as exc:
        raise CandleInputError(str(exc), field_name="timeframe") from None
    return timeframe


def candles_store(
    *, exchange_name: str, symbol: str, timeframe: str, rows: Sequence[CandleRow], flagged: Iterable[Flagged] = ()
) -> int:
    """Store candles (new keys only; an existing candle is kept as it is), the `flagged` ones quarantined
    with their reason. Returns how many were new. Runs in the caller's transaction, or its own."""
    if not rows:
        return 0
    notes: Mapping[int, str] = {flag.open_ms: f"{flag.reason}: {flag.detail}"[:200] for flag in flagged}
    table = Candle._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS candle_incoming (open_time timestamptz, open numeric,"
            " high numeric, low numeric, close numeric, volume numeric, quarantined boolean, quality_note text)"
            " ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE candle_incoming")
        raw = cursor.cursor  # psycopg's own cursor: COPY is not part of the DB-API
        with raw.copy(
            "COPY candle_incoming (open_time, open, high, low, close, volume, quarantined, quality_note) FROM STDIN"
        ) as copy:
            for row in rows:
                note = notes.get(row.open_ms, "")
                copy.write_row((_at(row.open_ms), row.open, row.high, row.low, row.close, row.volume, bool(note), note))
        cursor.execute(
            f"""INSERT INTO {table} (exchange_name, symbol, timeframe, open_time, open, high, low, close, volume,
                       quarantined, quality_note)
                SELECT %s, %s, %s, open_time, open, high, low, close, volume, quarantined, quality_note
                  FROM candle_incoming
                ON CONFLICT (exchange_name, symbol, timeframe, open_time) DO NOTHING""",
            [exchange_name, symbol, timeframe],
        )
        return cursor.rowcount


def candle_issues_record(*, exchange_name: str, symbol: str, timeframe: str, report: QualityReport) -> list[str]:
    """Store what the checks found as `CandleIssue` rows (one per gap, duplicate and quarantined candle)
    and return them as sentences for the caller's answer."""
    issues: list[CandleIssue] = []
    key = {"exchange_name": exchange_name, "symbol": symbol, "timeframe": timeframe}
    for gap in report.gaps:
        issues.append(
            CandleIssue(**key, kind="gap", open_time=_at(gap.start_ms), detail=f"{gap.missing} candles missing")
        )
    for open_ms in report.duplicates:
        issues.append(CandleIssue(**key, kind="duplicate", open_time=_at(open_ms), detail="second row dropped"))
    for flag in report.flagged:
        issues.append(CandleIssue(**key, kind=flag.reason, open_time=_at(flag.open_ms), detail=flag.detail[:300]))
    CandleIssue.objects.bulk_create(issues, batch_size=1000)
    return [f"{issue.kind} at {issue.open_time:%Y-%m-%d %H:%M}: {issue.detail}" for issue in issues]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller's with


def candles_import(
    *, exchange_name: str, symbol: str, timeframe: str, path: Path | None = None, lines: Iterable[str] | None = None
) -> ImportResult:
    """Import one candle file (ours or TradingView's export, gzip or not), atomically: a file with a bad
    row stores nothing (`CandleInputError` naming the row). Gaps, duplicates and quarantined candles
    are stored as `CandleIssue`s and counted in the result."""
    exchange_name = candle_exchange_check(exchange_name)
    timeframe = candle_timeframe_check(timeframe)
    unified = candle_symbol_resolve(exchange_name=exchange_name, raw=symbol)
    try:
        if path is not None:
            with _open_text(path) as handle:
                parsed = rules.candles_parse(handle, timeframe=timeframe)
        else:
            parsed = rules.candles_parse(lines or [], timeframe=timeframe)
    except CandleFileError as exc:
        raise CandleInputError(str(exc), field_name="file") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CandleInputError(f"cannot read the file: {exc}", field_name="file") from None
    report = parsed.report
    with transaction.atomic():
        inserted = candles_store(
            exchange_name=exchange_name, symbol=unified, timeframe=timeframe, rows=parsed.rows, flagged=report.flagged
        )
        issues = candle_issues_record(exchange_name=exchange_name, symbol=unified, timeframe=timeframe, report=report)
    return ImportResult(
        exchange_name=exchange_name,
        symbol=unified,
        timeframe=timeframe,
        rows=len(parsed.rows),
        inserted=inserted,
        quarantined=len(report.flagged),
        missing=report.missing,
        gaps=len(report.gaps),
        duplicates=len(report.duplicates),
        first=_at(parsed.rows[0].open_ms) if parsed.rows else None,
        last=_at(parsed.rows[-1].open_ms) if parsed.rows else None,
        issues=issues,
    )


def _closed(raw_rows: Sequence[tuple[Any, ...]], *, interval_ms: int, now_ms: int) -> list[CandleRow]:
    """The adapter's rows as candles, without the one still open."""
    out = []
    for row in raw_rows:
        open_ms = int(row[0])
        if open_ms + interval_ms > now_ms:
            continue
        out.append(CandleRow(open_ms, row[1], row[2], row[3], row[4], row[5]))
    return out


def _flags(rows: Sequence[CandleRow]) -> list[Flagged]:
    return [flag for row in rows for flag in rules.candle_flags(row)]


def candle_backfill_start(
    *, exchange_name: str, symbol: str, timeframe: str, since: datetime, until: datetime | None = None
) -> CandleBackfill:
    """Validate a backfill request and store it (to be run by `candles_backfill(backfill_id=...)`)."""
    exchange_name = candle_exchange_check(exchange_name)
    timeframe = candle_timeframe_check(timeframe)
    symbol = candle_symbol_resolve(exchange_name=exchange_name, raw=symbol)
    until = until or timezone.now()
    if since >= until:
        raise CandleInputError("since must be before until", field_name="since")
    return CandleBackfill.objects.create(
        exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, since=since, until=until, cursor=since
    )


def candles_backfill(
    *,
    exchange_name: str,
    symbol: str,
    timeframe: str,
    since: datetime | None = None,
    until: datetime | None = None,
    backfill_id: Any = None,
    page_limit: int = BACKFILL_PAGE,
    now: datetime | None = None,
) -> CandleBackfill:
    """Fetch candles from the exchange (`fetch_ohlcv`, paged, each page booked in the shared weight
    budget by the adapter) from `since` to `until` (default: now) and store them, committing each page
    and the cursor with it. On an exchange error it stops, `failed`, with the error; calling it again
    for the same series (or with `backfill_id`) resumes at the cursor."""
    now = now or timezone.now()
    if backfill_id is not None:
        job = CandleBackfill.objects.get(pk=backfill_id)
        exchange_name, symbol, timeframe = job.exchange_name, job.symbol, job.timeframe
    else:
        exchange_name = candle_exchange_check(exchange_name)
        timeframe = candle_timeframe_check(timeframe)
        symbol = candle_symbol_resolve(exchange_name=exchange_name, raw=symbol)
        found = (
            CandleBackfill.objects.filter(
                exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, status__in=["running", "failed"]
            )
            .order_by("-created_at")
            .first()
        )
        if found is not None and (since is None or found.since == since):
            job = found
        else:
            if since is None:
                raise CandleInputError("a backfill needs a start (since)", field_name="since")
            job = CandleBackfill.objects.create(
                exchange_name=exchange_name,
                symbol=symbol,
                timeframe=timeframe,
                since=since,
                until=until or now,
                cursor=since,
            )
    interval = rules.timeframe_ms(timeframe)
    job.status, job.error = "running", ""
    job.save(update_fields=["status", "error"])
    adapter = exchange_services.public_adapter(exchange_name)
    until_ms = int(job.until.timestamp() * 1000)
    now_ms = int(now.timestamp() * 1000)
    try:
        cursor_ms = int(job.cursor.timestamp() * 1000)
        while cursor_ms < until_ms:
            page = adapter.fetch_ohlcv(symbol, timeframe, since=cursor_ms, limit=page_limit)
            candles = [row for row in _closed(page, interval_ms=interval, now_ms=now_ms) if row.open_ms < until_ms]
            candles = [row for row in candles if row.open_ms >= cursor_ms]
            cursor_ms = until_ms if not candles else candles[-1].open_ms + interval
            with transaction.atomic():
                flagged = _flags(candles)
                job.fetched += candles_store(
                    exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, rows=candles, flagged=flagged
                )
                candle_issues_record(
                    exchange_name=exchange_name,
                    symbol=symbol,
                    timeframe=timeframe,
                    report=QualityReport(
                        len(candles), tuple(rules.gaps(candles, interval_ms=interval)), (), tuple(flagged)
                    ),
                )
                job.cursor = _at(min(cursor_ms, until_ms))
                job.updated_at = timezone.now()
                job.save(update_fields=["fetched", "cursor", "updated_at"])
        job.status = "done"
    except ExchangeError as exc:
        logger.warning("backfill %s stopped at %s: %s", job.pk, job.cursor, exc)
        job.status, job.error = "failed", str(exc)[:2000]
    finally:
        adapter.close()
    job.updated_at = timezone.now()
    job.save(update_fields=["status", "error", "updated_at"])
    return job


def candles_sync(*, exchange_name: str, symbol: str, timeframe: str, now: datetime, warmup: int = 300) -> int:
    """Append every candle of the series that has closed since the newest stored one (the last `warmup`
    candles when none is stored yet), through the exchange adapter. A series that is still behind
    afterwards is reported `stale` once per newest candle. Returns how many were stored."""
    interval = rules.timeframe_ms(timeframe)
    now_ms = int(now.timestamp() * 1000)
    newest = (
        Candle.objects.filter(exchange_name=exchange_name, symbol=symbol, timeframe=timeframe)
        .order_by("-open_time")
        .values_list("open_time", flat=True)
        .first()
    )
    last_closed = rules.last_closed_open_ms(now_ms=now_ms, interval_ms=interval)
    start_ms = int(newest.timestamp() * 1000) + interval if newest else last_closed - (warmup - 1) * interval
    if start_ms > last_closed:
        return 0
    adapter = exchange_services.public_adapter(exchange_name)
    stored = 0
    try:
        while start_ms <= last_closed:
            page = adapter.fetch_ohlcv(symbol, timeframe, since=start_ms, limit=BACKFILL_PAGE)
            candles = [row for row in _closed(page, interval_ms=interval, now_ms=now_ms) if row.open_ms >= start_ms]
            if not candles:
                break
            stored += candles_store(
                exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, rows=candles, flagged=_flags(candles)
            )
            start_ms = candles[-1].open_ms + interval
    finally:
        adapter.close()
    newest_ms = start_ms - interval if stored or newest else None
    if rules.is_stale(newest_open_ms=newest_ms, interval_ms=interval, now_ms=now_ms):
        detail = "no closed candle for more than two intervals"
        CandleIssue.objects.get_or_create(
            exchange_name=exchange_name,
            symbol=symbol,
            timeframe=timeframe,
            kind="stale",
            open_time=_at(newest_ms) if newest_ms is not None else None,
            defaults={"detail": detail},
        )
    return stored
