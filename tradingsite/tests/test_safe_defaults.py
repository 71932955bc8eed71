"""Safe defaults (docs/processes.md#environment): `make run` serves without DEBUG, the API's errors are JSON
and never show settings, one option moves the simulator for everyone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradingsite.stack import run_environment

ROOT = Path(__file__).resolve().parents[2]


def _dev_debug(**env: str) -> str:
    """DEBUG as the dev settings (what `make run` uses) compute it in a fresh process."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE")}
    code = "import tradingsite.settings.dev as s; print(s.DEBUG)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_make_run_serves_without_debug_unless_asked(monkeypatch):
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    assert run_environment(simulator_port=8900)["DJANGO_DEBUG"] == "0"
    assert _dev_debug() == "False"
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    assert run_environment(simulator_port=8900)["DJANGO_DEBUG"] == "1"
    assert _dev_debug(DJANGO_DEBUG="1") == "True"


def test_the_simulator_port_moves_the_apps_simulator_url_too():
    assert run_environment(simulator_port=18900)["SIMULATOR_URL"] == "http://127.0.0.1:18900"


@pytest.mark.django_db
def test_api_errors_are_json_and_show_no_settings(client, settings):
    missing = client.get("/api/no/such/path")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert "urlpatterns" not in missing.content.decode() and "tradingsite.urls" not in missing.content.decode()
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "tradingsite.urls" not in page.content.decode()
