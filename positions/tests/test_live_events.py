"""Websocket /ws/updates/: JWT or session auth, own data only, events after commit."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from positions.events import publish

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(token: str | None) -> WebsocketCommunicator:
    from tradingsite.asgi import application

    path = "/ws/updates/" + (f"?token={token}" if token else "")
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
    )
    return communicator


def test_anonymous_is_refused():
    async def scenario():
        communicator = await _connect(None)
        connected, _ = await communicator.connect()
        assert not connected

    asyncio.run(scenario())


def test_users_receive_only_their_own_events():
    alice = UserFactory()
    bob = UserFactory()
    manager = UserFactory(role="manager")

    async def scenario():
        sockets = {}
        for name, user in (("alice", alice), ("bob", bob), ("manager", manager)):
            communicator = await _connect(str(AccessToken.for_user(user)))
            connected, _ = await communicator.connect()
            assert connected
            hello = await communicator.receive_json_from(timeout=5)
            assert hello["type"] == "hello"
            sockets[name] = communicator
        await sync_to_async(publish)(alice.pk, "group.updated", {"id": "g1", "status": "live"})
        got = await sockets["alice"].receive_json_from(timeout=5)
        assert got == {"type": "group.updated", "data": {"id": "g1", "status": "live"}}
        assert (await sockets["manager"].receive_json_from(timeout=5))["data"]["id"] == "g1"
        assert await sockets["bob"].receive_nothing(timeout=0.5)
        for communicator in sockets.values():
            await communicator.disconnect()

    asyncio.run(scenario())


def test_bad_token_is_refused():
    async def scenario():
        communicator = await _connect("not-a-token")
        connected, _ = await communicator.connect()
        assert not connected

    asyncio.run(scenario())
