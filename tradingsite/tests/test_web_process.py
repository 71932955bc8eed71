"""The web processes as `make run` starts them: daphne on per-process SO_REUSEPORT sockets, real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from accounts.models import AuditLog
from positions.models import PositionGroup
from positions.tests.conftest import alert, load_rules
from tradingsite.tests.support import web_processes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def web(tmp_path):
    """Two daphne processes on one port, each on its own socket; yields the base URL."""
    with web_processes(tmp_path, 2) as (base, _):
        yield base


def test_webhooks_and_forms_through_real_daphne(web, trader):
    from exchanges.models import ExchangeConfig

    config = ExchangeConfig(user=trader, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    load_rules("simulator")
    with httpx.Client(base_url=web, timeout=20) as client:
        # Webhooks: the ASGI route in front of Django, over fresh connections spread by the kernel.
        answers = []
        for index, symbol in enumerate(["BTCUSDT", "ETHUSDT", "SOLUSDT"]):
            body = alert(trader.webhook_secret, tv={"symbol": symbol}, strategy_info={"trade_id": f"D-{index}"})
            answers.append(
                httpx.post(
                    f"{web}/api/webhook/{trader.pk}",
                    content=json.dumps(body),
                    headers={"Content-Type": "text/plain"},
                    timeout=20,
                )
            )
        assert [a.status_code for a in answers] == [202, 202, 202], [a.text for a in answers]
        assert PositionGroup.objects.filter(user=trader).count() == 3

        # A form POST still reaches Django whole (Twisted's own form parsing is off in daphne): the CSRF
        # token in the body is accepted and the wrong password is reported on the page.
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token is not None
        refused = client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token.group(1), "login": trader.email, "password": "Wrong-pass-123"},
            headers={"Referer": f"{web}/accounts/login/"},
        )
        assert refused.status_code == 200  # not 403: the token in the body arrived
        assert AuditLog.objects.filter(action="login_failed").exists()  # and so did the login fields


def test_live_events_through_real_daphne_on_uvloop(web, trader):
    """The web process's websocket and its webhook route share daphne's loop (uvloop, `tradingsite.web`):
    the owner's socket gets the events of a webhook sent to another web process."""
    import asyncio

    import aiohttp
    from rest_framework_simplejwt.tokens import AccessToken

    from exchanges.models import ExchangeConfig

    config = ExchangeConfig(user=trader, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    load_rules("simulator")
    body = json.dumps(alert(trader.webhook_secret, strategy_info={"trade_id": "WS-1"}))

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as session:
            url = f"{web.replace('http', 'ws')}/ws/updates/?token={AccessToken.for_user(trader)}"
            async with session.ws_connect(url, headers={"Origin": web}) as socket:
                assert (await socket.receive_json(timeout=10))["type"] == "hello"
                for _ in range(2):  # the kernel may hand the webhook to either process
                    async with session.post(
                        f"{web}/api/webhook/{trader.pk}", data=body, headers={"Content-Type": "application/json"}
                    ) as answer:
                        assert answer.status in (200, 202)
                seen: list[str] = []
                while "group.updated" not in seen or "signal.received" not in seen:
                    seen.append((await socket.receive_json(timeout=10))["type"])
                return seen

    seen = asyncio.run(scenario())
    assert {"signal.received", "group.updated"} <= set(seen)
