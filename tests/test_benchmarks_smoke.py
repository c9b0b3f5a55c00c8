"""The benchmark harness runs end to end (`make bench` in miniature). No timing is asserted:
speed is proven by `make bench` on a quiet machine, not by tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "benchmarks.run", "throughput", "latency", "ceiling",
        "--quick", "--listings", "2000", "--workers", "2", "--time-scale", "0.5",
        "--output", str(tmp_path), "--workdir", str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [results] = tmp_path.glob("*.json")
    report = json.loads(results.read_text())
    assert report["machine"]["nproc"] >= 1
    throughput = report["scenarios"]["throughput"]["workers=2"]["median"]
    assert throughput["events_per_s"]["median"] > 0
    assert throughput["errors"]["median"] == 0
    assert throughput["nights_won_fraction"]["median"] == 1.0  # every event was a real update
    for fraction in ("25%", "50%", "90%"):
        latency = report["scenarios"]["latency"][fraction]["median"]
        assert latency["requests"]["median"] > 0
        assert latency["errors"]["median"] == 0
    assert report["scenarios"]["ceiling"]["median"]["night_updates_per_s"]["median"] > 0
    assert "| sustained night updates/s |" in results.with_suffix(".md").read_text()
    assert not list(tmp_path.glob("staystream-bench-*")), "the work dir was left behind"


def test_quick_tail_run(tmp_path: Path) -> None:
    """The tail scenario: full speed then half, 7-night events, reads after acknowledgments."""
    command = [
        sys.executable, "-m", "benchmarks.run", "tail", "--quick", "--workers", "2", "--time-scale", "0.5",
        "--output", str(tmp_path), "--workdir", str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    [results] = tmp_path.glob("*.json")
    tail = json.loads(results.read_text())["scenarios"]["tail"]["median"]
    assert tail["nights_per_event"]["median"] == 7.0
    full = tail["full"]
    assert full["night_updates_per_s"]["median"] == 7 * full["events_per_s"]["median"]
    for phase in ("half_after_full", "half_fresh"):
        assert tail[phase]["requests"]["median"] > 0
        assert tail[phase]["errors"]["median"] == 0
    assert tail["after_full_side"]["server_cores"]  # the server was measured
    assert "half rate right after it" in done.stdout


def test_quick_watches_run(tmp_path: Path) -> None:
    """The watches scenario: watches from many loopback addresses under the default per-address
    limit, the canary's alerts timed at max and at half load, `--repeat` rounds of them; every
    canary write made its event, and the watcher caught up after each phase."""
    command = [
        sys.executable, "-m", "benchmarks.run", "watches", "--quick", "--listings", "2000", "--watches", "300",
        "--workers", "2", "--time-scale", "0.5", "--repeat", "2", "--output", str(tmp_path), "--workdir", str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [results] = tmp_path.glob("*.json")
    result = json.loads(results.read_text())["scenarios"]["watches"]
    assert result["watches"] == 300 and result["addresses"] == 2 and len(result["runs"]) == 2
    for round_ in result["runs"]:
        for alerts in (round_["alerts_at_half_load"], round_["alerts_at_max_load"]):
            assert alerts["samples"] > 0 and alerts["missed"] == 0
        assert round_["catch_up_s_after_max"] is not None and round_["catch_up_s_after_half"] is not None
