"""Reads of the candle store (docs/market-data.md#store). Quarantined candles are left out unless asked
for: nothing trades on them.

A timeframe with no stored candles is built on demand from the nearest lower stored one
(`exchanges.candles.rules.resample`: 5m → 1h, 1m → 5m, ...), complete buckets only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import connection
from django.db.models import QuerySet

from ..models import Candle, CandleBackfill, CandleIssue
from . import rules
from .rules import CandleRow

_COLUMNS = "(extract(epoch FROM open_time) * 1000)::bigint, open, high, low, close, volume"

type Series = tuple[str, str, str]  # (exchange, unified symbol, timeframe)
type FloatCandle = tuple[int, float, float, float, float, float]


def _stored_range(
    *,
    exchange_name: str,
    symbol: str,
    timeframe: str,
    start_ms: int | None,
    end_ms: int | None,
    limit: int | None,
    include_quarantined: bool,
) -> list[CandleRow]:
    where = ["exchange_name = %s", "symbol = %s", "timeframe = %s"]
    params: list[str | int | datetime] = [exchange_name, symbol, timeframe]
    if start_ms is not None:
        where.append("open_time >= %s")
        params.append(datetime.fromtimestamp(start_ms / 1000, tz=UTC))
    if end_ms is not None:
        where.append("open_time <= %s")
        params.append(datetime.fromtimestamp(end_ms / 1000, tz=UTC))
    if not include_quarantined:
        where.append("NOT quarantined")
    # The newest `limit` candles when only an end (or nothing) is given, the oldest from a start.
    newest_first = limit is not None and start_ms is None
    query = f"SELECT {_COLUMNS} FROM {Candle._meta.db_table} WHERE {' AND '.join(where)}"
    query += " ORDER BY open_time DESC" if newest_first else " ORDER BY open_time"
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = [CandleRow(*row) for row in cursor.fetchall()]
    return rows[::-1] if newest_first else rows


def candles_stored_timeframes(*, exchange_name: str, symbol: str) -> list[str]:
    """The timeframes the store holds candles of for one market."""
    return sorted(
        Candle.objects.filter(exchange_name=exchange_name, symbol=symbol)
        .values_list("timeframe", flat=True)
        .distinct()
        .order_by()
    )


def candles_stored_symbols(*, exchange_name: str) -> list[str]:
    """The unified symbols the store holds candles of on one exchange."""
    return sorted(
        Candle.objects.filter(exchange_name=exchange_name).values_list("symbol", flat=True).distinct().order_by()
    )


def candles_range(
    *,
    exchange_name: str,
    symbol: str,
    timeframe: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
    include_quarantined: bool = False,
) -> list[CandleRow]:
    """Candles of one series in time order, open times within [start_ms, end_ms] (ms, inclusive); with
    `limit` and no start, the newest `limit`. Built from a lower stored timeframe when none of this one
    is stored."""
    found = _stored_range(
        exchange_name=exchange_name,
        symbol=symbol,
        timeframe=timeframe,
        start_ms=start_ms,
        end_ms=end_ms,
        limit=limit,
        include_quarantined=include_quarantined,
    )
    if found:
        return found
    stored = set(candles_stored_timeframes(exchange_name=exchange_name, symbol=symbol))
    if timeframe in stored:
        return []
    target = rules.timeframe_ms(timeframe)
    for lower in rules.lower_timeframes(timeframe):
        if lower not in stored:
            continue
        source_ms = rules.TIMEFRAME_MS[lower]
        source_limit = None if limit is None else (limit + 1) * (target // source_ms)
        lower_rows = _stored_range(
            exchange_name=exchange_name,
            symbol=symbol,
            timeframe=lower,
            start_ms=None if start_ms is None else start_ms - start_ms % target,
            end_ms=None if end_ms is None else end_ms - end_ms % target + target - source_ms,
            limit=source_limit,
            include_quarantined=include_quarantined,
        )
        built = rules.resample(lower_rows, from_ms=source_ms, to_ms=target)
        if start_ms is not None:
            built = [row for row in built if row.open_ms >= start_ms]
        if end_ms is not None:
            built = [row for row in built if row.open_ms <= end_ms]
        return built[-limit:] if limit is not None and start_ms is None else built[:limit]
    return []


def candles_range_many(
    *, markets: Sequence[tuple[str, str]], timeframe: str, start_ms: int, end_ms: int
) -> dict[tuple[str, str], list[CandleRow]]:
    """`candles_range` of many (exchange, symbol) markets over one window, clean candles only, in two
    statements whatever their number (the performance page marks hundreds of pairs to market); only a
    market whose timeframe must be built from a lower one costs a `candles_range` of its own."""
    wanted = sorted(set(markets))
    if not wanted:
        return {}
    pairs = ", ".join(["(%s, %s)"] * len(wanted))
    keys: list[str] = [value for market in wanted for value in market]
    found: dict[tuple[str, str], list[CandleRow]] = {market: [] for market in wanted}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT exchange_name, symbol, {_COLUMNS} FROM {Candle._meta.db_table}"
            f" WHERE (exchange_name, symbol) IN ({pairs}) AND timeframe = %s AND NOT quarantined"
            " AND open_time >= %s AND open_time <= %s ORDER BY exchange_name, symbol, open_time",
            [
                *keys,
                timeframe,
                datetime.fromtimestamp(start_ms / 1000, tz=UTC),
                datetime.fromtimestamp(end_ms / 1000, tz=UTC),
            ],
        )
        for exchange_name, symbol, *row in cursor.fetchall():
            found[(exchange_name, symbol)].append(CandleRow(*row))
    missing = [market for market, rows in found.items() if not rows]
    if not missing:
        return found
    lower = set(rules.lower_timeframes(timeframe))
    stored = (
        Candle.objects.filter(exchange_name__in={m[0] for m in missing}, symbol__in={m[1] for m in missing})
        .values_list("exchange_name", "symbol", "timeframe")
        .distinct()
        .order_by()
    )
    timeframes: dict[tuple[str, str], set[str]] = {}
    for exchange_name, symbol, stored_timeframe in stored:
        timeframes.setdefault((exchange_name, symbol), set()).add(stored_timeframe)
    for market in missing:
        held = timeframes.get(market, set())
        if timeframe not in held and held & lower:
            found[market] = candles_range(
                exchange_name=market[0], symbol=market[1], timeframe=timeframe, start_ms=start_ms, end_ms=end_ms
            )
    return found


def candles_tails(
    *, series: Sequence[Series], count: int, after_ms: dict[Series, int] | None = None
) -> dict[Series, list[FloatCandle]]:
    """For indicator maths (pandas works in floats): the newest `count` clean candles of each series, in
    time order, in one statement; with `after_ms`, only the candles after that open time per series (a
    live tick fetches just what closed since it last looked)."""
    if not series:
        return {}
    after_ms = after_ms or {}
    values = ", ".join(["(%s, %s, %s, %s::bigint)"] * len(series))
    params: list[str | int] = []
    for key in series:
        params.extend([*key, after_ms.get(key, -1)])
    query = f"""SELECT s.exchange_name, s.symbol, s.timeframe, c.*
          FROM (VALUES {values}) AS s(exchange_name, symbol, timeframe, after_ms)
          CROSS JOIN LATERAL (
               SELECT (extract(epoch FROM open_time) * 1000)::bigint AS open_ms, open::float8, high::float8,
                      low::float8, close::float8, volume::float8
                 FROM {Candle._meta.db_table} c
                WHERE c.exchange_name = s.exchange_name AND c.symbol = s.symbol AND c.timeframe = s.timeframe
                  AND NOT c.quarantined AND c.open_time > to_timestamp(s.after_ms / 1000.0)
                ORDER BY c.open_time DESC LIMIT %s) c"""
    params.append(count)
    out: dict[Series, list[FloatCandle]] = {key: [] for key in series}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for exchange_name, symbol, timeframe, *row in cursor.fetchall():
            open_ms, open_, high, low, close, volume = row
            out[(exchange_name, symbol, timeframe)].append((open_ms, open_, high, low, close, volume))
    for rows in out.values():
        rows.reverse()
    return out


def candle_newest_open_ms(*, exchange_name: str, symbol: str, timeframe: str) -> int | None:
    """The open time (ms) of the newest stored candle of a series, quarantined or not."""
    newest = (
        Candle.objects.filter(exchange_name=exchange_name, symbol=symbol, timeframe=timeframe)
        .order_by("-open_time")
        .values_list("open_time", flat=True)
        .first()
    )
    return int(newest.timestamp() * 1000) if newest else None


def candle_quarantined(*, exchange_name: str, symbol: str, timeframe: str, open_ms: int) -> bool:
    """Whether the candle at `open_ms` is stored quarantined."""
    return Candle.objects.filter(
        exchange_name=exchange_name,
        symbol=symbol,
        timeframe=timeframe,
        open_time=datetime.fromtimestamp(open_ms / 1000, tz=UTC),
        quarantined=True,
    ).exists()


def candle_issue_list(*, exchange_name: str, symbol: str, timeframe: str | None = None) -> QuerySet[CandleIssue]:
    """Quality findings of one market (newest first)."""
    found = CandleIssue.objects.filter(exchange_name=exchange_name, symbol=symbol)
    return found.filter(timeframe=timeframe) if timeframe else found


def candle_backfill_get(*, backfill_id: uuid.UUID | str) -> CandleBackfill | None:
    return CandleBackfill.objects.filter(pk=backfill_id).first()
