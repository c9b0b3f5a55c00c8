"""`staystream serve` stops all it started: with its stdout closed, and with event streams open."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from conftest import start_server


def _processes_serving(data_dir: Path) -> list[int]:
    """Live processes whose command line names `data_dir` (the supervisor's forked children keep it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            named = entry.name.isdigit() and str(data_dir).encode() in (entry / "cmdline").read_bytes()
            if named and (entry / "stat").read_text().split(")")[-1].split()[0] != "Z":  # not a zombie
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_reader_that_closed_stdout_cannot_stop_the_service_or_its_stop(tmp_path: Path) -> None:
    """Tools read the URL off the first line and close the pipe (`staystream import`'s own
    server). A write to the closed pipe once ended `serve` before it stopped its children, and
    multiprocessing's exit handler then waited on them forever (the import's stop took 300 s).
    Here the pipe is closed before the first write: the service still serves, and SIGTERM still
    stops the supervisor and every child."""
    data_dir = tmp_path / "var"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(tmp_path / "serve.log", "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--workers", "1"], stdout=subprocess.PIPE, stderr=log_file, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    process.stdout.close()  # gone before the supervisor says where it listens
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        assert len(_processes_serving(data_dir)) >= 3  # supervisor, writer, worker (and the watcher)
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        process.kill()
        process.wait()
    log = (tmp_path / "serve.log").read_text()
    assert code == 0 and '"msg":"stopped"' in log, log
    assert _processes_serving(data_dir) == []


def test_stop_ends_open_event_streams(tmp_path: Path) -> None:
    """A page keeps its watch's stream open; on `stop` the worker ends the stream itself (a
    complete chunked response) at once, instead of waiting until the supervisor kills it after
    10 s (the client then sees the connection cut mid-stream)."""
    server = start_server(tmp_path / "var", workers=1)
    checkin = dt.date.today() + dt.timedelta(days=7)
    try:
        watch = httpx.post(f"{server.url}/v1/watches", timeout=30, json={
            "lat": 1.29, "lon": 103.85, "radius_km": 5, "checkin": str(checkin),
            "checkout": str(checkin + dt.timedelta(days=2))})
        assert watch.status_code == 201, watch.text
    except BaseException:
        server.stop()
        raise
    opened = threading.Event()
    ended: list[object] = []  # [monotonic time, None or the error that cut the stream]

    def listen() -> None:
        url = f"{server.url}/v1/watches/{watch.json()['watch_id']}/events"
        try:
            with httpx.stream("GET", url, timeout=60) as stream:
                for _ in stream.iter_raw():
                    opened.set()
            ended.extend([time.monotonic(), None])
        except httpx.HTTPError as exc:
            ended.extend([time.monotonic(), exc])

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(30), "the stream did not open"
    started = time.monotonic()
    assert server.stop() == 0
    reader.join(30)
    assert ended, "the stream is still open"
    at, error = ended
    assert error is None, f"the stream was cut, not ended: {error!r}"
    assert isinstance(at, float) and at - started < 8, f"the stream ended {at - started:.1f} s after SIGTERM"
    print(f"stream ended {at - started:.2f} s after SIGTERM; stop took {time.monotonic() - started:.2f} s")
