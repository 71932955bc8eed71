"""Choices of the strategies app."""

from __future__ import annotations

from django.db import models


class StrategyKind(models.TextChoices):
    RSI = "rsi", "RSI"
    MACD = "macd", "MACD"
    BOLLINGER = "bollinger", "Bollinger Bands"
    VOLUME = "volume", "Volume spike"
    STOCHASTIC = "stochastic", "Stochastic"


class SignalAction(models.TextChoices):
    ENTRY = "entry", "Entry"
    EXIT = "exit", "Exit"
