"""What automatic matching costs the write path: import a city twice under two sources.

    python -m benchmarks.places_import [--city ../shared/data/singapore] [--runs 2]

Each run starts a fresh server (with and without `--no-matching`, alternating), imports the
city as `airbnb`, then again as `vrbo` (every listing then has a same-named twin of another
source: the most matching a city can cause), and prints the import wall times, the writer's CPU
time (from /proc), and the sums of `staystream_apply_seconds` (the acknowledged path) and
`staystream_places_seconds` from `/metrics`. Then it restarts the server twice and prints the
places rebuild ("places rebuilt" log line): with the places cache, then with the cache file
deleted (everything matched again). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from staystream.paths import PLACES_CACHE_FILE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import Server, start_server  # noqa: E402 (the tests' real-server helper)


def _metric(server: Server, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+-]+)$", httpx.get(server.url + "/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer_pid(server: Server) -> int:
    """The supervisor's first child is the writer (it starts before the workers)."""
    pid = server.process.pid
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def run(city: Path, matching: bool, work: Path) -> None:
    data_dir = work / ("on" if matching else "off")
    shutil.rmtree(data_dir, ignore_errors=True)
    flags = [] if matching else ["--no-matching"]
    server = start_server(data_dir, *flags, workers=2)
    try:
        walls = {}
        for source in ("airbnb", "vrbo"):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "staystream", "import", "--format", "insideairbnb", "--source", source,
                 "--currency", "SGD", "--url", server.url, "--rejects", str(work / f"rejects-{source}.csv"),
                 str(city / "listings.csv.gz"), str(city / "calendar.csv.gz")],
                check=True, capture_output=True,
            )
            walls[source] = round(time.perf_counter() - started, 2)
        while _metric(server, "staystream_places_pending") > 0:
            time.sleep(0.1)
        print(f"matching {'on ' if matching else 'off'}: import wall s {walls}, "
              f"writer CPU s {_cpu_seconds(_writer_pid(server)):.2f}, "
              f"apply s {_metric(server, 'staystream_apply_seconds_sum'):.2f}, "
              f"places s {_metric(server, 'staystream_places_seconds_sum'):.2f}", flush=True)
    finally:
        server.stop()
    for label, without_cache in (("restart", False), ("restart without the places cache", True)):
        if without_cache:
            for suffix in ("", "-wal", "-shm"):
                (data_dir / f"{PLACES_CACHE_FILE}{suffix}").unlink(missing_ok=True)
        again = start_server(data_dir, *flags, workers=1)
        again.stop()
        rebuilt = [line for line in again.log().splitlines() if "places rebuilt" in line]
        print(f"  {label}:", rebuilt[-1][rebuilt[-1].index('"listings"'):] if rebuilt else "no log line",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", type=Path, default=Path("../shared/data/singapore"),
                        help="an Inside Airbnb listings + calendar folder (default: ../shared/data/singapore)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="places-import-") as work:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        for _ in range(args.runs):
            for matching in (False, True):
                run(args.city, matching, Path(work))


if __name__ == "__main__":
    main()
