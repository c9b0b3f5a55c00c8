"""`staystream import` of a real city, timed: this code against another source tree.

    python -m benchmarks.import_city [--runs 3] [--compare OTHER/src] [--url] [--city ../shared/data/singapore]

Each run imports the city's listings and calendar into a fresh data dir with the real command,
the trees alternating run by run so both see the same machine: with `--data-dir` (the command
starts its own server: the writer and 2 HTTP workers on the same cores), or with `--url` to a
server of the same tree started before the run (and stopped after it). Per run: the command's
own elapsed time (first read to last acknowledgment, from the nights/s it prints, which is not
rounded), night updates/s and events/s, the importer's CPU and the server's (every process of
it, sampled from /proc every 20 ms), the importer's peak RSS, the command's wall time and the
load average. Then medians (min-max) per tree and the ratio of the medians. Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITY = ROOT.parent.parent / "shared" / "data" / "singapore"
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _tree_cpu(pid: int, seen: dict[int, float]) -> None:
    """The CPU of every process under `pid` (not `pid` itself) into `seen`, by pid."""
    pending = _children(pid)
    while pending:
        child = pending.pop()
        try:
            seen[child] = _cpu(child)
            pending += _children(child)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass  # a process that just ended keeps its last sample


def _serve(src: Path, data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`staystream serve` of the tree on a free port; it and its URL once it listens."""
    server = subprocess.Popen([sys.executable, "-m", "staystream", "serve", "--port", "0", "--data-dir", str(data_dir)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    for line in server.stdout:
        if "listening on" in line:
            server.stdout.close()
            return server, line.strip().rsplit(" ", 1)[-1]
    raise SystemExit(f"{src}: the server did not start")


def run(src: Path, city: Path, work: Path, url_mode: bool) -> dict[str, float]:
    """One import; its figures."""
    data_dir = work / "var"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    server = None
    target = ["--data-dir", str(data_dir)]
    if url_mode:
        server, url = _serve(src, data_dir, env)
        target = ["--url", url, "--rejects", str(work / "rejects.csv")]
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "staystream", "import", "--format", "insideairbnb", "--source", "airbnb",
         "--currency", "SGD", *target, str(city / "listings.csv.gz"), str(city / "calendar.csv.gz")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    importer, peak, served, before = 0.0, 0.0, dict[int, float](), dict[int, float]()
    if server is not None:
        _tree_cpu(server.pid, before)  # what starting it cost is not the import's
        before[server.pid] = served[server.pid] = _cpu(server.pid)
    while process.poll() is None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            importer = _cpu(process.pid)
            peak = max(peak, _peak_mb(process.pid))  # a process that ended has none
            if server is not None:
                served[server.pid] = _cpu(server.pid)
        _tree_cpu(server.pid if server is not None else process.pid, served)
        time.sleep(0.02)
    wall = time.monotonic() - started
    out, err = process.communicate()
    if server is not None:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    if process.returncode != 0:
        raise SystemExit(f"import failed ({process.returncode}):\n{out}\n{err}")
    accepted = re.search(r"events accepted: ([0-9,]+) of [0-9,]+ sent \(([0-9,]+) nights\)", out)
    rate = re.search(r"elapsed:\s+[0-9.]+ s, ([0-9,]+) nights/s", out)
    assert accepted is not None and rate is not None, out
    events, nights = (int(group.replace(",", "")) for group in accepted.groups())
    elapsed = nights / int(rate.group(1).replace(",", ""))
    return {"elapsed_s": elapsed, "nights_per_s": nights / elapsed, "events_per_s": events / elapsed,
            "events": events, "nights": nights, "importer_cpu_s": importer, "importer_peak_mb": peak,
            "server_cpu_s": sum(served.values()) - sum(before.values()), "wall_s": wall,
            "load": max(load, os.getloadavg()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.import_city", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="imports per tree (default 3)")
    parser.add_argument("--compare", type=Path, help="another tree's src/ to alternate with")
    parser.add_argument("--city", type=Path, default=CITY, help="a folder with listings.csv.gz and calendar.csv.gz")
    parser.add_argument("--url", action="store_true",
                        help="import with --url into a server started before (default: --data-dir)")
    args = parser.parse_args()
    trees = {"this": ROOT / "src", **({"compared": args.compare.resolve()} if args.compare else {})}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="import-city-") as work:
        for number in range(args.runs):
            for name, src in trees.items():
                figures = run(src, args.city, Path(work), args.url)
                results[name].append(figures)
                print(f"run {number + 1} {name:8}: " + ", ".join(
                    f"{key} {value:,.2f}" for key, value in figures.items()), flush=True)
    first = next(iter(results.values()))[0]
    print(f"{first['events']:,.0f} events, {first['nights']:,.0f} night updates, "
          f"{first['nights'] / first['events']:.1f} nights an event")
    medians: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        medians[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"{name:8}: " + ", ".join(
            f"{key} {medians[name][key]:,.2f} ({min(r[key] for r in runs):,.2f}-{max(r[key] for r in runs):,.2f})"
            for key in ("elapsed_s", "nights_per_s", "events_per_s", "importer_cpu_s", "server_cpu_s", "wall_s",
                        "importer_peak_mb", "load")))
    if "compared" in medians:
        print("this / compared, medians: " + ", ".join(
            f"{key} {medians['this'][key] / medians['compared'][key]:.2f}"
            for key in ("nights_per_s", "importer_cpu_s", "server_cpu_s", "wall_s")))


if __name__ == "__main__":
    main()
