"""What automatic matching costs the write path: a city imported with matching on and off.

    python -m benchmarks.places_import [--city ../shared/data/singapore] [--pairs 3]
                                       [--sources airbnb,vrbo] [--restarts]

Each pair starts two fresh servers, one with `--no-matching` and one without, in alternating
order (off first in even pairs, on first in odd ones, so a drift of the machine's load hits
both alike), and imports the city once per source given: with two sources every listing has a
same-named twin of another source (the most matching a city can cause); with one, matching
has nothing to pair and must cost about nothing. Per server it prints the import's throughput
(events/s and night updates/s: the importer's count of accepted events and nights over the
wall time of the import commands, interpreter start included), the writer's
CPU seconds during the import and until deferred matching is done (the writer is the process
holding the data directory's lock, read from /proc), the whole server's CPU (supervisor,
writer, workers, watcher), the time deferred matching ran on after the import, and the sums of
`staystream_apply_seconds` and `staystream_places_seconds`. Then the medians over the pairs,
their spread (min-max) and the ratios on / off, pair by pair. With `--restarts` each server
with matching on is restarted twice more, with the places cache and with its file deleted,
and the places rebuild ("places rebuilt" log line) is printed. Linux only (/proc).
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
from dataclasses import dataclass
from pathlib import Path

import httpx

from staystream.paths import LOCK_FILE, PLACES_CACHE_FILE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import Server, start_server  # noqa: E402 (the tests' real-server helper)

_ACCEPTED = re.compile(r"events accepted: ([0-9,]+) of [0-9,]+ sent \(([0-9,]+) nights\)")


@dataclass(frozen=True)
class Run:
    """One server's import, with matching on or off."""

    matching: bool
    events: int
    nights: int
    import_s: float  # the import commands' wall times, summed over the sources
    writer_cpu_import_s: float  # the writer's CPU from the first import's start to the last's end
    writer_cpu_s: float  # ... to the end of deferred matching
    server_cpu_s: float  # every process of the server, from the first import's start to the end
    settle_s: float  # wall time deferred matching ran on after the last import
    apply_s: float
    places_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.import_s

    @property
    def nights_per_s(self) -> float:
        return self.nights / self.import_s

    def line(self) -> str:
        return (f"matching {'on ' if self.matching else 'off'}: {self.events:,} events, {self.nights:,} nights "
                f"({self.nights / self.events:.1f} nights an event) in {self.import_s:.2f} s: "
                f"{self.events_per_s:,.0f} events/s, {self.nights_per_s:,.0f} nights/s; writer CPU "
                f"{self.writer_cpu_import_s:.2f} s during the import, {self.writer_cpu_s:.2f} s with deferred "
                f"matching (settled {self.settle_s:.1f} s after); server CPU {self.server_cpu_s:.2f} s; "
                f"apply {self.apply_s:.2f} s, places {self.places_s:.2f} s")


def _metric(server: Server, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+-]+)$", httpx.get(server.url + "/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, as they are now."""
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                frontier += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:  # ended meanwhile
            continue
    return found


def _tree_cpu_seconds(pid: int) -> dict[int, float]:
    cpu = {}
    for member in _tree(pid):
        try:
            cpu[member] = _cpu_seconds(member)
        except FileNotFoundError:  # ended meanwhile
            continue
    return cpu


def _writer_pid(server: Server) -> int:
    """The writer holds the data directory's lock and wrote its pid there (`durable.lock`)."""
    pid = int((server.data_dir / LOCK_FILE).read_text())
    assert pid in _tree(server.process.pid) and pid != server.process.pid, "the lock's pid is not the writer"
    return pid


