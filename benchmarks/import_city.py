"""`staystream import --data-dir` of a real city, timed: this code against another source tree.

    python -m benchmarks.import_city [--runs 3] [--compare OTHER/src] [--city ../shared/data/singapore]

Each run imports the city's listings and calendar into a fresh data dir with the real command
(which starts its own server: the writer and 2 HTTP workers on the same cores), the trees
alternating run by run so both see the same machine. Per run: the command's own elapsed time
(first read to last acknowledgment, as it prints it), night updates/s and events/s, the
importer's CPU and its server's (every process under it, sampled from /proc every 20 ms), and
the load average. Then medians (min-max) per tree and the ratio of the medians. Linux only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def run(src: Path, city: Path, work: Path) -> dict[str, float]:
    """One import; its figures."""
    data_dir = work / "var"
    shutil.rmtree(data_dir, ignore_errors=True)
    load = os.getloadavg()[0]
    process = subprocess.Popen(
        [sys.executable, "-m", "staystream", "import", "--format", "insideairbnb", "--source", "airbnb",
         "--currency", "SGD", "--data-dir", str(data_dir), str(city / "listings.csv.gz"),
         str(city / "calendar.csv.gz")],
        env={**os.environ, "PYTHONPATH": str(src)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    importer, server = 0.0, {}
    while process.poll() is None:
        try:
            importer = _cpu(process.pid)
            pending = _children(process.pid)
            while pending:
                pid = pending.pop()
                server[pid] = _cpu(pid)
                pending += _children(pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass  # a process that just ended keeps its last sample
        time.sleep(0.02)
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"import failed ({process.returncode}):\n{out}\n{err}")
    elapsed = float(re.search(r"elapsed:\s+([0-9.]+) s", out).group(1))  # type: ignore[union-attr]
    accepted = re.search(r"events accepted: ([0-9,]+) of [0-9,]+ sent \(([0-9,]+) nights\)", out)
    assert accepted is not None, out
    events, nights = (int(group.replace(",", "")) for group in accepted.groups())
    return {"elapsed_s": elapsed, "nights_per_s": nights / elapsed, "events_per_s": events / elapsed,
            "events": events, "nights": nights, "importer_cpu_s": importer, "server_cpu_s": sum(server.values()),
            "load": max(load, os.getloadavg()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.import_city", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="imports per tree (default 3)")
    parser.add_argument("--compare", type=Path, help="another tree's src/ to alternate with")
    parser.add_argument("--city", type=Path, default=CITY, help="a folder with listings.csv.gz and calendar.csv.gz")
    args = parser.parse_args()
    trees = {"this": ROOT / "src", **({"compared": args.compare.resolve()} if args.compare else {})}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="import-city-") as work:
        for number in range(args.runs):
            for name, src in trees.items():
                figures = run(src, args.city, Path(work))
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
            for key in ("elapsed_s", "nights_per_s", "events_per_s", "importer_cpu_s", "server_cpu_s", "load")))
    if "compared" in medians:
        print("this / compared, medians: " + ", ".join(
            f"{key} {medians['this'][key] / medians['compared'][key]:.2f}"
            for key in ("nights_per_s", "importer_cpu_s", "server_cpu_s")))


if __name__ == "__main__":
    main()
