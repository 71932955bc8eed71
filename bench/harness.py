"""What every bench needs around it: a fresh database, the simulator, web and worker processes.

`Harness` is used as a context manager by `bench.__main__`. It creates the database once (a migrated
template), gives each bench a fresh copy of it, starts the processes a bench asks for on free loopback
ports, and stops all of them (process group TERM, then KILL) when the bench ends, fails or is
interrupted. Diagnostics go to stderr; children's output goes to log files whose tail is shown when a
process fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from exchanges.simulator.testing import SimulatorProcess  # no Django in the simulator

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# BENCH_DB=name: another database (and template), so that two benches on one server do not drop each other's.
BENCH_DB = os.environ.get("BENCH_DB") or "tradingsite_bench"
TEMPLATE_DB = f"{BENCH_DB}_template"
# The test settings with production's persistent database connections (see that module).
SETTINGS = "tradingsite.settings.bench"
WEB_ENV = {"WEBHOOK_RATE_LIMIT_PER_MINUTE": "100000"}


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and every process below it (a prefork worker's pool)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0.0
    for member in tree:
        with contextlib.suppress(OSError):
            total += cpu_seconds(member)
    return total


def load_average() -> float:
    """The 1-minute load average (this bench's own processes included), to tell a quiet machine from a busy one."""
    return round(os.getloadavg()[0], 2)


def database_url(base_url: str, name: str) -> str:
    """The same server and credentials as `base_url`, another database."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class ChildProcess:
    """One long-running child in its own process group, its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path, pass_fds: tuple[int, ...] = ()
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class Harness:
    """Database, processes and cleanup for a run of benches."""

    def __init__(self) -> None:
        base = os.environ.get("DATABASE_URL")
        if not base:
            raise SystemExit("DATABASE_URL is not set: run through `make bench` (tradingsite.stack exec)")
        self.server_url = base
        self.db_url = database_url(base, BENCH_DB)
        self.template_url = database_url(base, TEMPLATE_DB)
        # BENCH_KEEP_LOGS=1 keeps the children's logs (the path is printed).
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-", delete=not os.environ.get("BENCH_KEEP_LOGS"))
        self.tmp = Path(self._tmp.name)
        self.children: list[ChildProcess] = []
        self.simulators: list[Any] = []
        self.env: dict[str, str] = {
            **os.environ,
            **WEB_ENV,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": self.db_url,
            "PYTHONUNBUFFERED": "1",
        }
        self._template_ready = False
        self.web_pids: list[int] = []
        self.web_sockets: list[Any] = []

    # ------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        os.environ.update({k: v for k, v in self.env.items() if k in (*WEB_ENV, "DJANGO_SETTINGS_MODULE")})
        os.environ["DATABASE_URL"] = self.db_url
        say(f"settings {SETTINGS}, database {BENCH_DB}")
        import django

        django.setup()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()
        self._close_django()
        with contextlib.suppress(Exception):
            self._admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        if os.environ.get("BENCH_KEEP_LOGS"):
            say(f"logs kept in {self.tmp}")
        else:
            self._tmp.cleanup()

    def stop_all(self) -> None:
        """Stop every child this harness started, newest first."""
        while self.children:
            child = self.children.pop()
            say(f"stopping {child.name}")
            child.stop()
        while self.simulators:
            with contextlib.suppress(Exception):
                self.simulators.pop().stop()

    @contextlib.contextmanager
    def bench_scope(self) -> Iterator[None]:
        """A fresh database for one bench; its processes are stopped when it ends."""
        self.fresh_database()
        try:
            yield
        finally:
            self.stop_all()

    # ------------------------------------------------------------------------------- database

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql)

    @staticmethod
    def _close_django() -> None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()

    def fresh_database(self) -> None:
        """Drop and re-create `tradingsite_bench` as a copy of the migrated template."""
        started = time.monotonic()
        if not self._template_ready:
            self._admin(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{TEMPLATE_DB}"')
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=ROOT,
                env={**self.env, "DATABASE_URL": self.template_url},
                check=True,
            )
            self._template_ready = True
        self._close_django()
        self._admin(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{BENCH_DB}" TEMPLATE "{TEMPLATE_DB}"')
        say(f"fresh database {BENCH_DB} ({time.monotonic() - started:.1f} s)")

    # ------------------------------------------------------------------------------ processes

    def _start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
    ) -> ChildProcess:
        child = ChildProcess(name, argv, env=env or self.env, log_dir=self.tmp, pass_fds=pass_fds)
        self.children.append(child)
        return child

    def _fail(self, child: ChildProcess, why: str) -> RuntimeError:
        return RuntimeError(f"{child.name} {why}; last output:\n{child.tail()}")

    def start_simulator(self, exchange_info: Path | None = None) -> Any:
        """The Binance-compatible simulator; every process (this one included) is pointed at it."""
        from django.conf import settings

        sim = SimulatorProcess(exchange_info=exchange_info)
        self.simulators.append(sim)
        sim.start()
        self.env["SIMULATOR_URL"] = sim.url
        os.environ["SIMULATOR_URL"] = sim.url
        settings.SIMULATOR_URL = sim.url
        say(f"simulator at {sim.url}")
        return sim

    def start_web(self) -> str:
        """daphne as `make run` starts it (several processes on one socket, free port); returns its base URL.

        `self.web_pids` are the processes' pids (for CPU accounting).
        """
        # Importing tradingsite creates the celery app, which defaults DJANGO_SETTINGS_MODULE to dev:
        # only once __enter__ has set the bench settings.
        from tradingsite.stack import WEB_PROCESSES, listening_sockets, web_argv

        sockets = listening_sockets("127.0.0.1", 0, WEB_PROCESSES)
        self.web_sockets = sockets
        port = sockets[0].getsockname()[1]
        children = [
            self._start(f"web-{i}", web_argv(sock.fileno(), access_log=False), pass_fds=(sock.fileno(),))
            for i, sock in enumerate(sockets)
        ]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dead = [c for c in children if not c.alive()]
            if dead:
                raise self._fail(dead[0], "exited during start")
            try:
                urllib.request.urlopen(url + "/api/webhook/ready", timeout=5).read()
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer (405: the webhook takes POST only) means Django is serving
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise self._fail(children[0], "did not answer within 60 s")
        time.sleep(1.0)  # let every process finish importing before anything is measured
        say(f"web ({len(children)} daphne processes) at {url}")
        self.web_pids = [c.process.pid for c in children]
        return url

    def purge_queue(self) -> int:
        # Importing tradingsite creates the celery app, which defaults DJANGO_SETTINGS_MODULE to dev:
        # only once __enter__ has set the bench settings.
        from tradingsite.celery import app

        purged = app.control.purge() or 0
        if purged:
            say(f"purged {purged} queued task(s)")
        return purged

    def start_worker(self, concurrency: int | None = None) -> ChildProcess:
        """A celery worker on an empty queue; returns once it answers a ping."""
        # Importing tradingsite creates the celery app, which defaults DJANGO_SETTINGS_MODULE to dev:
        # only once __enter__ has set the bench settings.
        from tradingsite.celery import app

        self.purge_queue()
        name = f"bench-{os.getpid()}@%h"
        # see start_worker's first import
        from tradingsite.stack import worker_argv

        argv = worker_argv(name=name, loglevel="warning", extra=["--without-mingle", "--without-gossip"])
        if concurrency:
            argv[argv.index("--concurrency") + 1] = str(concurrency)
        child = self._start("worker", argv)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not child.alive():
                raise self._fail(child, "exited during start")
            replies = app.control.ping(timeout=0.5) or []
            if any(name.split("@")[0] in key for reply in replies for key in reply):
                say("worker ready")
                return child
        raise self._fail(child, "did not answer a ping within 60 s")

    def start_heavy_worker(self, concurrency: int = 1) -> ChildProcess:
        """The heavy worker as `make run` starts it (queue `heavy` only, processes, lowest priority); returns once
        it answers a ping."""
        # see start_worker's first import
        from tradingsite.celery import app
        from tradingsite.stack import heavy_worker_argv

        name = f"bench-heavy-{os.getpid()}@%h"
        argv = heavy_worker_argv(concurrency=concurrency, loglevel="warning", name=name)
        child = self._start("heavy-worker", [*argv, "--without-mingle", "--without-gossip"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not child.alive():
                raise self._fail(child, "exited during start")
            replies = app.control.ping(timeout=0.5) or []
            if any(name.split("@")[0] in key for reply in replies for key in reply):
                say("heavy worker ready")
                return child
        raise self._fail(child, "did not answer a ping within 60 s")

    def stop_worker(self) -> None:
        for child in [c for c in self.children if c.name == "worker"]:
            say("stopping worker")
            child.stop(timeout=30)
            self.children.remove(child)

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise self._fail(child, f"exited with {child.process.returncode}")
