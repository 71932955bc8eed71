"""factory_boy factories for exchange configs and market rules."""

from __future__ import annotations

import secrets
from decimal import Decimal

import factory

from accounts.tests.factories import UserFactory
from exchanges.choices import ExchangeMode
from exchanges.models import ExchangeConfig, MarketRule


class ExchangeConfigFactory(factory.django.DjangoModelFactory[ExchangeConfig]):
    """A config with encrypted keys: pass ``api_key`` / ``api_secret`` / ``password`` as plain text."""

    class Meta:
        model = ExchangeConfig
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    exchange_name = "simulator"
    mode = ExchangeMode.TESTNET
    is_enabled = True

    # plain-text credentials, encrypted in _create (not model fields)
    api_key = factory.LazyFunction(lambda: "key" + secrets.token_hex(16))
    api_secret = factory.LazyFunction(lambda: secrets.token_hex(32))
    password = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        api_key = kwargs.pop("api_key")
        api_secret = kwargs.pop("api_secret")
        password = kwargs.pop("password", None)
        config = model_class(*args, **kwargs)
        config.set_credentials(api_key=api_key, api_secret=api_secret, password=password)
        config.save()
        return config


class MarketRuleFactory(factory.django.DjangoModelFactory[MarketRule]):
    class Meta:
        model = MarketRule

    exchange_name = "simulator"
    base = "BTC"
    quote = "USDT"
    symbol = factory.LazyAttribute(lambda o: f"{o.base}/{o.quote}")
    exchange_symbol = factory.LazyAttribute(lambda o: f"{o.base}{o.quote}")
    compact_symbol = factory.LazyAttribute(lambda o: f"{o.base}{o.quote}")
    tick_size = Decimal("0.01")
    step_size = Decimal("0.00001")
    min_qty = Decimal("0.00001")
    max_qty = Decimal("9000")
    min_notional = Decimal("5")
    status = "TRADING"
