"""A write's stages one by one, in-process: CPU nanoseconds per event at 7 nights an event.

    python -m benchmarks.write_stages [--events 500] [--nights 7] [--requests 200] [--repeat 5]
        [--history-groups 15] [--compact-groups 200]

Each request is the load generator's body (`workload.rate_body`: `--events` rate events on
distinct listings of a 10,000-listing city, `--nights` nights each, every event newer than the
last), taken through the same functions the service runs, one stage at a time:

- `decode`: the worker's msgspec decode of the NDJSON body into events (`Validator.decode`);
- `validate`: the events into checked columns (`Validator.validate`, in the worker's slices);
- `frame`: the `WriteRequest` encoded by the worker and decoded by the writer (msgpack);
- `resolve`: the writer's keys to rows and the group's columns (`Writer._prepare`'s work);
- `commit`: the group's SQLite transaction with fsync (`durable.sqlite.commit_group`);
- `apply`: `CalendarWriter.apply` into shared memory;
- `history`: the history thread's copy: `--history-groups` groups a batch
  (`durable.history.add_batch`; 15 by default: what one `history.COPY_SECONDS` gathers at the
  tail scenario's half rate, ~150 groups a second), and the batches moved into the listings'
  rows (`history.compact`) every `--compact-groups` groups (200 by default: ~1.3 s of full
  speed, fewer events a compaction than the service's `COMPACT_SECONDS` gathers: more rows).

CPU time (`time.process_time`, this process alone), so other users of the machine change it
little; `commit` also reports wall time (its fsync waits, it does not compute). Medians of
`--repeat` rounds, each over all requests. A group is one request, as at half load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import workload
from staystream.durable import history, sqlite
from staystream.events.fx import default_fx
from staystream.events.ingest import Validator
from staystream.events.types import Commit, WriteRequest
from staystream.memory.calendar import ARRAYS, PAGE, CalendarWriter
from staystream.memory.shm import SharedArrays
from staystream.writer import wire

LISTINGS = 10_000
VALIDATION_SLICE = 250  # api/writes.py
STAGES = ("decode", "validate", "frame", "resolve", "commit", "apply", "history")


def bodies(requests: int, events: int, nights: int) -> list[bytes]:
    """The load generator's request bodies with a real, increasing time prefix each."""
    rng = np.random.default_rng(3)
    listings = np.arange(LISTINGS)
    now_ms = int(time.time() * 1000) - 60_000
    out = []
    for r in range(requests):
        body = workload.rate_body(workload.rate_columns(rng, listings, events, (nights, nights)))
        out.append(body.replace(workload.PLACEHOLDER, workload.rfc3339_ms(now_ms + r).encode()))
    return out


