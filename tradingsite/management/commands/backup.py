"""`manage.py backup [--out F]`: the database in PostgreSQL's custom format (docs/processes.md#backups)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tradingsite.backup import BackupError, database_backup


class Command(BaseCommand):
    help = "Back the database up (pg_dump custom format); prints the file written."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, help="file to write (default: BACKUP_DIR or .data/backups)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            path = database_backup(out=options["out"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(path))
