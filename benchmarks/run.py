"""`python -m benchmarks.run [scenario ...]`: run the benchmarks, print them, keep them as JSON.

Every scenario runs `--repeat` times (default 3) and reports the median and the spread
(min-max). The run starts its own servers (fresh temp data dirs, free ports on 127.0.0.1) and
stops them; results go to stdout and to `benchmarks/results/<time>.json`, plus a Markdown
summary beside it with the issues' bars next to the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import bulk_live, deals_bench, dense_search, scenarios, watches_bench
from .scenarios import NAMES, Bench, Settings

NAMES = (*NAMES, bulk_live.NAME)  # bulk import beside live traffic: benchmarks/bulk_live.py
NAMES = (*NAMES, deals_bench.NAME)  # places, deals and flexible dates: benchmarks/deals_bench.py
NAMES = (*NAMES, watches_bench.NAME)  # watches at scale: benchmarks/watches_bench.py
NAMES = (*NAMES, dense_search.NAME)  # search in a dense city (issue 15.3): benchmarks/dense_search.py

RESULTS = Path(__file__).parent / "results"
MiB = 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=f"any of {', '.join(NAMES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: small city, seconds not minutes")
    parser.add_argument("--repeat", type=int, help="runs of each measurement, for medians (default 3; 1 with --quick)")
    parser.add_argument("--listings", type=int, help="listings of the city (default 100000)")
    parser.add_argument(
        "--small-listings", type=int, help="listings of the small city of the search scenario (default 50000)"
    )
    parser.add_argument(
        "--memory-listings", help="comma-separated sizes of the memory scenario (default 250000,1000000)"
    )
    parser.add_argument("--workers", help="comma-separated worker counts the throughput scenario compares; "
                        "the others run with the last (default 1,2)")
    parser.add_argument("--connections", type=int, help="connections of the max-speed (closed-loop) runs (default 16)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every duration by this")
    parser.add_argument("--loadgen-processes", type=int, help="load generator processes (default 1)")
    parser.add_argument("--watches", type=int, help="watches of the watches scenario (default 100000; --quick 5000)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory of the results files")
    parser.add_argument("--workdir", type=Path, help="where the servers' data dirs go (default: a temp dir)")
    args = parser.parse_args(argv)

    unknown = [name for name in args.scenarios if name not in NAMES]
    if unknown:
        parser.error(f"scenario: {', '.join(repr(n) for n in unknown)} is not one of {', '.join(NAMES)}")
    chosen = [name for name in NAMES if not args.scenarios or name in args.scenarios]
    settings = _settings(args)
    if args.watches:
        watches_bench.WATCHES = args.watches
    workdir = Path(tempfile.mkdtemp(prefix="staystream-bench-", dir=args.workdir))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    report: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": dataclasses.asdict(settings),
        "scenarios": {},
    }
    bench = Bench(settings, workdir, log=_log)
    _log(f"staystream benchmarks: {', '.join(chosen)}; repeat {settings.repeat}; work dir {workdir}")
    try:
        for name in chosen:
            _log(f"[{name}]")
            started = time.monotonic()
            report["scenarios"][name] = RUNNERS[name](bench)
            report["scenarios"][name]["seconds"] = round(time.monotonic() - started, 1)
            _log(_summary_lines(name, report["scenarios"][name]))
    finally:
        bench.close()
        report["notes"] = bench.notes
        report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        report["machine"]["loadavg_end"] = _loadavg()
        shutil.rmtree(workdir, ignore_errors=True)
        args.output.mkdir(parents=True, exist_ok=True)
        path = args.output / f"{stamp}.json"
        path.write_text(json.dumps(report, indent=1, default=str))
        (args.output / f"{stamp}.md").write_text(markdown(report))
        _log(f"results: {path} (and {path.with_suffix('.md').name})")
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.repeat is not None:
        overrides["repeat"] = args.repeat
    if args.listings is not None:
        overrides["city_listings"] = args.listings
    if args.small_listings is not None:
        overrides["small_city_listings"] = args.small_listings
    if args.memory_listings:
        overrides["memory_listings"] = tuple(int(n) for n in args.memory_listings.split(","))
    if args.connections is not None:
        overrides["closed_connections"] = args.connections
    if args.workers:
        overrides["workers"] = tuple(int(n) for n in args.workers.split(","))
    if args.loadgen_processes is not None:
        overrides["loadgen_processes"] = args.loadgen_processes
    settings = Settings.quick(**overrides) if args.quick else Settings(**overrides)
    if args.time_scale != 1.0:
        scale = args.time_scale
        settings = dataclasses.replace(
            settings, **{name: getattr(settings, name) * scale for name in (
                "warmup_seconds", "throughput_seconds", "latency_seconds", "search_seconds",
                "ceiling_seconds", "generator_seconds")},
            burst_phases=tuple(p * scale for p in settings.burst_phases),
            tail_phases=tuple(p * scale for p in settings.tail_phases),
        )
    return settings


def _log(text: str) -> None:
    print(text, flush=True)


# -- running each scenario `repeat` times ---------------------------------------------------


def repeated(measure: Callable[[], dict[str, Any]], repeat: int) -> dict[str, Any]:
    runs = [measure() for _ in range(repeat)]
    return {"median": aggregate(runs), "runs": runs}


def aggregate(runs: list[Any]) -> Any:
    """Numbers become {median, min, max}; dicts are aggregated key by key; the rest is kept."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: aggregate([run[key] for run in runs if key in run]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        values = [float(v) for v in runs if isinstance(v, (int, float)) and v == v]
        if not values:
            return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return first


