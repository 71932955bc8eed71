"""Create the demo admin and trader once (empty database), then print how to log in and send a webhook."""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.choices import Role
from accounts.models import User

DEMO_ADMIN = "admin@example.com"
DEMO_TRADER = "trader@example.com"


def _demo_passwords() -> dict[str, str]:
    """Random demo passwords kept in .data/ so that every `make run` can print them again."""
    path = settings.DATA_DIR / "demo_credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    passwords = {who: f"Demo{secrets.token_hex(4)}9" for who in ("admin", "trader")}
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    return passwords


class Command(BaseCommand):
    help = "Seed demo users into an empty database and print logins, the webhook URL and an alert body."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--base-url", default=settings.PUBLIC_BASE_URL)

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        passwords = _demo_passwords()
        with transaction.atomic():
            if not User.objects.exists():
                User.objects.create_superuser(DEMO_ADMIN, "admin", passwords["admin"])
                User.objects.create_user(DEMO_TRADER, "trader", passwords["trader"], role=Role.TRADER)
                try:
                    from exchanges.services import demo_setup  # the simulator config, once exchanges exist
                except ImportError:
                    demo_setup = None
                if demo_setup is not None:
                    demo_setup(user=User.objects.get(email=DEMO_TRADER))
        trader = User.objects.filter(email=DEMO_TRADER).first()
        base = options["base_url"].rstrip("/")
        self.stdout.write("")
        self.stdout.write(f"  Web UI:       {base}/")
        self.stdout.write(f"  Ops console:  {base}/admin/")
        self.stdout.write(f"  API docs:     {base}/api/docs/")
        if User.objects.filter(email=DEMO_ADMIN).exists():
            self.stdout.write(f"  Demo admin:   {DEMO_ADMIN} / {passwords['admin']}")
        if trader is None:
            return
        self.stdout.write(f"  Demo trader:  {DEMO_TRADER} / {passwords['trader']}")
        self.stdout.write(f"  Webhook URL:  {base}/api/webhook/{trader.pk}")
        body = {
            "secret": trader.webhook_secret,
            "source": "tradingview",
            "timestamp": "{{timenow}}",
            "tv": {
                "exchange": "simulator",
                "symbol": "{{ticker}}",
                "timeframe": "{{interval}}",
                "action": "{{strategy.order.action}}",
                "market_position": "{{strategy.market_position}}",
                "market_position_size": "{{strategy.market_position_size}}",
                "prev_market_position": "{{strategy.prev_market_position}}",
                "prev_market_position_size": "{{strategy.prev_market_position_size}}",
                "entry_price": "{{strategy.order.price}}",
                "close_price": "{{close}}",
                "order_size": "{{strategy.order.contracts}}",
            },
            "strategy_info": {
                "trade_id": "{{strategy.order.id}}",
                "alert_name": "{{alert_name}}",
                "alert_message": "{{strategy.order.comment}}",
            },
            "execution_intent": {
                "type": "signal",
                "side": "buy",
                "strategy": "grid",
                "position_size_type": "quote",
                "precision_mode": "auto",
            },
            "risk": {"stop_loss": None, "take_profit": None, "max_slippage_percent": 0.2},
        }
        self.stdout.write("  Alert body (paste into TradingView's alert message):")
        self.stdout.write(json.dumps(body, indent=2))
        self.stdout.write("")
