"""Choices of the exchanges app."""

from django.db import models


class ExchangeMode(models.TextChoices):
    """Where orders of a config go: nowhere (paper), a sandbox (testnet), or the real account (live)."""

    PAPER = "paper", "Paper (orders fill locally)"
    TESTNET = "testnet", "Testnet (exchange sandbox)"
    LIVE = "live", "Live (real money)"


SIMULATOR = "simulator"
"""The exchange name of the local Binance-compatible simulator (talks to ``settings.SIMULATOR_URL``)."""
