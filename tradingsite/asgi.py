"""ASGI entry point: webhook POSTs straight to the intake, other HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings.dev")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from positions.ingress import WebhookIngress  # noqa: E402
from tradingsite import daphne_tuning  # noqa: E402
from tradingsite.routing import websocket_urlpatterns  # noqa: E402
from tradingsite.websocket_auth import JWTOrSessionAuthMiddleware  # noqa: E402

daphne_tuning.install()

application = ProtocolTypeRouter(
    {
        "http": WebhookIngress(django_asgi_app),  # webhook POSTs skip Django's request handling
        "websocket": AllowedHostsOriginValidator(JWTOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
