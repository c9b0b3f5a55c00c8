"""`python -m benchmarks.race_go`: staystream on PostgreSQL against the Go daemon, same load.

The skeptics' design is `../shared/anchors/go-ingest`: one Go process, group-committed binary
COPY upserts of one row per night into PostgreSQL, `200` after commit. This runs it and
`staystream serve --store postgresql://...` (one process group, `200` after commit) one after
the other on one PostgreSQL server (go-ingest's README settings), each on its own database,
with the same load from `benchmarks.loadgen`:

1. prefill: `--listings` listings described and their 365-night calendars filled (once);
2. max speed: closed loop, `--connections` connections, 500 rate events a request (7-30
   nights each, distinct listings), for `--seconds`;
3. half load: open loop at half of that contender's own max, latency from the intended send
   time (no coordinated omission); staystream also at half of the Go daemon's max (the same
   absolute load).

`--rounds` rounds (go-ingest, staystream, then with `--jetstream` (default) the full scaled path:
3 NATS servers, an applier and an ingest node on the same PostgreSQL), medians reported, then the PostgreSQL
ceiling for the same night updates in both layouts (`benchmarks.pg_ceiling`). Everything shares
the machine's cores, as in production on one box: PostgreSQL, the contender and the generator.
Prints staystream's figures as ratios to go-ingest's, against issue 5's bar, and keeps them in
`benchmarks/results/race-go-<time>.json` and `.md`.

If the anchor or a Go toolchain is missing (the build script installs Debian's `golang-go`
and `golang-github-jackc-pgx-v4-dev` when run as root), it says so and measures staystream alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import loadgen, pg_ceiling, service
from .loadgen import Job
from .scenarios import Settings, machine_busy, prefill

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pg_fixtures import BENCH_SETTINGS, Postgres, create_database, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = ROOT.parent / "shared" / "anchors"
RESULTS = Path(__file__).parent / "results"
EVENTS_PER_REQUEST = 500


class Skip(Exception):
    """The Go daemon cannot run here; the message says why and what to do."""


@dataclass
class Contender:
    name: str
    port: int
    pids: Callable[[], list[int]]
    stop: Callable[[], None]
    log_path: Path


# -- the contenders -------------------------------------------------------------------------


def build_go_ingest(anchors: Path, bin_dir: Path) -> Path:
    script = anchors / "build-go-ingest.sh"
    if not script.is_file():
        raise Skip(f"the anchor is not at {script}; pass --anchors DIR")
    binary = bin_dir / "go-ingest"
    sources = [p.stat().st_mtime for p in (anchors / "go-ingest").glob("*.go")]
    if binary.exists() and sources and binary.stat().st_mtime >= max(sources):
        return binary
    result = subprocess.run(["bash", str(script)], env={**os.environ, "BIN_DIR": str(bin_dir)},
                            capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0 or not binary.exists():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise Skip(f"go-ingest did not build with {script} (it needs Go and pgx v4: as root it installs "
                   f"golang-go and golang-github-jackc-pgx-v4-dev with apt):\n{tail}")
    return binary


def start_go(binary: Path, uri: str, workdir: Path) -> Contender:
    port = free_port()
    log_path = workdir / "go-ingest.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(binary), "-listen", f"127.0.0.1:{port}", "-dsn", uri],
                                   stdout=log, stderr=log)
    _wait_ready(f"http://127.0.0.1:{port}/readyz", process, log_path)

    def stop() -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    return Contender("go-ingest", port, lambda: [process.pid], stop, log_path)


def start_staystream(uri: str, workdir: Path, workers: int) -> Contender:
    server = service.start(workdir / "staystream", workers, "--store", uri)

    def stop() -> None:
        server.stop()

    return Contender("staystream", server.port, lambda: list(server.processes().values()), stop, server.log_path)


def start_scaled(uri: str, workdir: Path, workers: int) -> Contender:
    """The full JetStream path: 3 NATS servers (R3, sync_interval always), an applier and one
    ingest node (`--role ingest,search`), the same PostgreSQL. Its cores include NATS's."""
    from nats_fixtures import NatsCluster

    cluster = NatsCluster(3).start()
    common = ["--store", uri, "--stream", cluster.url, "--stream-partitions", "4"]
    applier = service.start(workdir / "scaled-apply", 1, *common, "--role", "apply")
    ingest = service.start(workdir / "scaled-ingest", workers, *common, "--role", "ingest,search")

    def pids() -> list[int]:
        nats = [p.pid for p in cluster.processes if p is not None]
        return [*ingest.processes().values(), *applier.processes().values(), *nats]

    def stop() -> None:
        ingest.stop()
        applier.stop()
        cluster.close()

    return Contender("staystream+jetstream", ingest.port, pids, stop, ingest.log_path)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} was not ready within {timeout} s")


