"""Development settings: generated secrets in .data/, file email, debug only with DJANGO_DEBUG=1."""

from __future__ import annotations

import base64
import os
import secrets

from .base import *  # noqa: F403
from .base import DATA_DIR, ENCRYPTION_KEYS, env


def _generated(name: str, make) -> str:  # type: ignore[no-untyped-def]
    """Read a dev secret from .data/, creating it once so restarts keep sessions and ciphertexts."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


# Off unless asked for (DJANGO_DEBUG=1): a debug page shows the URL map and settings to anyone.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
SECRET_KEY = env("SECRET_KEY") or _generated("secret_key", lambda: secrets.token_urlsafe(50))
if not ENCRYPTION_KEYS:
    ENCRYPTION_KEYS = [_generated("encryption_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())]
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = DATA_DIR / "emails"
DEFAULT_FROM_EMAIL = "engine@localhost"
WHITENOISE_USE_FINDERS = True
