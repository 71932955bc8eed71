"""The channel layer's batched group send, on the real Redis."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def test_group_send_many_reaches_every_group_and_only_its_members():
    layer = get_channel_layer()
    tag = uuid.uuid4().hex[:8]

    async def scenario() -> tuple[dict, dict, bool]:
        first, second, outsider = [await layer.new_channel() for _ in range(3)]
        await layer.group_add(f"a{tag}", first)
        await layer.group_add(f"b{tag}", second)
        await layer.group_send_many(
            {f"a{tag}": {"type": "relay", "event": {"n": 1}}, f"b{tag}": {"type": "relay", "event": {"n": 2}}}
        )
        got_first, got_second = await layer.receive(first), await layer.receive(second)
        try:
            await asyncio.wait_for(layer.receive(outsider), timeout=0.3)
            outsider_got = True
        except TimeoutError:
            outsider_got = False
        await layer.flush()
        return got_first, got_second, outsider_got

    got_first, got_second, outsider_got = async_to_sync(scenario)()
    assert got_first["event"] == {"n": 1} and got_second["event"] == {"n": 2}
    assert not outsider_got