# -- measuring ------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += service._children(current)
    return found


def cpu(pids: list[int]) -> dict[int, float]:
    return {pid: service._cpu_seconds(pid) for pid in pids}


def run_load(contender: Contender, postgres: Postgres, listings: int, connections: int, seconds: float,
             warmup: float, rate: float | None = None) -> dict[str, Any]:
    """One load run; throughput and latency from the generator, cores from /proc."""
    assert postgres.pid is not None
    schedule = None if rate is None else ((seconds, rate),)
    connections = min(connections, listings // EVENTS_PER_REQUEST)
    job = Job("127.0.0.1", contender.port, "rates", connections, seconds, schedule, (0, listings), listings,
              EVENTS_PER_REQUEST, tag="write")
    before_pg, before_us = cpu(descendants(postgres.pid)), cpu(contender.pids())
    busy_before = machine_busy()
    started = time.monotonic()
    result = loadgen.run([job])
    elapsed = time.monotonic() - started
    busy_after = machine_busy()
    after_pg, after_us = cpu(descendants(postgres.pid)), cpu(contender.pids())

    def cores(before: dict[int, float], after: dict[int, float]) -> float:
        return round(sum(after[p] - before.get(p, 0.0) for p in after) / elapsed, 2)

    summary = result.summary(warmup=warmup)
    ours = cores(before_pg, after_pg) + cores(before_us, after_us) + result.generator_cpu_seconds / elapsed
    return {
        "connections": connections,
        "offered_requests_per_s": rate,
        "night_updates_per_s": summary["night_updates_per_s"],
        "events_per_s": summary["events_per_s"],
        "latency_ms": summary["latency_ms"],
        "errors": summary["errors"],
        "status_503": summary["status_503"],
        "cores": {"postgres": cores(before_pg, after_pg), contender.name: cores(before_us, after_us),
                  "loadgen": round(result.generator_cpu_seconds / elapsed, 2),
                  # everything else the machine ran meanwhile (other users of a shared box)
                  "other": round(max(0.0, (busy_after[0] - busy_before[0]) / elapsed - ours), 2)},
    }


def measure(contender: Contender, postgres: Postgres, args: argparse.Namespace,
            extra_rates: dict[str, float], log: Callable[[str], None]) -> dict[str, Any]:
    warmup = min(3.0, args.seconds / 4)
    top = run_load(contender, postgres, args.listings, args.connections, args.seconds, warmup)
    requests_per_s = top["events_per_s"] / EVENTS_PER_REQUEST
    log(f"  {contender.name} max: {top['night_updates_per_s']:,.0f} night updates/s, "
        f"p99 {top['latency_ms']['p99']:.0f} ms, cores {top['cores']}")
    half = run_load(contender, postgres, args.listings, args.connections, args.seconds, warmup, requests_per_s / 2)
    log(f"  {contender.name} at half its max ({half['events_per_s'] * 1:,.0f} events/s): "
        f"ack p50 {half['latency_ms']['p50']:.1f} ms, p99 {half['latency_ms']['p99']:.1f} ms, cores {half['cores']}")
    out = {"max": top, "half": half}
    for label, rate in extra_rates.items():
        out[label] = run_load(contender, postgres, args.listings, args.connections, args.seconds, warmup, rate)
        log(f"  {contender.name} {label}: ack p99 {out[label]['latency_ms']['p99']:.1f} ms, "
            f"errors {out[label]['errors']}, 503 {out[label]['status_503']}")
    return out


# -- the race -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.race_go", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both contenders, for medians")
    parser.add_argument(
        "--listings", type=int, default=10_000, help="listings of the city (go-ingest's README: 10,000)"
    )
    parser.add_argument("--connections", type=int, default=20, help="connections at max speed (at most listings/500)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load run")
    parser.add_argument("--ceiling-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="staystream HTTP workers")
    parser.add_argument("--jetstream", action=argparse.BooleanOptionalAction, default=True,
                        help="also race the full JetStream path (3 NATS servers, applier, ingest node)")
    parser.add_argument("--quick", action="store_true", help="1 round, 4,000 listings, 5 s runs: a smoke run")
    parser.add_argument("--anchors", type=Path, default=ANCHORS, help="the shared anchors directory")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.listings, args.seconds, args.ceiling_seconds = 1, 4_000, 5.0, 4.0
    log = _log
    workdir = Path(tempfile.mkdtemp(prefix="staystream-race-"))
    report: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.race_go", *(argv if argv is not None else sys.argv[1:])]),
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "postgres_settings": BENCH_SETTINGS,
        "rounds": [],
    }
    try:
        binary: Path | None = build_go_ingest(args.anchors, workdir / "bin")
    except Skip as exc:
        log(f"go-ingest skipped: {exc}\nMeasuring staystream alone; no ratios.")
        report["go_ingest"] = f"skipped: {exc}"
        binary = None
    with Postgres(BENCH_SETTINGS) as postgres:
        report["postgres_version"] = postgres.psql("SHOW server_version")
        go_uri = create_database(postgres, "goingest")
        ours_uri = create_database(postgres, "staystream")
        settings = Settings(events_per_request=EVENTS_PER_REQUEST)
        prefilled: set[str] = set()
        for round_index in range(args.rounds):
            log(f"[round {round_index + 1} of {args.rounds}]")
            figures: dict[str, Any] = {}
            extra: dict[str, float] = {}
            if binary is not None:
                go = start_go(binary, go_uri, workdir)
                try:
                    if "go" not in prefilled:
                        report["go_prefill"] = prefill(go, args.listings, settings, log)  # type: ignore[arg-type]
                        prefilled.add("go")
                    figures["go-ingest"] = measure(go, postgres, args, {}, log)
                finally:
                    go.stop()
                go_max = figures["go-ingest"]["max"]["events_per_s"] / EVENTS_PER_REQUEST
                extra["at half of go-ingest's max"] = go_max / 2
            ours = start_staystream(ours_uri, workdir, args.workers)
            try:
                if "ours" not in prefilled:
                    report["staystream_prefill"] = prefill(ours, args.listings, settings, log)  # type: ignore[arg-type]
                    prefilled.add("ours")
                figures["staystream"] = measure(ours, postgres, args, extra, log)
            finally:
                ours.stop()
            if args.jetstream:
                scaled = start_scaled(create_database(postgres, "scaled"), workdir / f"round{round_index}",
                                      args.workers)
                try:
                    prefill(scaled, args.listings, settings, log)  # type: ignore[arg-type]
                    figures["staystream+jetstream"] = measure(scaled, postgres, args, extra, log)
                finally:
                    scaled.stop()
            report["rounds"].append(figures)
        log("[PostgreSQL ceiling for the same night updates]")
        report["postgres_ceiling"] = pg_ceiling.measure(
            create_database(postgres, "ceiling"), args.listings, args.ceiling_seconds)
    shutil.rmtree(workdir, ignore_errors=True)  # data dirs and logs of the servers: large, done with
    report["summary"] = summarize(report)
    report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    text = render(report)
    log(text)
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    (args.output / f"race-go-{stamp}.json").write_text(json.dumps(report, indent=1, default=str))
    (args.output / f"race-go-{stamp}.md").write_text(text + "\n")
    log(f"results: {args.output / f'race-go-{stamp}.json'} (and .md)")
    return 0


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    rounds = report["rounds"]

    def median(name: str, run: str, *path: str) -> float | None:
        values = []
        for figures in rounds:
            if name in figures and run in figures[name]:
                value: Any = figures[name][run]
                for key in path:
                    value = value[key]
                values.append(float(value))
        return statistics.median(values) if values else None

    out: dict[str, Any] = {}
    for name in ("go-ingest", "staystream", "staystream+jetstream"):
        out[name] = {
            "max_night_updates_per_s": median(name, "max", "night_updates_per_s"),
            "half_load_p99_ms": median(name, "half", "latency_ms", "p99"),
            "half_load_p50_ms": median(name, "half", "latency_ms", "p50"),
            "postgres_cores_at_max": median(name, "max", "cores", "postgres"),
            "own_cores_at_max": median(name, "max", "cores", name),
            "other_load_cores_at_max": median(name, "max", "cores", "other"),
        }
    go = out["go-ingest"]
    for name, prefix in (("staystream", ""), ("staystream+jetstream", "jetstream_")):
        ours = out[name]
        ours["p99_ms_at_half_of_go_max"] = median(name, "at half of go-ingest's max", "latency_ms", "p99")
        if go["max_night_updates_per_s"] and ours["max_night_updates_per_s"]:
            out[prefix + "throughput_ratio"] = ours["max_night_updates_per_s"] / go["max_night_updates_per_s"]
            out[prefix + "half_load_p99_ratio"] = ours["half_load_p99_ms"] / go["half_load_p99_ms"]
            if ours["p99_ms_at_half_of_go_max"] is not None:
                out[prefix + "same_load_p99_ratio"] = ours["p99_ms_at_half_of_go_max"] / go["half_load_p99_ms"]
    return out


def render(report: dict[str, Any]) -> str:
    s = report["summary"]
    go, ours = s["go-ingest"], s["staystream"]
    ceiling = report["postgres_ceiling"]

    def n(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [
        f"Race: staystream --store postgresql:// against go-ingest, {report['started']}; PostgreSQL "
        f"{report.get('postgres_version')}; {len(report['rounds'])} round(s), medians; {os.cpu_count()} CPUs shared "
        f"by PostgreSQL, the contender and the load generator (load average now {_loadavg()}).",
        "",
        "| figure | go-ingest | staystream | ratio | bar |",
        "|---|---:|---:|---:|---|",
        f"| night updates/s at max speed | {n(go['max_night_updates_per_s'])} | {n(ours['max_night_updates_per_s'])} "
        f"| {n(s.get('throughput_ratio'), 2)}x | >= 2.0x |",
        f"| ack p99 at half of its own max, ms | {n(go['half_load_p99_ms'], 1)} | {n(ours['half_load_p99_ms'], 1)} "
        f"| {n(s.get('half_load_p99_ratio'), 2)}x | <= 1.0x |",
        f"| ack p99 at half of go-ingest's max (same load), ms | {n(go['half_load_p99_ms'], 1)} "
        f"| {n(ours['p99_ms_at_half_of_go_max'], 1)} | {n(s.get('same_load_p99_ratio'), 2)}x | |",
        f"| ack p50 at half of its own max, ms | {n(go['half_load_p50_ms'], 1)} | {n(ours['half_load_p50_ms'], 1)} | "
        f"| |",
        f"| PostgreSQL cores at max speed | {n(go['postgres_cores_at_max'], 2)} | "
        f"{n(ours['postgres_cores_at_max'], 2)} | | |",
        f"| contender's own cores at max speed | {n(go['own_cores_at_max'], 2)} | {n(ours['own_cores_at_max'], 2)} | "
        f"| |",
        f"| other load on the machine meanwhile, cores | {n(go['other_load_cores_at_max'], 2)} "
        f"| {n(ours['other_load_cores_at_max'], 2)} | | |",
        "",
        f"PostgreSQL ceiling for the same night updates ({ceiling['listings']:,} listings, no HTTP): "
        f"row per night (go-ingest's COPY + upsert, {ceiling['row_per_night']['writers']} writers, "
        f"{ceiling['row_per_night']['rows_per_batch']:,} rows a batch) "
        f"{ceiling['row_per_night']['night_updates_per_s']:,.0f} night updates/s; batch log (staystream's, "
        f"{ceiling['batch_log']['events_per_batch']:,} events a batch) "
        f"{ceiling['batch_log']['night_updates_per_s']:,.0f} night updates/s.",
    ]
    js = s["staystream+jetstream"]
    if js["max_night_updates_per_s"] is not None:
        lines += [
            "",
            "The full JetStream path (3 NATS servers R3 with sync_interval always, an applier, one ingest node; "
            "the cores below include NATS's):",
            "",
            "| figure | go-ingest | staystream + JetStream | ratio |",
            "|---|---:|---:|---:|",
            f"| night updates/s at max speed | {n(go['max_night_updates_per_s'])} | {n(js['max_night_updates_per_s'])} "
            f"| {n(s.get('jetstream_throughput_ratio'), 2)}x |",
            f"| ack p99 at half of its own max, ms | {n(go['half_load_p99_ms'], 1)} | {n(js['half_load_p99_ms'], 1)} "
            f"| {n(s.get('jetstream_half_load_p99_ratio'), 2)}x |",
            f"| ack p99 at half of go-ingest's max, ms | {n(go['half_load_p99_ms'], 1)} "
            f"| {n(js['p99_ms_at_half_of_go_max'], 1)} | {n(s.get('jetstream_same_load_p99_ratio'), 2)}x |",
            f"| staystream + NATS cores at max speed | {n(go['own_cores_at_max'], 2)} | "
            f"{n(js['own_cores_at_max'], 2)} | |",
        ]
    if isinstance(report.get("go_ingest"), str):
        lines.append(f"go-ingest: {report['go_ingest']}")
    return "\n".join(lines)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _log(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
