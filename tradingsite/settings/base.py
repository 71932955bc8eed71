"""Settings shared by every environment; values come from the environment (docs/processes.md#environment)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, overload

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(os.environ.get("TRADING_DATA_DIR", BASE_DIR / ".data"))
SHARED_DATA_DIR = Path(os.environ.get("SHARED_DATA_DIR", BASE_DIR.parent / "shared" / "data"))


def _services_env() -> dict[str, str]:
    """URLs of the embedded services written by `tradingsite.stack` while it runs.

    Lets a plain `manage.py` in another terminal reach the stack that `make run` started.
    """
    path = DATA_DIR / "services.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


_SERVICES = _services_env()


@overload
def env(name: str, default: str) -> str: ...
@overload
def env(name: str, default: None = None) -> str | None: ...
def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or _SERVICES.get(name) or default


DEBUG = False
ALLOWED_HOSTS = [h for h in (env("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]") or "").split(",") if h]

INSTALLED_APPS = [
    "daphne",
    "tradingsite.admin_site.OpsAdminConfig",  # django.contrib.admin with the ops console's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "tradingsite",
    "accounts",
    "exchanges",
    "positions",
    "riskengine",
    "strategies",
    "analytics",
    "notifications",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RequestTextMiddleware",  # NUL in a path or query: 400 before any view
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "tradingsite.urls"
ASGI_APPLICATION = "tradingsite.asgi.application"
WSGI_APPLICATION = "tradingsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.nav.navigation",
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    # No URL and no running embedded stack: commands that touch the database fail with a clear
    # message from the driver; `make run` / `make test` always provide one.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "HOST": str(DATA_DIR / "postgres"),
            "USER": "postgres",
        }
    }
DATABASES["default"].setdefault("TEST", {})

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL") or REDIS_URL

CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "ts"),
    }
}

# Redis pub/sub: one PUBLISH per group send (the list-based layer spends several commands and a Lua
# script per send). Live events are at-most-once either way; clients re-read state on reconnect.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "tradingsite.layers.PubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": (env("CACHE_KEY_PREFIX", "ts") or "ts") + ":asgi"},
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "accounts.validators.UppercaseDigitValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"

# allauth: email login, unique username, rate-limited logins.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key", "signup": "20/m/ip", "reset_password": "20/m/ip,5/m/key"}
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Trading Engine"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.TokenAuthentication",  # logouts, password/role changes (accounts/auth.py)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # DRF's parsers, refusing NUL, lone surrogates and deep nesting with a 400 (core/validation.py).
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.SafeJSONParser",
        "core.parsers.SafeFormParser",
        "core.parsers.SafeMultiPartParser",
    ],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth": "30/min", "anon": "120/min"},
    # Throttles key on accounts.middleware.client_ip (TRUSTED_PROXY_COUNT), never on a forged header;
    # NUM_PROXIES says the same to any DRF throttle that keeps DRF's own client lookup.
    "NUM_PROXIES": int(env("TRUSTED_PROXY_COUNT", "0") or 0),
    "COERCE_DECIMAL_TO_STRING": True,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(hours=24),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=14),
    "ROTATE_REFRESH_TOKENS": False,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    # Every token carries a hash of the password hash: a changed password refuses older tokens.
    "CHECK_REVOKE_TOKEN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading execution engine API",
    "DESCRIPTION": "TradingView webhooks in, DCA grids and pyramids out.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets shared by several serializers get one name each in the schema.
    "ENUM_NAME_OVERRIDES": {
        "GroupStatusEnum": "positions.choices.GroupStatus",
        "OrderStatusEnum": "positions.choices.OrderStatus",
        "OrderSideEnum": "positions.choices.OrderSide",
        "PositionSideEnum": "positions.choices.Side",
        "OrderTypeEnum": "positions.choices.OrderType",
        "ExitPurposeEnum": "positions.choices.ExitPurpose",
        "ExchangeModeEnum": "exchanges.choices.ExchangeMode",
        "LogLevelEnum": "accounts.choices.LogLevel",
        "LogCategoryEnum": "accounts.choices.LogCategory",
        "RoleEnum": "accounts.choices.Role",
    },
}

PASSWORD_RESET_TIMEOUT = 60 * 60  # reset links and API reset tokens expire after one hour

# Celery: JSON only, ids not instances; beat reads its schedule from the database.
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Heavy work (backtests, optimization, training) has its own queue and worker processes, so trading never
# waits behind it (docs/processes.md#heavy-worker); the trading worker consumes only the default queue.
CELERY_TASK_ROUTES = {"analytics.run_task": {"queue": "heavy"}, "analytics.advisor_daily": {"queue": "heavy"}}
TASK_MAX_ACTIVE_PER_USER = int(env("TASK_MAX_ACTIVE_PER_USER", "3") or 3)  # pending or running, per user
TASK_UPLOAD_MAX_BYTES = 512 * 1024  # a signals or TradingView trades CSV sent with a backtest

ENCRYPTION_KEYS = [k.strip() for k in (env("ENCRYPTION_KEYS") or "").split(",") if k.strip()]
SIMULATOR_URL = env("SIMULATOR_URL", "http://127.0.0.1:8900")
WEBHOOK_ALLOWED_IPS = [ip.strip() for ip in (env("WEBHOOK_ALLOWED_IPS") or "").split(",") if ip.strip()]
TRUSTED_PROXY_COUNT = int(env("TRUSTED_PROXY_COUNT", "0") or 0)
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

LOG_RETENTION_DAYS = {"system": 30, "audit": 90}

LOGGING: dict[str, Any] = {  # a dictConfig document; production.py swaps its handlers
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub": {"()": "accounts.logs.SecretScrubFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"]}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # psycopg_pool logs every connection request, hand-out and return at INFO: three log lines per
        # webhook (a tenth of a web process's CPU in webhook_ack). Its warnings and errors still show.
        "psycopg.pool": {"level": "WARNING"},
    },
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing

WEBHOOK_MAX_BODY_BYTES = 64 * 1024
# Every other request body: refused over this, by its declared length before it is read (web processes:
# tradingsite/daphne_tuning.py; ASGI: core/body_limit.py; Django's own check on request.body).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Database connections per web process for webhook intakes (the ASGI route runs them on its event loop).
WEBHOOK_CONNECTIONS = int(env("WEBHOOK_CONNECTIONS", "4") or 4)
WEBHOOK_RATE_LIMIT_PER_MINUTE = int(env("WEBHOOK_RATE_LIMIT_PER_MINUTE", "300") or 300)
# Order placement: temporary errors are retried with backoff, this many times, before the order waits for
# reconciliation.
ORDER_SUBMIT_MAX_RETRIES = 8

# Exchanges (read by exchanges.services; shown here so operators see every knob in one place).
EXCHANGE_TIMEOUT_MS = int(env("EXCHANGE_TIMEOUT_MS", "10000") or 10000)
MARKET_RULES_FALLBACKS: dict = {}  # {"binance": {"BTC/USDT": {"tick_size": "0.01", ...}}}; empty = block
PAPER_PRICE_SOURCE = env("PAPER_PRICE_SOURCE", "auto")  # auto | exchange | simulator
PAPER_INITIAL_BALANCES = {"USDT": "10000"}
PAPER_COMMISSION_RATE = "0.001"

# Operations (docs/processes.md#notifications, #health, #metrics, #backups).
NOTIFICATION_TIMEOUT_S = float(env("NOTIFICATION_TIMEOUT_S", "5") or 5)
TELEGRAM_API_URL = env("TELEGRAM_API_URL", "https://api.telegram.org")
# Incoming-webhook hosts a Discord or Slack channel may point at (a stored URL can call nothing else).
NOTIFICATION_WEBHOOK_HOSTS = {"discord": ["discord.com", "discordapp.com"], "slack": ["hooks.slack.com"]}
NOTIFICATION_ALLOW_HTTP = False
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25") or 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env("EMAIL_USE_TLS", "") in ("1", "true", "yes")
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "engine@localhost")
METRICS_TOKEN = env("METRICS_TOKEN", "")
BACKUP_DIR = env("BACKUP_DIR", "")  # the 03:00 backup runs only when this is set
BACKUP_KEEP = int(env("BACKUP_KEEP", "14") or 14)
