"""Test settings: the real stack (PostgreSQL, Redis, Celery), fast hashing, in-memory email."""

from __future__ import annotations

import base64
import os

from .base import *  # noqa: F403
from .base import DATABASES, REST_FRAMEWORK, env

DEBUG = False
SECRET_KEY = env("SECRET_KEY") or "test-secret-key-not-for-production-" + "x" * 20
ENCRYPTION_KEYS = [
    base64.b64encode(b"k" * 32).decode(),
    base64.b64encode(b"o" * 32).decode(),
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "engine@localhost"
# Each xdist worker gets its own key space in the shared Redis.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("REDIS_URL"),
        "KEY_PREFIX": f"test-{_worker}",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "tradingsite.layers.PubSubChannelLayer",
        "CONFIG": {"hosts": [env("REDIS_URL")], "prefix": f"test-{_worker}:asgi"},
    }
}
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "1000/min", "anon": "1000/min"}}
ACCOUNT_RATE_LIMITS = {"login_failed": "5/5m/key"}
WHITENOISE_USE_FINDERS = True
DATABASES["default"]["CONN_MAX_AGE"] = 0  # threads of Django's view must not keep test connections open
# One test database per test run, so that two runs on one server (a developer's and CI's, or two
# helpers') never drop each other's database. xdist workers inherit the id and add their suffix.
os.environ.setdefault("TEST_RUN_ID", str(os.getpid()))
DATABASES["default"]["TEST"] = {"NAME": f"test_tradingsite_{os.environ['TEST_RUN_ID']}"}
# A worker process started by a test (positions/tests/test_reliability.py) gets these from its environment:
# a short exchange timeout, and a short Redis visibility timeout, swept every second, so that the tasks a
# killed worker held are redelivered within seconds instead of an hour.
if env("EXCHANGE_TIMEOUT_MS"):
    EXCHANGE_TIMEOUT_MS = int(env("EXCHANGE_TIMEOUT_MS") or 0)
if env("CELERY_VISIBILITY_TIMEOUT"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT") or 0),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