class Stages:
    """The state each stage needs (a store, a calendar, a history file), in a temp dir."""

    def __init__(self, root: Path) -> None:
        self.validator = Validator(default_fx(None), dt.date.today() - dt.timedelta(days=30), 730, 100_000)
        self.connection = sqlite.connect_writer(root / "store.sqlite3")
        shm = Path(tempfile.mkdtemp(prefix="staystream-stages-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.shm = shm
        first = (dt.date.today().toordinal() - workload.EPOCH_ORDINAL) // PAGE
        self.calendar = CalendarWriter(SharedArrays(shm, ARRAYS, create=True), first - 2, 30)
        self.calendar.ensure_rows(LISTINGS)
        self.history = history.connect(root / history.HISTORY_FILE)
        self.keys: dict[str, int] = {}
        self.seq = 0

    def close(self) -> None:
        self.connection.close()
        self.history.close()
        shutil.rmtree(self.shm, ignore_errors=True)

    def resolve(self, request: WriteRequest) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
        known = self.keys.get
        rows = np.fromiter([known(key, -1) for key in request.keys], np.int32, len(request.keys))
        new_keys = []
        for i in np.flatnonzero(rows < 0).tolist():
            key = request.keys[i]
            rows[i] = self.keys[key] = len(self.keys)
            source, _, listing_id = key.partition("\x00")
            new_keys.append((int(rows[i]), source, listing_id))
        rates = request.rate_rows().copy()
        rates["key"] = rows[rates["key"]]
        return rates, new_keys


def one_round(stages: Stages, requests: list[bytes], history_groups: int, compact_groups: int) -> dict[str, float]:
    """CPU seconds of each stage over all `requests` (and commit's wall time)."""
    spent = dict.fromkeys(STAGES, 0.0)
    copied: list[np.ndarray] = []  # groups waiting for the history's next transaction
    spent["commit_wall"] = 0.0

    def timed(name: str, work: Callable[[], Any]) -> Any:
        started = time.process_time()
        wall = time.perf_counter()
        result = work()
        spent[name] += time.process_time() - started
        if name == "commit":
            spent["commit_wall"] += time.perf_counter() - wall
        return result

    validator = stages.validator
    for body in requests:
        events = timed("decode", lambda body=body: validator.decode(body, True, 100_000))

        def validate(events: list[object] = events) -> Any:
            parsed = validator.validate(events[:VALIDATION_SLICE])
            for first in range(VALIDATION_SLICE, len(events), VALIDATION_SLICE):
                parsed.extend(validator.validate(events[first:first + VALIDATION_SLICE], first))
            return parsed

        parsed = timed("validate", validate)
        assert not parsed.rejected, parsed.rejected[:3]
        request = WriteRequest(1, parsed.keys, parsed.rate_columns().tobytes(), [], [], parsed.newest_changed_at)
        frame = timed("frame", lambda request=request: wire.encode(request))
        received = timed("frame", lambda frame=frame: wire._requests.decode(frame[4:]))
        rates, new_keys = timed("resolve", lambda received=received: stages.resolve(received))
        stages.seq += 1
        commit = Commit(new_keys, [], [], stages.seq, rates.tobytes(), {})
        timed("commit", lambda commit=commit: sqlite.commit_group(stages.connection, commit))
        timed("apply", lambda rates=rates: stages.calendar.apply(rates))
        copied.append(rates)
        if len(copied) == history_groups or body is requests[-1]:
            batch = np.concatenate(copied)
            timed("history", lambda batch=batch: history.add_batch(stages.history, stages.seq, batch, 20_000))
            copied.clear()
        if stages.seq % compact_groups == 0:
            timed("history", lambda: history.compact(stages.history))
    return spent


def run(events: int, nights: int, requests: int, repeat: int, history_groups: int = 15,
        compact_groups: int = 200) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="staystream-stages-"))
    stages = Stages(root)
    try:
        one_round(stages, bodies(20, events, nights), history_groups, compact_groups)  # warm caches as a worker's
        rounds = [one_round(stages, bodies(requests, events, nights), history_groups, compact_groups)
                  for _ in range(repeat)]
    finally:
        stages.close()
        shutil.rmtree(root, ignore_errors=True)
    total_events = requests * events
    ns = {name: statistics.median(r[name] for r in rounds) * 1e9 / total_events for name in [*STAGES, "commit_wall"]}
    return {"events_per_request": events, "nights_per_event": nights, "requests": requests, "repeat": repeat,
            "history_groups": history_groups, "compact_groups": compact_groups, "ns_per_event": ns,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=500, help="rate events a request (default 500)")
    parser.add_argument("--nights", type=int, default=7, help="nights an event (default 7)")
    parser.add_argument("--requests", type=int, default=200, help="requests a round (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are reported (default 5)")
    parser.add_argument("--history-groups", type=int, default=15, help="groups a history batch (default 15)")
    parser.add_argument("--compact-groups", type=int, default=200, help="groups a history compaction (default 200)")
    args = parser.parse_args()
    result = run(args.events, args.nights, args.requests, args.repeat, args.history_groups, args.compact_groups)
    ns = result["ns_per_event"]
    cpu = sum(ns[name] for name in STAGES if name != "commit") + ns["commit"]
    print(f"{args.events} events a request, {args.nights} nights an event; CPU ns an event "
          f"(median of {args.repeat}; history {args.history_groups} groups a batch, "
          f"{args.compact_groups} a compaction), "
          f"load average {' '.join(result['loadavg'])}")
    for name in STAGES:
        print(f"  {name:9} {ns[name]:8.0f}" + (f"   (wall {ns['commit_wall']:.0f})" if name == "commit" else ""))
    print(f"  {'total':9} {cpu:8.0f}   = {1e9 / cpu:,.0f} events/s, {1e9 * args.nights / cpu:,.0f} "
          "night updates/s of one core")


if __name__ == "__main__":
    main()
