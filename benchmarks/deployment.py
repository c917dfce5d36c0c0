"""A multi-process deployment on this machine, for `subledger bench soak` and the fault tests.

Throw-away PostgreSQL and Redis servers that can be restarted (a dedicated data dir
and port each, like scripts/services.sh starts them), and the service's own
processes: `subledger serve`, `subledger worker` and `subledger sandbox-gateway`,
each a real subprocess logging to its own file.

PostgreSQL refuses to run as root: as root it runs as SUBLEDGER_PG_USER, `postgres`
or `subledger-ci` (the first that exists), through setpriv.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateways.tls import client_ssl_context

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = "deployment-secret-that-is-long-enough-for-hs256"
CRON_SECRET = "deployment-cron-secret"
CLOCK_START = "2026-03-01T10:00:00+09:00"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        path = Path(os.path.realpath(found)).parent
        if (path / "pg_ctl").exists():
            return path
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")


def _root_pg_user() -> str:
    """The OS user PostgreSQL runs as when we are root: SUBLEDGER_PG_USER, `postgres`, or the
    `subledger-ci` user scripts/services.sh creates where there is no `postgres`."""
    for name in (os.environ.get("SUBLEDGER_PG_USER"), "postgres", "subledger-ci"):
        if name:
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
    raise RuntimeError("PostgreSQL refuses to run as root: create a `postgres` user or set SUBLEDGER_PG_USER")


class Postgres:
    """A PostgreSQL cluster of its own in a temp dir; restart() is `pg_ctl restart -m fast`."""

    def __init__(self, workdir: Path) -> None:
        self.bin = _pg_bin()
        self.root = os.geteuid() == 0
        self.user = _root_pg_user() if self.root else pwd.getpwuid(os.geteuid()).pw_name
        self.dir = workdir / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = 0

    def _as_user(self, *command: str) -> list[str]:
        if not self.root:
            return list(command)
        entry = pwd.getpwnam(self.user)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--", *command]

    def _run(self, *command: str, timeout: float = 120) -> None:
        subprocess.run(self._as_user(*command), check=True, cwd=self.dir, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/subledger"

    def start(self) -> Postgres:
        self.dir.mkdir(parents=True)
        if self.root:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dir, 0o700)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        self.port = free_port()
        settings = (f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "max_connections = 300\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self._run("sh", "-c", f"cat >> '{self.data}/postgresql.conf' <<'EOF'\n{settings}EOF\n")
        self._pg_ctl("start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "subledger")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  *extra, action)

    def restart(self) -> None:
        """A fast restart: every session is cut off, the server is back within a second or two."""
        self._pg_ctl("restart", "-m", "fast")

    def down_for(self, seconds: float) -> None:
        """Stopped (fast: sessions cut) for `seconds`, then started again on the same port."""
        self._pg_ctl("stop", "-m", "fast")
        time.sleep(seconds)
        self._pg_ctl("start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._pg_ctl("stop", "-m", "immediate")


class Redis:
    """A redis-server of its own; restart() stops it (SIGTERM, no persistence) and starts it on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "redis"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--dir", str(self.dir), "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._pong, 30, "redis-server")
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


def service_env(database_url: str, *, redis_url: str | None = None, sandbox_url: str | None = None,
                **extra: str) -> dict[str, str]:
    """The environment of every subledger process of the deployment (test clock, sandbox gateway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env.update(
        SUBLEDGER_DATABASE_URL=database_url,
        SUBLEDGER_JWT_SECRET=JWT_SECRET,
        SUBLEDGER_CRON_SECRET=CRON_SECRET,
        SUBLEDGER_CLOCK="test",
        SUBLEDGER_CLOCK_START=CLOCK_START,
        SUBLEDGER_GATEWAY_RETRY_BASE_SECONDS="0.01",
        SUBLEDGER_THREADS="8",
        PYTHONPATH=str(ROOT),
        # The per-caller limit on money mutations would answer most of a load from a few users
        # RATE_LIMITED; its own tests cover it, this deployment measures what is behind it.
        SUBLEDGER_RATE_LIMIT="off",
        SUBLEDGER_RATE_LIMIT_ADMIN="off",
        # Fault tests kill processes and expect the next run to settle what they left within
        # seconds; the soak puts the production grace back (it is what the soak checks).
        SUBLEDGER_SETTLE_GRACE_SECONDS="0",
    )
    if redis_url:
        env["SUBLEDGER_REDIS_URL"] = redis_url
    if sandbox_url:
        env["SUBLEDGER_SANDBOX_URL"] = sandbox_url
    env.update(extra)
    return env


@dataclass
class Process:
    """One subledger subprocess; `url` for the ones that serve HTTP."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    url: str | None = None
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60) -> Process:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen([sys.executable, "-m", "subledger.cli", *self.args], env=self.env,
                                          cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if self.url:
            wait_until(self._up, timeout, f"{' '.join(self.args[:1])} on {self.url}", interval=0.2)
        return self

    def _up(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.args[0]} exited with {self.popen.returncode}; see {self.log_path}")
        probe = "/healthz" if self.args[0] == "serve" else "/sandbox/charges"
        try:
            return httpx.get(f"{self.url}{probe}", timeout=2, verify=client_ssl_context()).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crash."""
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Deployment:
    """The processes of one deployment; stop() ends every one it started, newest first."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.processes: list[Process] = []

    def _add(self, args: list[str], name: str, url: str | None = None, port: int | None = None,
             **extra: str) -> Process:
        process = Process(args, {**self.env, **extra}, self.workdir / f"{name}-{len(self.processes)}.log", url, port)
        self.processes.append(process)
        return process.start()

    def serve(self, port: int | None = None, **extra: str) -> Process:
        port = port or free_port()
        return self._add(["serve", "--port", str(port)], "serve", f"http://127.0.0.1:{port}", port, **extra)

    def worker(self, **extra: str) -> Process:
        return self._add(["worker"], "worker", **extra)

    def projector(self, **extra: str) -> Process:
        return self._add(["projector"], "projector", **extra)

    def sandbox(self, port: int | None = None) -> Process:
        port = port or free_port()
        return self._add(["sandbox-gateway", "--port", str(port)], "sandbox", f"http://127.0.0.1:{port}", port)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A one-off command (`audit verify`, `audit reconcile`) on the deployment's database."""
        return subprocess.run([sys.executable, "-m", "subledger.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def make_workdir(prefix: str) -> Path:
    """A temp dir the postgres user can traverse (PostgreSQL keeps its data and socket there)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o711)
    return path
