"""The store's own ceiling: the same night updates made durable and readable with no HTTP.

One process drives `staystream.calendar.CalendarWriter` (the shared-memory calendar the workers
read) and `staystream.db.commit_group` (the SQLite rate log, `synchronous=FULL`) directly, with
groups of rate events drawn like the load generator's: listings prefilled with 365-night
calendars, each event 7-30 nights on a distinct listing, strictly newer `changed_at`. Per group
it does what the writer does once the group is formed: commit with fsync, then apply. Decoding,
validation, key lookup and the hand-off between processes are what the service adds on top;
the service's throughput is reported as a ratio to this.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import shutil
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from . import workload

POOL = 16  # distinct groups, reused with newer changed_at


def measure(listings: int, group_events: int, seconds: float, directory: Path | None = None) -> dict[str, object]:
    """Run in a fresh process (own memory, own GIL); returns its figures."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_main, args=(listings, group_events, seconds, directory, child), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(seconds + 600):
            raise TimeoutError(f"the store ceiling did not finish within {seconds + 600:.0f} s")
        kind, payload = parent.recv()
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    if kind == "error":
        raise RuntimeError(f"the store ceiling failed: {payload}")
    return payload  # type: ignore[no-any-return]


def _main(listings: int, group_events: int, seconds: float, directory: Path | None, pipe: Connection) -> None:
    try:
        pipe.send(("done", _run(listings, group_events, seconds, directory)))
    except BaseException as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _run(listings: int, group_events: int, seconds: float, directory: Path | None) -> dict[str, object]:
    from staystream.config import Config
    from staystream.dates import epoch_day
    from staystream.durable import sqlite
    from staystream.events.money import CURRENCY_INDEX
    from staystream.events.types import ALL_FACTS, RATE_DTYPE, Commit
    from staystream.memory.calendar import ARRAYS, PAGE, CalendarWriter
    from staystream.memory.shm import SharedArrays
    from staystream.paths import database_path

    config = Config()
    work = Path(tempfile.mkdtemp(prefix="staystream-ceiling-", dir=directory))
    shm = Path("/dev/shm") / f"bench-ceiling-{os.getpid()}"
    try:
        shared = SharedArrays(shm, ARRAYS, create=True)
        base_page = epoch_day(config.earliest_night) // PAGE
        last_page = (epoch_day(dt.date.today()) + config.horizon_days) // PAGE + 1
        calendar = CalendarWriter(shared, base_page, last_page - base_page + 1)
        calendar.ensure_rows(listings)
        connection = sqlite.connect_writer(database_path(work))
        eur = CURRENCY_INDEX["EUR"]
        now_us = int(time.time() * 1e6)

        # prefill: 4 seasons a listing over 365 nights, as the HTTP prefill does
        started = time.perf_counter()
        rng = np.random.default_rng(1)
        night0 = workload.first_night()
        cuts = np.sort(rng.integers(30, workload.CALENDAR_NIGHTS - 30, (listings, 3)), axis=1)
        bounds = np.concatenate(
            [np.zeros((listings, 1), int), cuts, np.full((listings, 1), workload.CALENDAR_NIGHTS)], 1
        )
        prefill = np.empty(listings * 4, RATE_DTYPE)
        prefill["key"] = np.repeat(np.arange(listings), 4)
        prefill["start"] = night0 + bounds[:, :4].ravel()
        prefill["nights"] = np.diff(bounds, axis=1).ravel()
        prefill["changed_at"] = now_us - 600_000_000
        prefill["price"] = rng.integers(50, 400, len(prefill)) * 100
        prefill["currency"] = eur
        prefill["min_nights"] = 1
        prefill["available"] = 1
        prefill["facts"] = ALL_FACTS  # v1 rates: all three facts
        seq = 0
        for chunk in np.array_split(prefill, max(1, len(prefill) // 100_000)):
            seq += 1
            sqlite.commit_group(connection, Commit([], [], [], seq, chunk.tobytes(), {}))
            calendar.apply(chunk)
        prefill_seconds = time.perf_counter() - started

        # the groups: distinct listings, 7-30 nights, available with a price
        pool = []
        everyone = np.arange(listings)
        for _ in range(POOL):
            columns = workload.rate_columns(rng, everyone, min(group_events, listings))
            group = np.empty(len(columns), RATE_DTYPE)
            group["key"] = columns["listing"]
            group["start"] = columns["start"]
            group["nights"] = columns["nights"]
            group["price"] = columns["price"].astype(np.int64) * 100
            group["currency"] = eur
            group["min_nights"] = columns["min_nights"]
            group["available"] = 1
            group["facts"] = ALL_FACTS
            pool.append(group)

        commit_time = apply_time = 0.0
        events = nights = groups = won = 0
        stamp = int(time.time() * 1e6)
        deadline = time.perf_counter() + seconds
        began = time.perf_counter()
        cpu = time.process_time()
        while time.perf_counter() < deadline:
            group = pool[groups % POOL]
            stamp = max(int(time.time() * 1e6), stamp + len(group))
            group["changed_at"] = stamp + np.arange(len(group))  # strictly newer: every night a real update
            seq += 1
            t0 = time.perf_counter()
            sqlite.commit_group(connection, Commit([], [], [], seq, group.tobytes(), {}))
            t1 = time.perf_counter()
            applied = calendar.apply(group)  # nights won (and, in newer versions, unchanged events)
            won += applied[0] if isinstance(applied, tuple) else applied
            t2 = time.perf_counter()
            commit_time += t1 - t0
            apply_time += t2 - t1
            groups += 1
            events += len(group)
            nights += int(group["nights"].sum())
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
        connection.close()
        return {
            "listings": listings,
            "group_events": int(min(group_events, listings)),
            "groups": groups,
            "events_per_s": events / elapsed,
            "night_updates_per_s": nights / elapsed,
            "nights_won_fraction": won / nights if nights else 0.0,
            "commit_ms_per_group": 1000 * commit_time / max(groups, 1),
            "apply_ms_per_group": 1000 * apply_time / max(groups, 1),
            "prefill_seconds": prefill_seconds,
            "cpu_us_per_night_update": 1e6 * cpu / nights if nights else None,
        }
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
