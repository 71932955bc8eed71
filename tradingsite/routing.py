"""Websocket routes of every app, in one list."""

from django.urls import path

websocket_urlpatterns: list = []


def _collect() -> None:
    try:
        from positions.consumers import UpdatesConsumer
    except ImportError:  # the consumer arrives with the positions app's live events
        return
    websocket_urlpatterns.append(path("ws/updates/", UpdatesConsumer.as_asgi()))


_collect()