def _import(city: Path, source: str, server: Server, work: Path) -> tuple[int, int, float]:
    """Events accepted, their nights and the import command's wall seconds (its own summary
    rounds them to a tenth: too coarse for a city imported in about two seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "staystream", "import", "--format", "insideairbnb", "--source", source,
         "--currency", "SGD", "--url", server.url, "--rejects", str(work / f"rejects-{source}.csv"),
         str(city / "listings.csv.gz"), str(city / "calendar.csv.gz")],
        check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    accepted = _ACCEPTED.search(done.stdout)
    assert accepted, done.stdout
    return int(accepted.group(1).replace(",", "")), int(accepted.group(2).replace(",", "")), wall


def run(city: Path, matching: bool, sources: list[str], work: Path, restarts: bool) -> Run:
    data_dir = work / ("on" if matching else "off")
    shutil.rmtree(data_dir, ignore_errors=True)
    flags = [] if matching else ["--no-matching"]
    server = start_server(data_dir, *flags, workers=2)
    try:
        writer = _writer_pid(server)
        before = _tree_cpu_seconds(server.process.pid)
        events = nights = 0
        import_s = 0.0
        for source in sources:
            count, count_nights, elapsed = _import(city, source, server, work)
            events, nights, import_s = events + count, nights + count_nights, import_s + elapsed
        writer_import = _cpu_seconds(writer) - before[writer]
        imported = time.perf_counter()
        while _metric(server, "staystream_places_pending") > 0:
            time.sleep(0.05)
        settle = time.perf_counter() - imported
        after = _tree_cpu_seconds(server.process.pid)
        result = Run(
            matching, events, nights, import_s, writer_import, after[writer] - before[writer],
            sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items()), settle,
            _metric(server, "staystream_apply_seconds_sum"), _metric(server, "staystream_places_seconds_sum"),
        )
        print(result.line(), flush=True)
    finally:
        server.stop()
    if restarts and matching:
        for label, without_cache in (("restart", False), ("restart without the places cache", True)):
            if without_cache:
                for suffix in ("", "-wal", "-shm"):
                    (data_dir / f"{PLACES_CACHE_FILE}{suffix}").unlink(missing_ok=True)
            again = start_server(data_dir, *flags, workers=1)
            again.stop()
            rebuilt = [line for line in again.log().splitlines() if "places rebuilt" in line]
            print(f"  {label}:", rebuilt[-1][rebuilt[-1].index('"listings"'):] if rebuilt else "no log line",
                  flush=True)
    return result


def _spread(values: list[float], digits: int = 2) -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"median {middle:,.{digits}f} (min {low:,.{digits}f}, max {high:,.{digits}f})"


def summarize(pairs: list[tuple[Run, Run]]) -> None:
    """Medians and spread of each figure, off and on, and of the ratios on / off pair by pair."""
    print(f"{len(pairs)} pairs, medians (min, max):")
    for label, figure in (("events/s", Run.events_per_s.fget), ("nights/s", Run.nights_per_s.fget),
                          ("import s", lambda r: r.import_s), ("writer CPU s, import", lambda r: r.writer_cpu_import_s),
                          ("writer CPU s, with deferred", lambda r: r.writer_cpu_s),
                          ("server CPU s", lambda r: r.server_cpu_s), ("settle s", lambda r: r.settle_s)):
        assert figure is not None
        off = [figure(a) for a, _ in pairs]
        on = [figure(b) for _, b in pairs]
        ratios = [b / a if a else float("nan") for a, b in zip(off, on, strict=True)]
        print(f"  {label}: off {_spread(off)}; on {_spread(on)}; on/off pair by pair {_spread(ratios, 3)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", type=Path, default=Path("../shared/data/singapore"),
                        help="an Inside Airbnb listings + calendar folder (default: ../shared/data/singapore)")
    parser.add_argument("--pairs", type=int, default=3, help="servers with matching off and on, alternating")
    parser.add_argument("--sources", default="airbnb,vrbo",
                        help="the city is imported once per source (one source: nothing to pair)")
    parser.add_argument("--restarts", action="store_true", help="also time the places rebuild at restart")
    args = parser.parse_args()
    sources = args.sources.split(",")
    with tempfile.TemporaryDirectory(prefix="places-import-") as work:
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs, sources {sources}", flush=True)
        pairs = []
        for index in range(args.pairs):
            order = (False, True) if index % 2 == 0 else (True, False)
            runs = {matching: run(args.city, matching, sources, Path(work), args.restarts) for matching in order}
            pairs.append((runs[False], runs[True]))
        summarize(pairs)
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
