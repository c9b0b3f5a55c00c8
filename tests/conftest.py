"""Fixtures that run the real service: `staystream serve` as a child process over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Children get SIGINT as a terminal's Ctrl-C delivers it. A runner started in the background
    by a script has SIGINT ignored (POSIX shells do that to background jobs); an ignored signal
    stays ignored across exec, so a `staystream probe` under test would never see its Ctrl-C."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log_path: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> int:
        """Clean shutdown (SIGTERM); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:  # a hang: its log's end is the clue (pytest shows stdout)
                last_lines = self.log().splitlines()[-30:]
                print(f"{self.log_path} did not stop in 60 s; its last lines:", *last_lines, sep="\n")
                self.kill()
        self._close_pipes()
        return self.process.returncode

    def _close_pipes(self) -> None:
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()

    def kill(self) -> None:
        """kill -9 of the supervisor; its writer and workers die with it (PR_SET_PDEATHSIG)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self._close_pipes()
        time.sleep(0.3)  # let the children receive their SIGKILL

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, *args: str, workers: int = 2, timeout: float = 60) -> Server:
    """Start `staystream serve` on a free port and wait until it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server-{time.monotonic_ns()}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "serve", "--port", "0", "--data-dir", str(data_dir),
             "--workers", str(workers), *args],
            stdout=subprocess.PIPE, stderr=log_file, env=env,
        )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if "listening on" in line:
            url = line.strip().rsplit(" ", 1)[-1]
            return Server(process, url, data_dir, log_path)
        if not line and process.poll() is not None:
            break
    process.kill()
    process.wait()
    process.stdout.close()
    raise RuntimeError(f"server did not start; log:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    """Start servers on demand (each with its own data dir unless given); all stopped at the end."""
    started: list[Server] = []

    def start(*args: str, data_dir: Path | None = None, workers: int = 2) -> Server:
        server = start_server(data_dir or tmp_path / f"var{len(started)}", *args, workers=workers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a test module (tests use distinct listing ids)."""
    running = start_server(tmp_path_factory.mktemp("server") / "var")
    yield running
    running.stop()
