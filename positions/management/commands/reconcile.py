"""Reconcile orders with the exchanges and print what was found and fixed (docs/engine.md#reconciliation)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from positions.services.reconcile import reconcile


class Command(BaseCommand):
    help = "Match DB orders with the exchanges by client order id; adopt fills, cancel orphans, report the rest."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--user", help="only this user's exchange configs (email)")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        user = None
        if opts.get("user"):
            user = User.objects.filter(email__iexact=opts["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user with email {opts['user']}")
        report = reconcile(user=user).as_dict()
        for key, value in report.items():
            shown = value if isinstance(value, int) else len(value)
            self.stdout.write(f"{key.replace('_', ' ')}: {shown}")
            if isinstance(value, list):
                for line in value:
                    self.stdout.write(f"  - {line}")
        self.stdout.write(json.dumps(report))
