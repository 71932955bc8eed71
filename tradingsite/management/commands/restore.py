"""`manage.py restore F`: a `manage.py backup` file back into the database (docs/processes.md#backups)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tradingsite.backup import BackupError, database_restore, target_default, target_from_url


class Command(BaseCommand):
    help = "Restore a backup into the database (its tables replaced); prints the rows restored per table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--database-url", help="restore into this database instead of DATABASE_URL's (e.g. a fresh one for a drill)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target = target_from_url(options["database_url"]) if options["database_url"] else target_default()
        try:
            counts = database_restore(path=options["file"], target=target)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"restored": str(options["file"]), "database": target.dbname, "rows": counts}))