def run_generator(bench: Bench) -> dict[str, Any]:
    return repeated(lambda: scenarios.generator_run(bench), bench.settings.repeat)


def run_throughput(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in s.workers}
    for _ in range(s.repeat):  # alternate the configurations: the machine's noise hits both alike
        for workers in s.workers:
            runs[workers].append(scenarios.throughput_run(bench, workers))
            _log(f"  workers={workers}: {runs[workers][-1]['night_updates_per_s'] / 1e6:.2f} M night updates/s")
    return {f"workers={w}": {"median": aggregate(r), "runs": r} for w, r in runs.items()}


def run_latency(bench: Bench) -> dict[str, Any]:
    out = {}
    for fraction in bench.settings.latency_fractions:
        out[f"{round(fraction * 100)}%"] = repeated(
            lambda fraction=fraction: scenarios.latency_run(bench, fraction), bench.settings.repeat)
    return out


def run_burst(bench: Bench) -> dict[str, Any]:
    return repeated(lambda: scenarios.burst_run(bench), bench.settings.repeat)


def run_tail(bench: Bench) -> dict[str, Any]:
    calibrated: list[float] = []
    return repeated(lambda: scenarios.tail_run(bench, calibrated), bench.settings.repeat)


def run_search(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    out = {}
    city = bench.city_server(s.workers[-1])
    out[f"{s.city_listings} listings, idle"] = repeated(
        lambda: scenarios.search_run(bench, city, s.city_listings, 0.0), s.repeat
    )
    out[f"{s.city_listings} listings, under writes"] = repeated(
        lambda: scenarios.search_run(bench, city, s.city_listings, s.search_write_fraction), s.repeat)
    bench.max_rate(s.workers[-1])  # calibrate on the big city before starting the small one
    small = scenarios.small_city(bench)
    try:
        out[f"{s.small_city_listings} listings, idle"] = repeated(
            lambda: scenarios.search_run(bench, small, s.small_city_listings, 0.0), s.repeat)
        out[f"{s.small_city_listings} listings, under writes"] = repeated(
            lambda: scenarios.search_run(bench, small, s.small_city_listings, s.search_write_fraction), s.repeat)
    finally:
        small.stop()
    return out


def run_ceiling(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    bench.close()  # the store alone: no server running beside it
    result = repeated(lambda: scenarios.ceiling_run(bench), s.repeat)
    service = bench.max_nights_per_s.get(s.workers[-1])
    if service:  # the service at max speed in this run, against the store alone
        ceiling = result["median"]["night_updates_per_s"]["median"]
        result["service_night_updates_per_s"] = statistics.median(service)
        result["service_to_ceiling"] = statistics.median(service) / ceiling if ceiling else None
    return result


def run_memory(bench: Bench) -> dict[str, Any]:
    bench.close()  # measure the memory servers alone
    sizes = [scenarios.memory_size(bench, n) for n in bench.settings.memory_listings]
    return {"sizes": sizes, "per_million": scenarios.per_million(sizes)}


RUNNERS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "generator": run_generator, "throughput": run_throughput, "latency": run_latency, "burst": run_burst,
    "tail": run_tail, "search": run_search, "ceiling": run_ceiling, "memory": run_memory,
    bulk_live.NAME: bulk_live.run, deals_bench.NAME: deals_bench.run, watches_bench.NAME: watches_bench.run,
    dense_search.NAME: dense_search.run,
}


# -- reporting ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import msgspec
    import numpy

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "msgspec": msgspec.__version__,
        "sqlite": sqlite3.sqlite_version,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_start": _loadavg(),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent,
                              timeout=10).stdout.strip()
    except OSError:
        return ""


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _m(value: Any) -> float:
    """The median of an aggregated number (or the number itself)."""
    if isinstance(value, dict) and "median" in value:
        return float(value["median"])
    return float(value)


