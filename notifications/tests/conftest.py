from __future__ import annotations

import pytest

from notifications.services import notification_settings_set

from .capture import CaptureHTTP, CaptureSMTP

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CHAT = "424242"


@pytest.fixture
def capture_http():
    with CaptureHTTP() as server:
        yield server


@pytest.fixture
def capture_smtp():
    with CaptureSMTP() as server:
        yield server


@pytest.fixture
def service_settings(settings, capture_http, capture_smtp):
    """The services pointed at the local stand-ins (Telegram under /tg, Discord /discord, Slack /slack)."""
    settings.TELEGRAM_API_URL = capture_http.url + "/tg"
    settings.NOTIFICATION_WEBHOOK_HOSTS = {"discord": ["127.0.0.1"], "slack": ["127.0.0.1"]}
    settings.NOTIFICATION_ALLOW_HTTP = True
    settings.NOTIFICATION_TIMEOUT_S = 1.0
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = capture_smtp.port
    settings.EMAIL_USE_TLS = False
    settings.PUBLIC_BASE_URL = "https://engine.test"
    return settings


def configure_all(user, capture_http, *, events=None):
    """Every channel of `user` on, pointed at the stand-ins."""
    channel = {"enabled": True} if events is None else {"enabled": True, "events": events}
    return notification_settings_set(
        user=user,
        data={
            "channels": {
                "email": {**channel, "address": "trader@example.com"},
                "telegram": {**channel, "bot_token": TOKEN, "chat_id": CHAT},
                "discord": {**channel, "webhook_url": capture_http.url + "/discord/hook/abc"},
                "slack": {**channel, "webhook_url": capture_http.url + "/slack/services/T/B/x"},
            }
        },
    )
