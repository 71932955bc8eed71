"""Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS (docs/processes.md#environment)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from exchanges import crypto
from tradingsite.secrets import secrets_rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (exchange keys, notification channels) with the first ENCRYPTION_KEYS "
        "entry, in one transaction."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = secrets_rotate_all()
        except crypto.DecryptionError as exc:
            raise CommandError(f"Nothing changed: {exc}") from None
        self.stdout.write(
            f"Re-encrypted {result['secrets']} secrets ({result['configs']} exchange configs, "
            f"{result['channels']} notification channels) with key {result['key_id']} "
            f"({result['from_old_keys']} were under an older key)."
        )
