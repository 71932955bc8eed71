"""The one module that talks to the notification services: SMTP (Django's mail), Telegram's Bot API,
Discord's and Slack's incoming webhooks. Each send returns a `rules.Answer`; nothing here raises on a
failed delivery, and no secret (token, webhook URL) appears in what it returns."""

from __future__ import annotations

import json
import smtplib
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMessage

from .rules import Answer


def _conf(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def timeout_s() -> float:
    return float(_conf("NOTIFICATION_TIMEOUT_S", 5.0))


def telegram_api_url() -> str:
    return str(_conf("TELEGRAM_API_URL", "https://api.telegram.org")).rstrip("/")


def _client() -> httpx.Client:
    return httpx.Client(timeout=timeout_s(), follow_redirects=False)


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("retry-after")
    if header:
        try:
            return float(header)
        except ValueError:
            return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):  # Telegram: parameters.retry_after; Discord: retry_after
        params = body.get("parameters")
        value = (params or {}).get("retry_after") if isinstance(params, dict) else body.get("retry_after")
        if isinstance(value, int | float):
            return float(value)
    return None


# A picture sent with a message (the daily report's chart): (file name, bytes, content type).
Attachment = tuple[str, bytes, str]


def _post_json(url: str, payload: dict[str, Any]) -> Answer:
    return _post(url, json=payload)


def _post(url: str, **request: Any) -> Answer:
    """POST (JSON, or a multipart form with `data` and `files`) and read the answer as an `Answer`."""
    try:
        with _client() as client:
            response = client.post(url, **request)
    except httpx.TimeoutException:
        return Answer(status_code=None, detail="timed out")
    except httpx.HTTPError as exc:
        return Answer(status_code=None, detail=type(exc).__name__)
    detail = ""
    if response.status_code >= 300:
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
    return Answer(status_code=response.status_code, retry_after_s=_retry_after(response), detail=detail)


def send_telegram(*, bot_token: str, chat_id: str, text: str) -> Answer:
    """Bot API `sendMessage` (plain text, no link previews)."""
    url = f"{telegram_api_url()}/bot{bot_token}/sendMessage"
    return _post_json(url, {"chat_id": chat_id, "text": text, "disable_web_page_preview": True})


def send_telegram_photo(*, bot_token: str, chat_id: str, caption: str, photo: Attachment) -> Answer:
    """Bot API `sendPhoto` (multipart upload), the message as its caption (Telegram keeps 1024 characters)."""
    url = f"{telegram_api_url()}/bot{bot_token}/sendPhoto"
    return _post(url, data={"chat_id": chat_id, "caption": caption[:1024]}, files={"photo": photo})


def telegram_set_webhook(*, bot_token: str, url: str, secret_token: str) -> Answer:
    """Bot API `setWebhook`: Telegram posts the chat's messages (commands) to `url` with `secret_token`."""
    payload = {"url": url, "secret_token": secret_token, "allowed_updates": ["message"]}
    return _post_json(f"{telegram_api_url()}/bot{bot_token}/setWebhook", payload)


def send_discord(*, webhook_url: str, text: str, attachment: Attachment | None = None) -> Answer:
    """The incoming webhook: JSON, or with a file a multipart upload whose `payload_json` holds the text."""
    if attachment is None:
        return _post_json(webhook_url, {"content": text[:2000]})
    payload = json.dumps({"content": text[:2000]})
    return _post(webhook_url, data={"payload_json": payload}, files={"files[0]": attachment})


def send_slack(*, webhook_url: str, text: str) -> Answer:
    return _post_json(webhook_url, {"text": text})


def send_email(*, address: str, subject: str, text: str, attachment: Attachment | None = None) -> Answer:
    """Django's mail backend (SMTP in production). A refused recipient is permanent; other errors retry."""
    message = EmailMessage(subject=subject, body=text, to=[address])
    if attachment is not None:
        message.attach(*attachment)
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        return Answer(status_code=None, permanent=True, detail=type(exc).__name__)
    except (smtplib.SMTPException, OSError) as exc:
        return Answer(status_code=None, detail=type(exc).__name__)
    return Answer(status_code=200)  # the mail server accepted it (SMTP 250), counted as a 2xx
