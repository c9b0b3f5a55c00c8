"""Fees in shared memory: what search needs to add a listing's fees to its stay totals.

Per listing row, `fee_span` packs where its fees are in the arena: `first << 16 | count` (0: no
fees), one 8-byte store, so a reader never sees a new `first` with an old `count`. The arena
holds one slot per live fee (basis, mandatory, amount, currency, check-in window), a listing's
fees contiguous: gathering the fees of many candidate rows is one CSR gather (vectorized).

A changed listing's fees are written as a new block at the arena's end, then its span is
switched; the old block is never overwritten (a reader that read the old span still reads valid
slots). The arena therefore only grows while the writer runs, by a few dozen bytes a change of
what a listing charges (a feed re-sending the same fees with a newer `changed_at` writes
nothing), and is compact again after a restart, which rebuilds it from the store.
Labels and fee ids are not here: a result page reads them from SQLite (`sqlite.fees_of`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from staystream.events.types import Fee
from staystream.memory.shm import Counter, SharedArrays

ROW_ARRAYS: dict[str, np.dtype[Any]] = {"fee_span": np.dtype("<i8")}
SLOT_ARRAYS: dict[str, np.dtype[Any]] = {
    "fee_basis": np.dtype("u1"),
    "fee_mandatory": np.dtype("u1"),
    "fee_amount": np.dtype("<i8"),  # minor units of fee_currency; a percent fee: millionths of a percent
    "fee_currency": np.dtype("<u2"),
    "fee_start": np.dtype("<i4"),  # first check-in day it applies to
    "fee_end": np.dtype("<i4"),  # check-in days before this
}
ARRAYS = {**ROW_ARRAYS, **SLOT_ARRAYS}
MAX_FEES = 0xFFFF  # a listing's live fees (the span's count field)


Slot = tuple[int, bool, int, int, int, int]  # basis, mandatory, amount, currency, start, end


def slot_of(fee: Fee) -> Slot:
    return (fee.basis, fee.mandatory, fee.amount, fee.currency, fee.start, fee.end)


def span_first(span: np.ndarray) -> np.ndarray:
    return span >> 16


def span_count(span: np.ndarray) -> np.ndarray:
    return span & 0xFFFF


class FeeColumns:
    """The writer's handle: the fees of every row, last-writer-wins, mirrored into the arena."""

    def __init__(self, shared: SharedArrays, rows: int = 1024, slots: int = 1024) -> None:
        self.shared = shared
        for name in ROW_ARRAYS:
            shared.allocate(name, rows)
        for name in SLOT_ARRAYS:
            shared.allocate(name, slots)
        self.by_row: dict[int, dict[str, Fee]] = {}  # tombstones included: they keep their changed_at
        self.published: dict[int, list[Slot]] = {}  # per row, the slots its span points at

    def add_rows(self, rows: int) -> None:
        if rows > len(self.shared["fee_span"]):
            self.shared.grow("fee_span", rows)

    def apply(self, changes: list[tuple[int, Fee]]) -> list[int]:
        """Fees in arrival order: per (row, fee_id) the greatest changed_at wins, the later
        arrival winning ties (as the stores' upserts do); each changed row gets a new block.
        Returns the rows whose charges changed: their totals moved (watches hear of it)."""
        changed = set()
        for row, fee in changes:
            fees = self.by_row.setdefault(row, {})
            held = fees.get(fee.fee_id)
            if held is None or fee.changed_at >= held.changed_at:
                fees[fee.fee_id] = fee
                changed.add(row)
        return [row for row in sorted(changed) if self._publish(row)]

    def load(self, rows: list[tuple[int, Fee]]) -> None:
        """Start-up: the stores' rows (one per fee, the winners), written as one compact arena."""
        for row, fee in rows:
            self.by_row.setdefault(row, {})[fee.fee_id] = fee
        live = sorted(((row, fee) for row, fee in rows if not fee.removed), key=lambda item: (item[0], item[1].fee_id))
        for row, fee in live:
            self.published.setdefault(row, []).append(slot_of(fee))
        if not live:
            return
        shared = self.shared
        first = int(shared.counters[Counter.FEE_SLOTS])
        end = first + len(live)
        if end > len(shared["fee_basis"]):
            for name in SLOT_ARRAYS:
                shared.grow(name, end)
        for name, attribute in (("fee_basis", "basis"), ("fee_mandatory", "mandatory"), ("fee_amount", "amount"),
                                ("fee_currency", "currency"), ("fee_start", "start"), ("fee_end", "end")):
            shared[name][first:end] = [getattr(fee, attribute) for _, fee in live]
        shared.counters[Counter.FEE_SLOTS] = end
        row_of = np.array([row for row, _ in live], dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, row_of[1:] != row_of[:-1]])
        counts = np.diff(np.r_[starts, len(live)])
        if counts.max() > MAX_FEES:
            raise ValueError(f"a listing has {counts.max()} fees; at most {MAX_FEES} are kept")
        shared["fee_span"][row_of[starts]] = (starts + first) << 16 | counts

    def _publish(self, row: int) -> bool:
        """Write the row's live fees as a new block; False if they are what it already charges."""
        live = sorted((fee for fee in self.by_row[row].values() if not fee.removed), key=lambda fee: fee.fee_id)
        content = [slot_of(fee) for fee in live]
        if content == self.published.get(row, []):
            return False  # a feed re-sending the same fees with a newer changed_at: the arena does not grow
        self.published[row] = content
        if len(live) > MAX_FEES:
            raise ValueError(f"listing row {row} has {len(live)} fees; at most {MAX_FEES} are kept")
        shared = self.shared
        first = int(shared.counters[Counter.FEE_SLOTS])
        end = first + len(live)
        if end > len(shared["fee_basis"]):
            for name in SLOT_ARRAYS:
                shared.grow(name, end)
        for i, fee in enumerate(live, first):
            shared["fee_basis"][i] = fee.basis
            shared["fee_mandatory"][i] = fee.mandatory
            shared["fee_amount"][i] = fee.amount
            shared["fee_currency"][i] = fee.currency
            shared["fee_start"][i] = fee.start
            shared["fee_end"][i] = fee.end
        shared.counters[Counter.FEE_SLOTS] = end
        # The slots are written before the span that points at them.
        shared["fee_span"][row] = first << 16 | len(live) if live else 0
        return True
