"""`manage.py import_candles F.csv --exchange E --symbol S --timeframe T` (docs/market-data.md#import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchanges.candles.services import CandleInputError, candles_import


class Command(BaseCommand):
    help = "Import a candle CSV (ours or TradingView's chart export, gzip or not) into the candle store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            result = candles_import(
                exchange_name=options["exchange"],
                symbol=options["symbol"],
                timeframe=options["timeframe"],
                path=path,
            )
        except CandleInputError as exc:
            raise CommandError(f"{path}: nothing imported: {exc}") from None
        self.stdout.write(
            f"Imported {result.inserted} new candles of {result.rows} rows ({result.symbol} {result.timeframe}, "
            f"{result.first:%Y-%m-%d %H:%M} .. {result.last:%Y-%m-%d %H:%M}); gaps: {result.gaps} "
            f"({result.missing} missing candles); duplicates dropped: {result.duplicates}; "
            f"rejected (quarantined): {result.quarantined}"
            if result.rows
            else f"Nothing to import: {path} has no rows"
        )
        for line in result.issues[:20]:
            self.stdout.write(f"  {line}")
        if len(result.issues) > 20:
            self.stdout.write(f"  ... {len(result.issues) - 20} more")
