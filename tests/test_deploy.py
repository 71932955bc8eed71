"""deploy/: the TLS proxy's configuration passes nginx's own `nginx -t`, the systemd units name real
commands, and the example environment names only settings the engine (or a unit) reads."""

from __future__ import annotations

import configparser
import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trading.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs it)")
def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "trading.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/trading.example.com/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/trading.example.com/privkey.pem", str(key))
    (tmp_path / "trading.conf").write_text(site)
    (tmp_path / "logs").mkdir()
    main = f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/trading.conf;
}}
"""
    (tmp_path / "nginx.conf").write_text(main)
    done = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr
    # A broken file fails the same check: the test can fail.
    (tmp_path / "trading.conf").write_text(site.replace("proxy_pass http://trading_web;", "proxy_pass;", 1))
    broken = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode != 0


def _units() -> list[Path]:
    return sorted((DEPLOY / "systemd").glob("*.service"))


def test_units_run_the_processes_of_the_stack() -> None:
    commands = {}
    for path in _units():
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(path.read_text())
        service = parser["Service"]
        assert service["EnvironmentFile"] == "/etc/trading/trading.env"
        assert service["Restart"] == "always"
        commands[path.name] = service["ExecStart"]
    assert set(commands) == {
        "trading-web@.service",
        "trading-worker.service",
        "trading-heavy-worker.service",
        "trading-beat.service",
    }
    assert "tradingsite.web" in commands["trading-web@.service"] and "-p %i" in commands["trading-web@.service"]
    assert " worker " in commands["trading-worker.service"]
    assert "-Q heavy" in commands["trading-heavy-worker.service"]
    assert "DatabaseScheduler" in commands["trading-beat.service"]
    upstream = re.findall(r"server 127\.0\.0\.1:(\d+)", (DEPLOY / "nginx" / "trading.conf").read_text())
    target = (DEPLOY / "systemd" / "trading.target").read_text()
    assert all(f"trading-web@{port}.service" in target for port in upstream)


def test_example_environment_names_settings_the_engine_reads() -> None:
    names = [
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (DEPLOY / "trading.env.example").read_text().splitlines()
        if "=" in line and re.match(r"^#? ?[A-Z_]+=", line)
    ]
    sources = "".join(p.read_text() for p in (ROOT / "tradingsite").rglob("*.py"))
    sources += (ROOT / "Makefile").read_text()
    sources += "".join(p.read_text() for p in (DEPLOY / "systemd").iterdir())  # ${NAME} in ExecStart
    unknown = [name for name in names if name not in sources]
    assert unknown == []
    assert {"SECRET_KEY", "ENCRYPTION_KEYS", "DATABASE_URL", "METRICS_TOKEN", "BACKUP_DIR"} <= set(names)
