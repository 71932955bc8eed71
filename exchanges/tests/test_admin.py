"""The ops console: lists, forms and actions, and no secret on any page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import AuditLog
from accounts.tests.factories import UserFactory
from exchanges.models import ExchangeConfig

from .factories import ExchangeConfigFactory, MarketRuleFactory

pytestmark = pytest.mark.django_db

API_KEY = "adminKEY0123456789abcdefghijklmnopQRST"
API_SECRET = "adminSECRETzyxwvutsrqponmlkjihgfedcba9876"
PASSWORD = "adminPASSPHRASE42"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(role="admin", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def config() -> ExchangeConfig:
    return ExchangeConfigFactory.create(
        exchange_name="binance", api_key=API_KEY, api_secret=API_SECRET, password=PASSWORD
    )


def assert_no_secret(html: str, config: ExchangeConfig) -> None:
    for secret in (API_KEY, API_SECRET, PASSWORD, config.api_secret_encrypted, config.api_key_encrypted):
        assert secret not in html


def test_changelist_and_change_page_show_no_secret(admin_client: Client, config: ExchangeConfig) -> None:
    listing = admin_client.get("/admin/exchanges/exchangeconfig/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "****QRST" in html
    assert_no_secret(html, config)
    page = admin_client.get(f"/admin/exchanges/exchangeconfig/{config.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="new_api_secret"' in html and "****QRST" in html
    assert_no_secret(html, config)
    assert admin_client.get("/admin/exchanges/exchangeconfig/add/").status_code == 200


def test_blank_secret_inputs_keep_the_stored_ones(admin_client: Client, config: ExchangeConfig) -> None:
    response = admin_client.post(
        f"/admin/exchanges/exchangeconfig/{config.pk}/change/",
        {"mode": "paper", "is_enabled": "on", "new_api_key": "", "new_api_secret": "", "new_password": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = ExchangeConfig.objects.get(pk=config.pk)
    assert saved.mode == "paper"
    assert saved.credentials().api_secret == API_SECRET
    assert saved.credentials().password == PASSWORD


def test_a_new_secret_replaces_the_old_one_and_is_not_echoed(admin_client: Client, config: ExchangeConfig) -> None:
    response = admin_client.post(
        f"/admin/exchanges/exchangeconfig/{config.pk}/change/",
        {"mode": "live", "is_enabled": "on", "new_api_secret": "brand-new-secret-value"},
    )
    assert response.status_code == 200  # live without confirmation: the form comes back
    assert "brand-new-secret-value" not in response.content.decode()
    assert ExchangeConfig.objects.get(pk=config.pk).credentials().api_secret == API_SECRET
    response = admin_client.post(
        f"/admin/exchanges/exchangeconfig/{config.pk}/change/",
        {"mode": "testnet", "is_enabled": "on", "new_api_secret": "brand-new-secret-value"},
    )
    assert response.status_code == 302
    assert ExchangeConfig.objects.get(pk=config.pk).credentials().api_secret == "brand-new-secret-value"


def test_add_through_the_admin(admin_client: Client) -> None:
    owner = UserFactory.create()
    response = admin_client.post(
        "/admin/exchanges/exchangeconfig/add/",
        {
            "user": owner.pk,
            "exchange_name": "Kraken",
            "mode": "paper",
            "is_enabled": "on",
            "new_api_key": API_KEY,
            "new_api_secret": API_SECRET,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    config = ExchangeConfig.objects.get(user=owner)
    assert config.exchange_name == "kraken"
    assert config.credentials().api_key == API_KEY
    page = admin_client.get(f"/admin/exchanges/exchangeconfig/{config.pk}/history/")
    assert_no_secret(page.content.decode(), config)
    bad = admin_client.post(
        "/admin/exchanges/exchangeconfig/add/",
        {
            "user": owner.pk,
            "exchange_name": "nope",
            "mode": "paper",
            "new_api_key": API_KEY,
            "new_api_secret": API_SECRET,
        },
    )
    assert bad.status_code == 200 and "Unknown exchange" in bad.content.decode()
    assert API_SECRET not in bad.content.decode()


def test_actions(admin_client: Client, config: ExchangeConfig, simulator: Any, settings: Any) -> None:
    settings.SIMULATOR_URL = simulator.url
    url = "/admin/exchanges/exchangeconfig/"
    admin_client.post(url, {"action": "disable_configs", "_selected_action": [config.pk]})
    assert ExchangeConfig.objects.get(pk=config.pk).is_enabled is False
    admin_client.post(url, {"action": "enable_configs", "_selected_action": [config.pk]})
    assert ExchangeConfig.objects.get(pk=config.pk).is_enabled is True
    admin_client.post(url, {"action": "switch_to_paper", "_selected_action": [config.pk]})
    assert ExchangeConfig.objects.get(pk=config.pk).mode == "paper"

    sim = ExchangeConfigFactory.create(exchange_name="simulator", api_key=API_KEY, api_secret=API_SECRET)
    simulator.create_account(API_KEY, API_SECRET, {"USDT": "1"})
    admin_client.post(url, {"action": "validate_configs", "_selected_action": [sim.pk]})
    assert ExchangeConfig.objects.get(pk=sim.pk).is_validated is True
    assert AuditLog.objects.filter(action="exchange_keys_validate").count() == 1
    assert AuditLog.objects.filter(action="exchange_config_update").count() == 2


def test_market_rules_and_paper_pages(admin_client: Client) -> None:
    MarketRuleFactory()
    assert admin_client.get("/admin/exchanges/marketrule/").status_code == 200
    assert admin_client.get("/admin/exchanges/paperaccount/").status_code == 200