def _spread(value: Any, scale: float = 1.0, digits: int = 0) -> str:
    if isinstance(value, dict) and "median" in value:
        f = f"{{:,.{digits}f}}"
        median, low, high = (value[k] * scale for k in ("median", "min", "max"))
        return f"{f.format(median)} ({f.format(low)}-{f.format(high)})" if low != high else f.format(median)
    return f"{value * scale:,.{digits}f}"


def _summary_lines(name: str, result: dict[str, Any]) -> str:
    return "\n".join("  " + line for line in _rows(name, result))


def _rows(name: str, result: dict[str, Any]) -> list[str]:
    """One line per figure, for stdout and the Markdown summary."""
    rows = []
    if name == "generator":
        m = result["median"]
        rows.append(
            f"generator vs sink: {_spread(m['events_per_s'])} events/s, "
            f"{_spread(m['night_updates_per_s'], 1e-6, 1)} M night updates/s, {_spread(m['generator_cores'], 1, 2)} "
            f"cores"
        )
    elif name == "throughput":
        for config, r in result.items():
            if not config.startswith("workers="):
                continue
            m = r["median"]
            rows.append(f"{config}: {_spread(m['night_updates_per_s'], 1e-6, 2)} M night updates/s, "
                        f"{_spread(m['events_per_s'])} events/s; ack p99 {_spread(m['latency_ms']['p99'])} ms; "
                        f"errors {_spread(m['errors'])}, 503 {_spread(m['status_503'])}; server cores "
                        f"{ {k: round(_m(v), 2) for k, v in m['server_cores'].items()} }; group "
                        f"{_m(m['mean_group_events']):,.0f} events; other load {_m(m['other_load_cores']):.2f} cores"
                        + (f"; server CPU {_m(m['server_cpu_us_per_night_update']):.3f} µs a night update"
                           if "server_cpu_us_per_night_update" in m else ""))
    elif name == "latency":
        for fraction, r in result.items():
            if not fraction.endswith("%"):
                continue
            m = r["median"]
            lat = m["latency_ms"]
            rows.append(
                f"{fraction} of max ({_m(m['offered_events_per_s']):,.0f} events/s offered, "
                f"{_spread(m['events_per_s'])} acked): ack p50 {_spread(lat['p50'], 1, 1)} ms, "
                f"p99 {_spread(lat['p99'], 1, 1)}, p99.9 {_spread(lat['p99.9'], 1, 1)}, max "
                f"{_spread(lat['max'], 1, 1)}; "
                f"errors {_spread(m['errors'])}, 503 {_spread(m['status_503'])}"
            )
    elif name == "burst":
        m = result["median"]
        rows.append(
            f"steady {_m(m['steady_events_per_s']):,.0f} -> {_m(m['burst_events_per_s']):,.0f} events/s: "
            f"max latency through the burst {_spread(m['max_latency_through_burst_ms'])} ms; "
            f"p99 before {_spread(m['phases']['before']['latency_ms']['p99'], 1, 1)} ms, "
            f"during {_spread(m['phases']['burst']['latency_ms']['p99'], 1, 1)} ms, "
            f"after {_spread(m['phases']['after']['latency_ms']['p99'], 1, 1)} ms; "
            f"recovery {_spread(m['recovery_seconds'], 1, 2)} s (back under {_m(m['recovery_threshold_ms']):.1f} ms)"
        )
    elif name == "tail":
        m = result["median"]
        per = _m(m["nights_per_event"])
        rows.append(
            f"full speed {_spread(m['full']['events_per_s'])} events/s = "
            f"{_spread(m['full']['night_updates_per_s'])} night updates/s ({per:.1f} nights an event)"
        )
        for phase, label in (("half_after_full", "half rate right after it"), ("half_fresh", "half rate, fresh")):
            lat = m[phase]["latency_ms"]
            rows.append(
                f"{label} ({_spread(m[phase]['events_per_s'])} events/s = {_spread(m[phase]['night_updates_per_s'])} "
                f"night updates/s): ack p50 {_spread(lat['p50'], 1, 1)} ms, p99 {_spread(lat['p99'], 1, 1)}, "
                f"p99.9 {_spread(lat['p99.9'], 1, 1)}, max {_spread(lat['max'], 1, 1)}; "
                f"errors {_spread(m[phase]['errors'])}"
            )
        parts = m["half_after_full_parts"]
        first, rest = parts["first_second"]["latency_ms"], parts["rest"]["latency_ms"]
        rows.append(
            f"right after it, by part: first second p99 {_spread(first['p99'], 1, 1)} ms, max "
            f"{_spread(first['max'], 1, 1)}; the rest p99 {_spread(rest['p99'], 1, 1)} ms, "
            f"max {_spread(rest['max'], 1, 1)}; "
            f"last full-speed answer {_spread(parts['last_full_speed_answer_s'], 1000, 0)} ms into the half phase"
        )
    elif name == "search":
        for case, r in result.items():
            if not isinstance(r, dict) or "median" not in r:
                continue
            m = r["median"]
            lat = m["search_latency_ms"]
            line = (
                f"{case}: search p50 {_spread(lat['p50'], 1, 1)} ms, p99 {_spread(lat['p99'], 1, 1)} ms, "
                f"max {_spread(lat['max'], 1, 1)} ms; {_m(m.get('search_mean_matches', 0.0)):,.0f} matches a search"
            )
            if "write" in m:
                line += (f"; writes {_spread(m['write']['night_updates_per_s'], 1e-6, 2)} M night updates/s, "
                         f"ack p99 {_spread(m['write']['latency_ms']['p99'], 1, 1)} ms")
            rows.append(line)
    elif name == "ceiling":
        m = result["median"]
        rows.append(
            f"store alone ({_m(m['group_events']):,.0f}-event groups): {_spread(m['night_updates_per_s'], 1e-6, 2)} M "
            f"night updates/s, {_spread(m['events_per_s'])} events/s; commit {_m(m['commit_ms_per_group']):.2f} ms "
            f"+ apply {_m(m['apply_ms_per_group']):.2f} ms a group"
            + (
                f"; CPU {_m(m['cpu_us_per_night_update']):.3f} µs a night update"
                if "cpu_us_per_night_update" in m
                else ""
            )
        )
        if result.get("service_to_ceiling") is not None:
            rows.append(f"service / store ceiling: {result['service_to_ceiling']:.2f}")
    elif name == "memory":
        for size in result["sizes"]:
            mem = size["memory"]
            rows.append(
                f"{size['listings']:,} listings: {mem['total_bytes'] / 2**30:.2f} GiB at rest "
                f"(shm {mem['shm_bytes'] / 2**30:.2f}, processes "
                f"{(mem['total_bytes'] - mem['shm_bytes']) / 2**30:.2f}), "
                f"peak while filling {mem['peak_bytes'] / 2**30:.2f} GiB; "
                f"restart to ready {statistics.median(size['restart_ready_seconds']):.2f} s clean, "
                f"{statistics.median(size['crash_restart_ready_seconds']):.2f} s after kill -9"
            )
        pm = result["per_million"]
        how = "extrapolated linearly" if pm["extrapolated"] else "measured"
        rows.append(
            f"per million listings ({how}): {pm['gib_per_million_listings']:.2f} GiB at rest, "
            f"{pm['peak_gib_per_million_listings']:.2f} GiB peak; restart to ready "
            f"{pm['restart_seconds_per_million']:.1f} s clean, {pm['crash_restart_seconds_per_million']:.1f} s after "
            f"kill -9"
        )
    elif name == bulk_live.NAME:
        rows += bulk_live.rows(result)
    elif name == watches_bench.NAME:
        rows += watches_bench.rows(result)
    elif name == deals_bench.NAME:
        rows += deals_bench.rows(result)
    elif name == dense_search.NAME:
        rows += dense_search.rows(result)
    return rows


