"""Database backup and restore with PostgreSQL's own tools, custom format (docs/processes.md#backups).

`pg_dump -Fc` writes everything the engine stores; encrypted secrets (exchange keys, notification tokens)
stay ciphertext in the file, so a backup is no more readable than the database without ENCRYPTION_KEYS.
The tools are the embedded server's (`pgserver`) when it ships them, else the system's; one whose major
version is older than the server's is never used (pg_dump refuses newer servers anyway).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from django.conf import settings
from psycopg import sql

TOOL_TIMEOUT_S = 3600
COUNTED_TABLES = (
    "accounts_user",
    "exchanges_exchangeconfig",
    "positions_positiongroup",
    "positions_dcaorder",
    "positions_exitorder",
    "positions_fill",
    "notifications_notificationchannel",
)


class BackupError(Exception):
    """A backup or restore could not be made; the message says why (never a password)."""


@dataclass(frozen=True)
class Target:
    """Where a database is: libpq's connection parameters, the password passed by environment only."""

    dbname: str
    host: str
    port: str
    user: str
    password: str

    def args(self) -> list[str]:
        args = ["--dbname", self.dbname, "--username", self.user]
        if self.host:
            args += ["--host", self.host]
        if self.port:
            args += ["--port", self.port]
        return args

    def env(self) -> dict[str, str]:
        env = {**os.environ}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def conninfo(self) -> dict[str, Any]:
        info: dict[str, Any] = {"dbname": self.dbname, "user": self.user}
        if self.host:
            info["host"] = self.host
        if self.port:
            info["port"] = self.port
        if self.password:
            info["password"] = self.password
        return info


def target_default() -> Target:
    db = settings.DATABASES["default"]
    options = db.get("OPTIONS") or {}
    return Target(
        dbname=str(db.get("NAME") or "postgres"),
        # The embedded server's URL names its socket folder as `?host=`, which lands in OPTIONS.
        host=str(db.get("HOST") or options.get("host") or ""),
        port=str(db.get("PORT") or options.get("port") or ""),
        user=str(db.get("USER") or "postgres"),
        password=str(db.get("PASSWORD") or ""),
    )


def target_from_url(url: str) -> Target:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return Target(
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
        host=unquote(parts.hostname or "") or query.get("host", [""])[0],
        port=str(parts.port or ""),
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
    )


def _server_major(target: Target) -> int:
    with psycopg.connect(**target.conninfo(), connect_timeout=10) as conn:
        return int(conn.info.server_version) // 10000


def _tool_major(path: str) -> int:
    output = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    return int(match.group(1)) if match else 0


def _candidates(name: str) -> list[str]:
    found: list[str] = []
    configured = os.environ.get("PG_BIN_DIR")
    if configured:
        found.append(str(Path(configured) / name))
    try:
        import pgserver  # noqa: PLC0415  (optional: only the embedded setup has it; its bin dir is a fallback)

        found.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    except ImportError:
        pass
    system = shutil.which(name)
    if system:
        found.append(system)
    return [path for path in found if os.access(path, os.X_OK)]


def pg_tool(name: str, *, server_major: int) -> str:
    """The first `name` (pg_dump, pg_restore) at least as new as the server."""
    for path in _candidates(name):
        if _tool_major(path) >= server_major:
            return path
    raise BackupError(f"no {name} of PostgreSQL {server_major} or newer found (set PG_BIN_DIR)")


def _run(argv: list[str], target: Target) -> None:
    done = subprocess.run(argv, env=target.env(), capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{Path(argv[0]).name} failed: {' / '.join(message[-3:])}")


def database_backup(*, out: Path | None = None, target: Target | None = None) -> Path:
    """Dump the database to `out` (default: BACKUP_DIR or .data/backups, timestamped) and return the path."""
    target = target or target_default()
    if out is None:
        folder = Path(settings.BACKUP_DIR or settings.DATA_DIR / "backups")
        out = folder / f"trading-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    tool = pg_tool("pg_dump", server_major=_server_major(target))
    _run([tool, "--format=custom", "--no-owner", "--no-privileges", "--file", str(partial), *target.args()], target)
    partial.replace(out)  # a crash mid-dump never leaves a file that looks complete
    return out


def table_counts(target: Target) -> dict[str, int]:
    """Rows of the engine's main tables in a database (what a restore is checked against)."""
    counts: dict[str, int] = {}
    with psycopg.connect(**target.conninfo(), connect_timeout=10) as conn:
        for table in COUNTED_TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", [table]).fetchone()
            if exists and exists[0]:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
                counts[table] = int(row[0]) if row else 0
    return counts


def database_restore(*, path: Path, target: Target | None = None) -> dict[str, int]:
    """Restore a `database_backup` file into the target (its objects replaced), then count what is there."""
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    target = target or target_default()
    tool = pg_tool("pg_restore", server_major=_server_major(target))
    _run(
        [
            tool,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            *target.args(),
            str(path),
        ],
        target,
    )
    return table_counts(target)


def backups_prune(*, folder: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest backups in `folder`; returns what was deleted."""
    files = sorted(folder.glob("trading-*.dump"), key=lambda p: p.name, reverse=True)
    removed = files[keep:]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def backup_scheduled() -> str:
    """The 03:00 task: a backup into BACKUP_DIR and retention of BACKUP_KEEP files; nothing without BACKUP_DIR."""
    if not settings.BACKUP_DIR:
        return "BACKUP_DIR not set: no backup"
    path = database_backup()
    removed = backups_prune(folder=path.parent, keep=max(1, int(settings.BACKUP_KEEP)))
    return f"{path.name} written, {len(removed)} old removed"
