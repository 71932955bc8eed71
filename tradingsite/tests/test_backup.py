"""Backup -> restore drill (docs/processes.md#backups): a fresh database gets the same groups, orders and
encrypted keys, and the keys still decrypt."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command

from exchanges.crypto import decrypt
from exchanges.tests.factories import ExchangeConfigFactory
from positions.models import DCAOrder, PositionGroup, Pyramid
from tradingsite.backup import backups_prune, target_default

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fresh_database():
    """An empty database on the same server, dropped afterwards."""
    target = target_default()
    name = f"restore_drill_{uuid.uuid4().hex[:10]}"
    admin = {**target.conninfo(), "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url(dbname: str) -> str:
    t = target_default()
    host = t.host if not t.host.startswith("/") else ""
    auth = t.user + (f":{t.password}" if t.password else "")
    url = f"postgresql://{auth}@{host}{':' + t.port if t.port else ''}/{dbname}"
    return url + (f"?host={t.host}" if t.host.startswith("/") else "")


def test_backup_restores_into_a_fresh_database(tmp_path: Path, fresh_database, trader) -> None:
    config = ExchangeConfigFactory.create(user=trader, api_key="restore-drill-key-ABCD", api_secret="s" * 64)
    group = PositionGroup.objects.create(
        user=trader, exchange_config=config, symbol="BTC/USDT", timeframe="1h", status="live"
    )
    pyramid = Pyramid.objects.create(group=group, index=0, entry_price=Decimal("65000"), capital_usd=Decimal("200"))
    DCAOrder.objects.create(
        group=group,
        exchange_config=config,
        pyramid=pyramid,
        pyramid_level=0,
        dca_level=0,
        symbol="BTC/USDT",
        side="buy",
        order_type="limit",
        price=Decimal("65000"),
        quantity=Decimal("0.001"),
        client_order_id="drill-0001",
        expected_price=Decimal("65000"),
    )
    out = StringIO()
    call_command("backup", "--out", str(tmp_path / "drill.dump"), stdout=out)
    path = Path(out.getvalue().strip())
    assert path == tmp_path / "drill.dump" and path.stat().st_size > 0

    out = StringIO()
    call_command("restore", str(path), "--database-url", _url(fresh_database), stdout=out)
    result = json.loads(out.getvalue())
    assert result["database"] == fresh_database
    assert result["rows"]["positions_positiongroup"] == 1 and result["rows"]["positions_dcaorder"] == 1

    conninfo = {**target_default().conninfo(), "dbname": fresh_database}
    with psycopg.connect(**conninfo) as conn:
        row = conn.execute(
            "SELECT api_key_encrypted, api_secret_encrypted FROM exchanges_exchangeconfig WHERE id = %s", [config.pk]
        ).fetchone()
        orders = conn.execute("SELECT client_order_id, price FROM positions_dcaorder").fetchall()
    assert row == (config.api_key_encrypted, config.api_secret_encrypted)  # still ciphertext, unchanged
    assert "restore-drill-key" not in row[0]
    assert orders == [("drill-0001", Decimal("65000"))]
    # The restored ciphertext decrypts with the same keys, bound to the same row.
    assert decrypt(row[0], context=config.encryption_context("api_key")) == "restore-drill-key-ABCD"


def test_restore_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="is not a file"):
        call_command("restore", str(tmp_path / "nope.dump"))


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    names = [f"trading-2026010{day}T030000Z.dump" for day in range(1, 6)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = backups_prune(folder=tmp_path, keep=2)
    assert sorted(p.name for p in removed) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == names[3:]
