"""`staystream probe` against a real server: it writes the canary, sees it, reports and exports."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from conftest import Server
from staystream.probe import CANARY_LAT, CANARY_LON


def probe(*args: str, token: str | None = None) -> tuple[int, dict[str, Any], str]:
    """Run `staystream probe --once`: exit code, the JSON result, stderr."""
    env = {key: value for key, value in os.environ.items() if key != "STAYSTREAM_TOKEN"}
    if token is not None:
        env["STAYSTREAM_TOKEN"] = token
    done = subprocess.run([sys.executable, "-m", "staystream", "probe", "--once", *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line; stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.returncode, json.loads(lines[0]), done.stderr


def test_once_sees_its_write_in_calendar_and_search(server: Server) -> None:
    code, result, stderr = probe("--url", server.url, "--listing-id", "canary-once")
    assert code == 0, (result["error"], stderr)
    assert result["ok"] is True and result["error"] is None
    assert 0 <= result["visible_seconds"] < 1, result  # read-after-ack: the first look already sees it
    assert result["visible_seconds"] == max(result["calendar_seconds"], result["search_seconds"])
    assert 0 <= result["watch_seconds"] < 1, result  # its watch's event within the promised second
    with server.client() as client:  # what the probe claims to have seen is there
        night = dt.date.fromisoformat(result["night"])
        nights = client.get("/v1/listings/probe/canary-once/calendar",
                            params={"start": str(night), "end": str(night + dt.timedelta(days=1))}).json()["nights"]
        assert [(night["night"], night["price"], night["currency"]) for night in nights] == [
            (result["night"], result["price"], "EUR")]
        listing = client.get("/v1/listings/probe/canary-once").json()
        assert (listing["lat"], listing["lon"]) == (CANARY_LAT, CANARY_LON)


def test_each_run_writes_a_new_price(server: Server) -> None:
    first = probe("--url", server.url, "--listing-id", "canary-twice")[1]
    time.sleep(0.02)  # the price comes from the clock's hundredths of a second
    second = probe("--url", server.url, "--listing-id", "canary-twice")[1]
    assert first["ok"] and second["ok"], (first, second)
    assert first["price"] != second["price"]


def test_a_refused_write_fails_with_the_servers_reason(server: Server) -> None:
    code, result, _ = probe("--url", server.url, "--days-ahead", "900")  # past the 730-day horizon
    assert code == 1
    assert result["ok"] is False and result["visible_seconds"] is None
    assert result["error"].startswith("write: the canary was not accepted"), result
    assert "horizon" in result["error"] or "days" in result["error"], result


def test_an_unreachable_server_fails(tmp_path: Path) -> None:
    code, result, _ = probe("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "1")
    assert code == 1
    assert "ConnectionRefusedError" in result["error"], result


def test_sends_the_token(tmp_path: Path, server_factory: Callable[..., Server]) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("probe-key probe\n")
    guarded = server_factory("--tokens", str(tokens), workers=1)
    code, result, _ = probe("--url", guarded.url)
    assert code == 1 and "answered 401" in result["error"], result
    code, result, _ = probe("--url", guarded.url, token="probe-key")
    assert code == 0 and result["ok"], result


def test_exports_results_as_metrics(server: Server) -> None:
    port = free_port()
    running = subprocess.Popen(
        [sys.executable, "-m", "staystream", "probe", "--url", server.url, "--every", "0.2",
         "--metrics-port", str(port), "--listing-id", "canary-metrics"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        samples: dict[str, float] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                samples = parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
            if samples.get("staystream_probe_visible_seconds_count", 0) >= 3:
                break
            time.sleep(0.1)
        assert samples.get("staystream_probe_success") == 1.0, samples
        assert samples["staystream_probe_visible_seconds_count"] >= 3, samples
        assert samples['staystream_probe_visible_seconds_bucket{le="1.0"}'] == samples[
            "staystream_probe_visible_seconds_count"], samples  # every run within the 1 s budget
        assert abs(samples["staystream_probe_last_run_timestamp_seconds"] - time.time()) < 5, samples
    finally:
        running.send_signal(signal.SIGINT)
        try:
            stdout, stderr = running.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # fail this test, not the next one with a probe left running
            running.kill()
            running.communicate()
            raise
    assert running.returncode == 0, stderr
    runs = [json.loads(line) for line in stdout.splitlines()]
    assert len(runs) >= 3 and all(run["ok"] for run in runs), runs


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: 'name{labels}' -> value (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
