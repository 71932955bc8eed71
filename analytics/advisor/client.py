"""The one module that talks to the advisor's HTTP API (OpenAI's `/v1/chat/completions`, which compatible
servers follow); docs/advisor.md#api. Its errors are `AdvisorCallError` (no answer, or not a 200) and
`AdvisorTimeoutError`; the key never appears in them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

COMPLETIONS_PATH = "/v1/chat/completions"
ERROR_TEXT_CHARS = 200


class AdvisorCallError(Exception):
    """The API could not be reached or did not answer 200."""


class AdvisorTimeoutError(AdvisorCallError):
    """No answer within the configured timeout (the provider may still have billed the request)."""


def base_url_problem(value: str) -> str | None:
    """Why `value` cannot be the API's root URL, or None."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL, e.g. https://api.openai.com"
    if parts.username or parts.password:
        return "must not carry credentials: put the key in the API key field"
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    return None


def completions_url(base_url: str) -> str:
    """The chat-completions URL of an API root; a root that already ends in /v1 is not given a second one."""
    base = base_url.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + COMPLETIONS_PATH


def _without(text: str, secret: str) -> str:
    return text.replace(secret, "****") if secret else text


def chat_complete(*, base_url: str, api_key: str, body: dict[str, Any], timeout_s: float) -> Any:
    """POST `body` and return the answer's JSON (any shape: `rules.answer_parse` judges it). A body that is
    not JSON comes back as its text, which the parser refuses with the reason."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            response = client.post(completions_url(base_url), json=body, headers=headers)
    except httpx.TimeoutException:
        raise AdvisorTimeoutError(f"no answer from the advisor within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise AdvisorCallError(f"could not reach the advisor: {type(exc).__name__}") from None
    if response.status_code != 200:
        text = _without(response.text[:ERROR_TEXT_CHARS], api_key)
        raise AdvisorCallError(f"the advisor answered HTTP {response.status_code}: {text}")
    try:
        return response.json()
    except ValueError:
        return response.text
