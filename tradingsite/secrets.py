"""Every stored secret re-encrypted with the first ENCRYPTION_KEYS entry, in one transaction
(docs/security.md#secrets): exchange keys, notification channels' secrets and the advisor's API key. Used by
`manage.py rotate_encryption_key` and the ops console."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from analytics.advisor.services import advisor_secrets_rotate
from exchanges.services import encryption_key_rotate
from notifications.secrets import channel_secrets_rotate


def secrets_rotate_all() -> dict[str, Any]:
    """`{key_id, secrets, configs, channels, advisor, from_old_keys}`; raises `crypto.DecryptionError` (nothing
    changed) when any secret cannot be decrypted with the configured keys."""
    with transaction.atomic():
        exchange = encryption_key_rotate()
        channels = channel_secrets_rotate()
        advisor = advisor_secrets_rotate()
    return {
        "key_id": exchange["key_id"],
        "secrets": exchange["secrets"] + channels["secrets"] + advisor["secrets"],
        "configs": exchange["configs"],
        "channels": channels["secrets"],
        "advisor": advisor["secrets"],
        "from_old_keys": exchange["from_old_keys"] + channels["from_old_keys"] + advisor["from_old_keys"],
    }
