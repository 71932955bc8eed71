"""Websocket `/ws/updates/`: authenticated users get events about their own data; managers get everyone's."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .events import OPERATORS_GROUP, user_group_name


class UpdatesConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.groups_joined = [OPERATORS_GROUP] if user.sees_everything else [user_group_name(user.pk)]
        for name in self.groups_joined:
            await self.channel_layer.group_add(name, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "data": {"user_id": str(user.pk)}})

    async def disconnect(self, code: int) -> None:
        for name in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def relay(self, message: dict) -> None:
        await self.send_json(message["event"])

    async def relay_many(self, message: dict) -> None:
        """Several events sent as one channel message (see `events._send_batch`); one frame each."""
        for event in message["events"]:
            await self.send_json(event)
