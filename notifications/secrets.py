"""Key rotation for the channels' encrypted secrets (bot tokens, webhook URLs); docs/security.md#secrets.

The exchange keys have their own (`exchanges.services.encryption_key_rotate`); `tradingsite.secrets`
runs both in one transaction.
"""

from __future__ import annotations

from django.db import transaction

from exchanges import crypto

from .models import NotificationChannel


def channel_secrets_rotate() -> dict[str, int]:
    """Re-encrypt every channel secret with the first ENCRYPTION_KEYS entry. A secret that cannot be
    decrypted raises `crypto.DecryptionError` naming the channel, and nothing changes."""
    done = from_old = 0
    with transaction.atomic():
        for channel in NotificationChannel.objects.select_for_update().exclude(secret_encrypted="").order_by("pk"):
            context = channel.encryption_context()
            try:
                plain = crypto.decrypt(channel.secret_encrypted, context=context)
            except crypto.DecryptionError as exc:
                raise crypto.DecryptionError(f"notification channel {channel.pk}: {exc}") from None
            from_old += crypto.needs_rotation(channel.secret_encrypted)
            channel.secret_encrypted = crypto.encrypt(plain, context=context)
            channel.save(update_fields=["secret_encrypted"])
            done += 1
    return {"secrets": done, "from_old_keys": from_old}
