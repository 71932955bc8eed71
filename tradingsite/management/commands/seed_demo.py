"""Create the demo admin and trader once (empty database), then print how to log in and send a webhook."""

from __future__ import annotations

import json
import secrets
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.choices import Role
from accounts.models import User
from exchanges.exceptions import ExchangeError
from exchanges.services import demo_setup, market_rules_refresh
from exchanges.simulator import BUILT_IN_PRICES
from positions.webhook import alert_template

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
        parser.add_argument("--no-simulator", action="store_true", help="do not touch the simulator")

    def _prepare_simulator(self) -> None:
        """Demo prices on the simulator (it starts with none) and its market rules in our cache."""
        for symbol, price in BUILT_IN_PRICES.items():
            request = urllib.request.Request(
                f"{settings.SIMULATOR_URL}/_sim/price",
                method="POST",
                data=json.dumps({"symbol": symbol, "price": price}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(request, timeout=5).close()
            except OSError as exc:
                self.stderr.write(f"  simulator not reachable for demo prices: {exc}")
                return
        try:
            market_rules_refresh(exchange_name="simulator")
        except ExchangeError as exc:
            self.stderr.write(f"  could not load the simulator's market rules: {exc}")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        passwords = _demo_passwords()
        with transaction.atomic():
            if not User.objects.exists():
                User.objects.create_superuser(DEMO_ADMIN, "admin", passwords["admin"])
                User.objects.create_user(DEMO_TRADER, "trader", passwords["trader"], role=Role.TRADER)
            trader = User.objects.filter(email=DEMO_TRADER).first()
            if trader is not None and not options["no_simulator"]:
                # The simulator keeps accounts and prices in memory: register the demo account again.
                demo_setup(user=trader)
        if trader is not None and not options["no_simulator"]:
            self._prepare_simulator()
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
        body = alert_template(secret=trader.webhook_secret, exchange="simulator")
        self.stdout.write("  Alert body (paste into TradingView's alert message):")
        self.stdout.write(json.dumps(body, indent=2))
        self.stdout.write("")
