"""`CalendarWriter.apply` alone, per event type: CPU time a night update and live entries a listing.

    python -m benchmarks.apply_facts [--facts rate|price|availability|stay_rule] [--rounds N]

The calendar is prefilled like the ceiling scenario (4 seasons of `rate`s over 365 nights a
listing), then groups of 4,000 events of 7-30 nights on distinct listings are applied, each
newer than everything before. `rate` groups take the v1 path (one gather a night); one-fact
groups keep the night's other two facts, so every night they change gets a merged entry. No
SQLite, no HTTP: the figure is the apply step of a group commit. Run it alternating with the
code it is compared with (the machine is shared): `docs/architecture.md` quotes it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from staystream.events.types import FACTS_OF_TYPE, RATE_DTYPE
from staystream.memory.calendar import ARRAYS, PAGE, CalendarWriter
from staystream.memory.shm import SharedArrays

LISTINGS = 20_000
GROUP_EVENTS = 4_000
FIRST_DAY = 20_410  # 2025-11-18: any day works, the calendar only needs pages


def run(facts: str, rounds: int) -> dict[str, float]:
    shm = Path(tempfile.mkdtemp(prefix="staystream-apply-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        writer = CalendarWriter(SharedArrays(shm, ARRAYS, create=True), FIRST_DAY // PAGE - 1, 12)
        writer.ensure_rows(LISTINGS)
        rng = np.random.default_rng(1)
        writer.apply(_prefill(rng))
        groups = [_group(rng, FACTS_OF_TYPE[facts]) for _ in range(20)]
        clock, nights = 10, 0
        cpu = time.process_time()
        for _ in range(rounds):
            for group in groups:
                clock += 1
                group["changed_at"] = clock
                writer.apply(group)
                nights += int(group["nights"].sum())
        cpu = time.process_time() - cpu
        live = int(np.count_nonzero(writer.refcount[: writer.entries] > 0))
        return {"ns_per_night_update": 1e9 * cpu / nights, "live_entries_per_listing": live / LISTINGS}
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def _prefill(rng: np.random.Generator) -> np.ndarray:
    cuts = np.sort(rng.integers(30, 335, (LISTINGS, 3)), axis=1)
    bounds = np.concatenate([np.zeros((LISTINGS, 1), int), cuts, np.full((LISTINGS, 1), 365)], axis=1)
    prefill = np.zeros(LISTINGS * 4, RATE_DTYPE)
    prefill["key"] = np.repeat(np.arange(LISTINGS), 4)
    prefill["start"] = FIRST_DAY + bounds[:, :4].ravel()
    prefill["nights"] = np.diff(bounds, axis=1).ravel()
    prefill["changed_at"] = 1
    prefill["price"] = rng.integers(50, 400, len(prefill)) * 100
    prefill["available"] = prefill["min_nights"] = 1
    prefill["facts"] = FACTS_OF_TYPE["rate"]
    return prefill


def _group(rng: np.random.Generator, facts: int) -> np.ndarray:
    group = np.zeros(GROUP_EVENTS, RATE_DTYPE)
    group["key"] = rng.choice(LISTINGS, GROUP_EVENTS, replace=False)
    group["start"] = FIRST_DAY + rng.integers(0, 330, GROUP_EVENTS)
    group["nights"] = rng.integers(7, 31, GROUP_EVENTS)
    group["price"] = rng.integers(50, 400, GROUP_EVENTS) * 100
    group["available"] = group["min_nights"] = 1
    group["facts"] = facts
    return group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--facts", choices=sorted(FACTS_OF_TYPE), default="rate", help="the groups' event type")
    parser.add_argument("--rounds", type=int, default=5, help="times the 20 groups are applied")
    args = parser.parse_args()
    result = run(args.facts, args.rounds)
    print(f"{args.facts}: {result['ns_per_night_update']:.1f} ns a night update, "
          f"{result['live_entries_per_listing']:.1f} live entries a listing")


if __name__ == "__main__":
    main()
