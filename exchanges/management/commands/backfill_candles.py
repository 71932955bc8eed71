"""`manage.py backfill_candles --exchange E --symbol S --timeframe T --since DATE` (docs/market-data.md#backfill)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchanges.candles.services import CandleInputError, candles_backfill


def _date(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Fetch candles from the exchange (paged, inside the weight budget) into the candle store; resumes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True)
        parser.add_argument("--since", required=True, type=_date, help="ISO date, e.g. 2025-01-01")
        parser.add_argument("--until", type=_date, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = candles_backfill(
                exchange_name=options["exchange"],
                symbol=options["symbol"],
                timeframe=options["timeframe"],
                since=options["since"],
                until=options["until"],
            )
        except CandleInputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Fetched {job.fetched} new candles of {job.symbol} {job.timeframe} up to {job.cursor:%Y-%m-%d %H:%M}; "
            f"status {job.status}" + (f": {job.error} (run it again to resume)" if job.error else "")
        )
        if job.status == "failed":
            raise CommandError("backfill stopped early")
