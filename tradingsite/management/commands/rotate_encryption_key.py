"""Re-encrypt every exchange secret with the first key of ENCRYPTION_KEYS (docs/processes.md#environment)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from exchanges import crypto
from exchanges.services import encryption_key_rotate


class Command(BaseCommand):
    help = "Re-encrypt every stored exchange secret with the first ENCRYPTION_KEYS entry (in one transaction)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = encryption_key_rotate()
        except crypto.DecryptionError as exc:
            raise CommandError(f"Nothing changed: {exc}") from None
        self.stdout.write(
            f"Re-encrypted {result['secrets']} secrets of {result['configs']} exchange configs with key "
            f"{result['key_id']} ({result['from_old_keys']} were under an older key)."
        )
