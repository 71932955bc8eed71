"""ASGI entry point: webhook POSTs straight to the intake, other HTTP through Django, websockets through Channels.

Once everything is imported, the objects made so far (≈150,000: Django, DRF, ccxt, pandas...) are moved
out of the garbage collector's reach with `gc.freeze()`. They live as long as the process anyway, and
without this every full collection walks all of them: a stop-the-world pause of 80–130 ms per web
process, every few thousand requests, which delayed every request in flight (measured with
`make bench BENCH=webhook_ack`: p99 about a quarter lower with the freeze).
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings.dev")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from core.body_limit import BodyLimit  # noqa: E402
from positions.ingress import WebhookIngress  # noqa: E402
from tradingsite import daphne_tuning  # noqa: E402
from tradingsite.routing import websocket_urlpatterns  # noqa: E402
from tradingsite.websocket_auth import JWTOrSessionAuthMiddleware  # noqa: E402

daphne_tuning.install()

application = ProtocolTypeRouter(
    {
        # Webhook POSTs skip Django's request handling; every other body is capped before Django reads it.
        "http": WebhookIngress(BodyLimit(django_asgi_app, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)),
        "websocket": AllowedHostsOriginValidator(JWTOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

gc.freeze()  # last: everything above stays for the process's lifetime