# The bars of the issues, next to the figures they judge: (label, issue 2, issue 4, getter, unit).
def _bars(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    s = report["scenarios"]
    rows = []

    def add(label: str, bar2: str, bar4: str, value: Callable[[], str]) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError, StopIteration):
            rows.append((label, value(), bar2, bar4))

    last_workers = f"workers={report['settings']['workers'][-1]}"
    add("sustained night updates/s", ">= 100k", ">= 1M",
        lambda: _spread(s["throughput"][last_workers]["median"]["night_updates_per_s"]))
    add(
        "ack p99 at half of max, ms",
        "<= 100",
        "<= 20",
        lambda: _spread(s["latency"]["50%"]["median"]["latency_ms"]["p99"], 1, 1),
    )
    add("max ack latency through the 10x burst, ms", "", "<= 1000",
        lambda: _spread(s["burst"]["median"]["max_latency_through_burst_ms"]))
    small = report["settings"]["small_city_listings"]
    city = report["settings"]["city_listings"]
    add(f"search p99 on {small:,} listings under writes, ms", "<= 50", "",
        lambda: _spread(s["search"][f"{small} listings, under writes"]["median"]["search_latency_ms"]["p99"], 1, 1))
    add(f"search p99 on {city:,} listings under writes, ms", "", "<= 20",
        lambda: _spread(s["search"][f"{city} listings, under writes"]["median"]["search_latency_ms"]["p99"], 1, 1))
    add("GiB per million listings (365 nights)", "", "<= 4",
        lambda: f"{s['memory']['per_million']['gib_per_million_listings']:.2f} at rest, "
                f"{s['memory']['per_million']['peak_gib_per_million_listings']:.2f} peak while filling")
    add("restart to ready for a million listings, s", "", "<= 30",
        lambda: f"{s['memory']['per_million']['restart_seconds_per_million']:.1f} clean, "
                f"{s['memory']['per_million']['crash_restart_seconds_per_million']:.1f} after kill -9")
    return rows


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run `{report['command']}` from {report['started']} to {report.get('finished', '?')}, commit "
        f"{m['commit']}{' (dirty)' if m['dirty'] else ''}.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}; Python {m['python']}, "
        f"numpy {m['numpy']}, msgspec {m['msgspec']}, SQLite {m['sqlite']}; load average {m['loadavg_start']} at "
        f"the start, {m.get('loadavg_end')} at the end. Figures: median of {report['settings']['repeat']} runs "
        "(min-max).",
        "",
        "| figure | this run | issue 2 bar | issue 4 bar |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {label} | {value} | {bar2} | {bar4} |" for label, value, bar2, bar4 in _bars(report)]
    lines.append("")
    for name, result in report["scenarios"].items():
        lines.append(f"- **{name}**")
        lines += [f"  - {row}" for row in _rows(name, result)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
