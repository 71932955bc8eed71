"""The channel layer: channels_redis's pub/sub layer with one addition, `group_send_many`.

The webhook route sends the live events of a burst of alerts every few milliseconds: one message for
each trader's group and one for the operators' group (`positions.events.LoopBatcher`). One PUBLISH per
group, each awaiting its reply in turn, cost a twelfth of a web process's CPU under a burst. Here the
messages of one batch go to Redis in one pipeline per shard: one round trip.

It reaches into channels_redis's per-loop layer and shard objects (pinned at 4.3.0 in requirements);
`tradingsite/tests/test_layers.py` fails if an upgrade moves them.
"""

from __future__ import annotations

from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class PubSubChannelLayer(RedisPubSubChannelLayer):
    async def group_send_many(self, messages: dict[str, dict[str, Any]]) -> None:
        """`group_send` of each (group, message), pipelined per Redis shard."""
        layer = self._get_layer()
        per_shard: dict[int, tuple[Any, list[tuple[str, bytes]]]] = {}
        for group, message in messages.items():
            channel = layer._get_group_channel_name(group)
            shard = layer._get_shard(channel)
            per_shard.setdefault(id(shard), (shard, []))[1].append((channel, self.serialize(message)))
        for shard, items in per_shard.values():
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for channel, payload in items:
                    pipe.publish(channel, payload)
                await pipe.execute()
