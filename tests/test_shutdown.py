"""`staystream serve` stops all it started: after a failed start, and with event streams open."""

from __future__ import annotations

import datetime as dt
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


def test_a_failed_start_stops_the_children(tmp_path: Path) -> None:
    """The listening line cannot be written (its reader is gone): the supervisor, which had
    started the writer, the workers and the watcher, stops them all and exits. It used to hang
    with all of them running (multiprocessing's exit handler waits for its children)."""
    data_dir = tmp_path / "var"
    with open(tmp_path / "serve.log", "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "serve", "--port", "0", "--data-dir", str(data_dir),
             "--workers", "1"], stdout=subprocess.PIPE, stderr=log_file)
    assert process.stdout is not None
    process.stdout.close()  # the print of the listening line fails with BrokenPipeError
    try:
        code = process.wait(60)
    finally:
        process.kill()
    log = (tmp_path / "serve.log").read_text()
    assert code != 0 and "BrokenPipeError" in log, log
    assert '"msg":"stopped"' in log
    assert _processes_serving(data_dir) == []


def test_stop_ends_open_event_streams(tmp_path: Path) -> None:
    """A page keeps its watch's stream open; `stop` ends it at once instead of waiting until the
    supervisor kills the worker (10 s)."""
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
    opened, ended = threading.Event(), threading.Event()

    def listen() -> None:
        url = f"{server.url}/v1/watches/{watch.json()['watch_id']}/events"
        with httpx.stream("GET", url, timeout=60) as stream:
            for _ in stream.iter_raw():
                opened.set()
        ended.set()

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(30), "the stream did not open"
    started = time.monotonic()
    assert server.stop() == 0
    took = time.monotonic() - started
    assert ended.wait(5), "the stream is still open"
    assert took < 5, f"stop took {took:.1f} s with a stream open"
    print(f"stop with an open stream: {took:.2f} s")
