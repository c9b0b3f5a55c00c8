"""The calendar store against a plain-dict model: last-writer-wins, references, snapshots."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from staystream.durable import snapshot
from staystream.events.types import ALL_FACTS, FACT_AVAILABILITY, FACT_PRICE, FACT_STAY_RULE, RATE_DTYPE
from staystream.memory import calendar
from staystream.memory.calendar import ARRAYS, PAGE, CalendarReader, CalendarWriter
from staystream.memory.shm import SharedArrays

BASE_DAY = 20_400  # 2025-11-08


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="staystream-test-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def random_batch(rng: np.random.Generator, size: int, listings: int, clock: int, facts: str = "whole") -> np.ndarray:
    """Random events; `facts` "whole" makes every one a `rate` (all three facts), "mixed" gives
    each a random non-empty set of facts (the one-fact events and rates among them)."""
    batch = np.zeros(size, RATE_DTYPE)
    batch["key"] = rng.integers(0, listings, size)
    batch["start"] = BASE_DAY + rng.integers(-40, 300, size)
    batch["nights"] = rng.integers(1, 30, size)
    batch["changed_at"] = clock + rng.integers(0, 50, size)  # many ties on purpose
    batch["price"] = rng.integers(-1, 10**6, size)
    batch["currency"] = rng.integers(0, 3, size)
    batch["min_nights"] = rng.integers(1, 10, size)
    batch["available"] = rng.integers(0, 2, size)
    batch["facts"] = ALL_FACTS if facts == "whole" else rng.integers(1, ALL_FACTS + 1, size)
    return batch


def apply_to_model(model: dict, batch: np.ndarray) -> None:
    """Per night and fact: the greatest changed_at wins; at equal changed_at, the later arrival."""
    for event in batch:
        row, start, nights, changed_at = int(event["key"]), int(event["start"]), int(event["nights"]), int(event[
            "changed_at"])
        values = {
            FACT_PRICE: (changed_at, int(event["price"]), int(event["currency"])),
            FACT_AVAILABILITY: (changed_at, int(event["available"])),
            FACT_STAY_RULE: (changed_at, int(event["min_nights"])),
        }
        for day in range(start, start + nights):
            night = model.setdefault((row, day), {})
            for bit, value in values.items():
                if event["facts"] & bit and (bit not in night or night[bit][0] <= changed_at):
                    night[bit] = value


def read_all(reader: CalendarReader, rows: int) -> dict:
    """Every night's known facts as the model holds them; checks each entry's newest time."""
    days = np.arange(BASE_DAY - 64, BASE_DAY + 400, dtype=np.int64)
    entries = reader.entries_for_nights(np.arange(rows), days)
    shared = reader.shared
    found = {}
    for row, column in zip(*np.nonzero(entries), strict=True):
        entry = entries[row, column]
        night = {}
        price_at, available_at, stay_at = (
            int(shared[name][entry]) for name in ("entry_price_at", "entry_available_at", "entry_stay_at"))
        if price_at != calendar.OLDEST:
            night[FACT_PRICE] = (price_at, int(shared["entry_price"][entry]), int(shared["entry_currency"][entry]))
        if available_at != calendar.OLDEST:
            night[FACT_AVAILABILITY] = (available_at, int(shared["entry_available"][entry]))
        if stay_at != calendar.OLDEST:
            night[FACT_STAY_RULE] = (stay_at, int(shared["entry_min_nights"][entry]))
        assert night, "a referenced entry holds at least one fact"
        assert int(shared["entry_changed_at"][entry]) == max(at for at, *_ in night.values())
        found[int(row), int(days[column])] = night
    return found


@pytest.mark.parametrize("facts", ["whole", "mixed", "alternating"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_batches_match_the_model(shm_dir: Path, seed: int, facts: str) -> None:
    rng = np.random.default_rng(seed)
    writer = CalendarWriter(SharedArrays(shm_dir, ARRAYS, create=True), BASE_DAY // PAGE, 8)
    reader = CalendarReader(SharedArrays(shm_dir, ARRAYS, create=False))
    model: dict = {}
    for step in range(6):
        # overlapping clocks: old events lose; "alternating" sends rates onto nights of mixed facts
        mode = ("mixed", "whole")[step % 2] if facts == "alternating" else facts
        batch = random_batch(rng, 300, 40, clock=step * 20, facts=mode)
        writer.apply(batch)
        apply_to_model(model, batch)
        reader.shared.refresh()
        assert read_all(reader, 40) == model, f"seed={seed} step={step} facts={facts}"
    assert_references_counted(writer)


def assert_references_counted(writer: CalendarWriter) -> None:
    """Every night's reference is counted once (a uniform page's PAGE times), nothing referenced
    is free, and no slot the directory names is free or named twice."""
    directory = writer.shared["directory"][:].ravel()
    slots = directory[directory > 0]
    assert len(np.unique(slots)) == len(slots)
    assert not np.isin(writer.free_slots.held(), slots).any()
    nights = np.concatenate([writer.shared["pages"][slots].ravel(), np.repeat(-directory[directory < 0], PAGE)])
    counted = np.bincount(nights, minlength=len(writer.refcount))
    counted[0] = 0
    assert np.array_equal(counted[: writer.entries], writer.refcount[: writer.entries])
    assert not np.isin(writer.free_entries.held(), nights).any()


def assemble(pieces: Iterable[tuple[str, memoryview]]) -> dict[str, np.ndarray]:
    """The arrays a streamed snapshot holds, read back from its .npy bytes."""
    parts: dict[str, list[bytes]] = {}
    for name, piece in pieces:
        parts.setdefault(name, []).append(bytes(piece))
    return {name: snapshot.from_npy(b"".join(chunks)) for name, chunks in parts.items()}


def test_snapshot_state_restores_identically(shm_dir: Path) -> None:
    rng = np.random.default_rng(7)
    writer = CalendarWriter(SharedArrays(shm_dir / "a", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    for step in range(4):
        writer.apply(random_batch(rng, 200, 30, clock=step * 100, facts="mixed"))
    state = assemble(snapshot.npy_pieces(writer.snapshot_chunks(30)))
    restored = CalendarWriter(SharedArrays(shm_dir / "b", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    restored.load_state(state)
    assert read_all(CalendarReader(restored.shared), 30) == read_all(CalendarReader(writer.shared), 30)
    assert np.array_equal(restored.refcount[: writer.entries], writer.refcount[: writer.entries])
    # both go on identically from there
    batch = random_batch(rng, 200, 30, clock=1_000, facts="mixed")
    writer.apply(batch)
    restored.apply(batch)
    assert read_all(CalendarReader(restored.shared), 30) == read_all(CalendarReader(writer.shared), 30)


@pytest.mark.parametrize("seed", [11, 12])
def test_snapshot_copied_while_writes_go_on_is_exact_after_replay(
    shm_dir: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks copied between batches give a fuzzy copy; replaying the batches applied since
    the copy began makes it equal to the live state, entry reuse and growth included."""
    monkeypatch.setattr(calendar, "GRACE_SECONDS", 0.0)  # released entries are reusable at once
    rng = np.random.default_rng(seed)
    writer = CalendarWriter(SharedArrays(shm_dir / "live", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    for step in range(5):
        writer.apply(random_batch(rng, 300, 60, clock=step * 40, facts="mixed"))
    since_start = []
    clock = 200

    def writes_between_pieces() -> Iterator[tuple[str, memoryview]]:
        nonlocal clock
        for piece in snapshot.npy_pieces(writer.snapshot_chunks(80, chunk_bytes=2048)):  # tiny chunks
            yield piece
            batch = random_batch(rng, 50, 80, clock=clock, facts="mixed")  # rows 60-79 appear only meanwhile
            clock += 20
            writer.apply(batch)
            since_start.append(batch)

    state = assemble(writes_between_pieces())
    assert writer.copying == 0, "entries are reusable again once the last piece is taken"
    assert len(since_start) > 5, "the copy should have taken many chunks"
    restored = CalendarWriter(SharedArrays(shm_dir / "restored", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    restored.load_state(state)
    for batch in since_start:
        restored.apply(batch)
    assert read_all(CalendarReader(restored.shared), 80) == read_all(CalendarReader(writer.shared), 80)


def test_nights_before_the_base_widen_the_directory(shm_dir: Path) -> None:
    writer = CalendarWriter(SharedArrays(shm_dir, ARRAYS, create=True), BASE_DAY // PAGE, 4)
    batch = np.zeros(2, RATE_DTYPE)
    batch["key"] = [0, 1]
    batch["start"] = [BASE_DAY - 1000, BASE_DAY + 600]  # far before the base, far after the width
    batch["nights"] = [3, 3]
    batch["changed_at"] = [1, 1]
    batch["price"] = [100, 200]
    batch["available"] = 1
    batch["min_nights"] = 1
    batch["facts"] = ALL_FACTS
    assert writer.apply(batch) == (6, 0)
    assert writer.apply(batch) == (6, 0), "a resent event ties and wins again (later arrival)"
    batch["changed_at"] = 0
    assert writer.apply(batch) == (0, 2), "older events change nothing"
    reader = CalendarReader(SharedArrays(shm_dir, ARRAYS, create=False))
    reader.shared.refresh()
    entries = reader.entries_for_nights(np.array([0, 1]), np.array([BASE_DAY - 1000, BASE_DAY + 602]))
    assert reader.shared["entry_price"][entries].tolist() == [[100, -1], [-1, 200]]


def test_snapshot_copied_across_a_move_of_the_base_is_exact_after_replay(shm_dir: Path) -> None:
    """Older nights arriving while a snapshot is copied move the directory's base; the copy
    keeps the columns it started with, and replay makes it exact."""
    rng = np.random.default_rng(5)
    writer = CalendarWriter(SharedArrays(shm_dir / "live", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    reader = CalendarReader(SharedArrays(shm_dir / "live", ARRAYS, create=False))
    writer.apply(random_batch(rng, 300, 40, clock=0))
    since_start = []
    pieces = []
    for number, piece in enumerate(snapshot.npy_pieces(writer.snapshot_chunks(40, chunk_bytes=256))):
        pieces.append(piece)
        batch = random_batch(rng, 20, 40, clock=100 + number)
        if number == 3:
            batch["start"][0] = BASE_DAY - 700  # two years before the base: a shift mid-copy
        writer.apply(batch)
        since_start.append(batch)
        reader.shared.refresh()
    assert writer.base_page < BASE_DAY // PAGE - 700 // PAGE
    restored = CalendarWriter(SharedArrays(shm_dir / "restored", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    restored.load_state(assemble(pieces))
    for batch in since_start:
        restored.apply(batch)
    days = np.arange(BASE_DAY - 710, BASE_DAY + 400, dtype=np.int64)
    expected = CalendarReader(writer.shared).entries_for_nights(np.arange(40), days)
    found = CalendarReader(restored.shared).entries_for_nights(np.arange(40), days)
    for name in ("entry_price", "entry_changed_at", "entry_min_nights", "entry_available"):
        assert np.array_equal(writer.shared[name][expected], restored.shared[name][found]), name
    old, base = calendar.directory_and_base(reader.shared)
    assert base == writer.base_page and old.shape[1] == writer.shared["directory"].shape[1]


def test_a_directory_loads_without_its_empty_leading_columns(shm_dir: Path) -> None:
    """A snapshot whose directory starts years before its first written page (the base of
    `--earliest-night`, before the base followed the data) loads spanning only what is written."""
    writer = CalendarWriter(SharedArrays(shm_dir / "a", ARRAYS, create=True), BASE_DAY // PAGE - 60, 70)
    batch = random_batch(np.random.default_rng(3), 100, 10, clock=0)
    writer.apply(batch)
    restored = CalendarWriter(SharedArrays(shm_dir / "b", ARRAYS, create=True), BASE_DAY // PAGE, 8)
    restored.load_state(assemble(snapshot.npy_pieces(writer.snapshot_chunks(10))))
    assert restored.base_page == (BASE_DAY - 40) // PAGE
    assert restored.shared["directory"].shape[1] < 20
    assert read_all(CalendarReader(restored.shared), 10) == read_all(CalendarReader(writer.shared), 10)


def seasons(rows: int, first_day: int, clock: int) -> np.ndarray:
    """Each row's next 365 nights in 4 seasons of its own (the benchmark's calendars)."""
    rng = np.random.default_rng(rows + first_day)
    cuts = np.sort(rng.choice(np.arange(30, 335), (rows, 3)), axis=1)
    bounds = np.concatenate([np.zeros((rows, 1), int), cuts, np.full((rows, 1), 365)], axis=1)
    batch = np.zeros(rows * 4, RATE_DTYPE)
    batch["key"] = np.repeat(np.arange(rows), 4)
    batch["start"] = first_day + bounds[:, :4].ravel()
    batch["nights"] = np.diff(bounds, axis=1).ravel()
    batch["changed_at"] = clock
    batch["price"] = rng.integers(5_000, 40_000, rows * 4)
    batch["available"] = 1
    batch["min_nights"] = 2
    batch["facts"] = ALL_FACTS
    return batch


def test_uniform_pages_hold_no_slot_and_read_the_same(shm_dir: Path) -> None:
    """Seasons leave most pages uniform: they fold into the directory. A short write into one
    gives it a slot again, a season over it folds it back; every read matches the model, and a
    snapshot restores it compacted."""
    rows = 30
    writer = CalendarWriter(SharedArrays(shm_dir / "a", ARRAYS, create=True), BASE_DAY // PAGE, 30)
    reader = CalendarReader(SharedArrays(shm_dir / "a", ARRAYS, create=False))
    model: dict = {}
    first = BASE_DAY + 5  # not on a page boundary: first and last pages are partly empty
    batches = [seasons(rows, first, clock=1)]
    week = random_batch(np.random.default_rng(4), 60, rows, clock=10)
    week["start"] = first + np.random.default_rng(5).integers(0, 358, 60)
    week["nights"] = 7
    batches += [week, seasons(rows, first, clock=100)]  # newer than every week
    for number, batch in enumerate(batches):
        writer.apply(batch)
        apply_to_model(model, batch)
        reader.shared.refresh()
        assert read_all(reader, rows) == model
        assert_references_counted(writer)
        if number == 1:
            continue  # the weeks gave slots to the pages they fell in
        directory = writer.shared["directory"][:rows]
        held = np.count_nonzero(directory > 0)
        # a season calendar holds a slot for its partial first and last pages and the pages
        # where seasons change (at most 3); every other page is uniform
        assert held <= 5 * rows, (number, held)
        assert np.count_nonzero(directory < 0) >= 5 * rows
    restored = CalendarWriter(SharedArrays(shm_dir / "b", ARRAYS, create=True), BASE_DAY // PAGE, 30)
    restored.load_state(assemble(snapshot.npy_pieces(writer.snapshot_chunks(rows))))
    assert read_all(CalendarReader(restored.shared), rows) == model
    assert restored.slots == 1 + np.count_nonzero(writer.shared["directory"][:rows] > 0)
    assert_references_counted(restored)


def test_a_snapshot_of_64_night_pages_loads(shm_dir: Path) -> None:
    """Snapshots written before issue 15 held pages of 64 nights: each loads as two pages."""
    rows = 12
    writer = CalendarWriter(SharedArrays(shm_dir / "a", ARRAYS, create=True), BASE_DAY // PAGE, 30)
    writer.apply(random_batch(np.random.default_rng(8), 200, rows, clock=0))
    state = assemble(snapshot.npy_pieces(writer.snapshot_chunks(rows)))
    # The same calendar in pages of 64: one page per pair of columns (the base made even first).
    directory, base = state["directory"], int(state["base_page"][0])
    if base % 2:
        directory, base = np.concatenate([np.zeros((len(directory), 1), directory.dtype), directory], 1), base - 1
    if directory.shape[1] % 2:
        directory = np.concatenate([directory, np.zeros((len(directory), 1), directory.dtype)], 1)
    nights = np.zeros((len(directory), directory.shape[1], PAGE), np.uint32)
    held = directory > 0
    nights[held] = state["pages"][directory[held]]
    nights[directory < 0] = (-directory[directory < 0]).astype(np.uint32)[:, None]
    wide = nights.reshape(len(directory), -1, 2 * PAGE)
    used = wide.any(axis=2)
    state["pages"] = np.concatenate([np.zeros((1, 2 * PAGE), np.uint32), wide[used]])
    state["directory"] = np.zeros(used.shape, np.int32)
    state["directory"][used] = np.arange(1, used.sum() + 1)
    state["base_page"] = np.array([base // 2])
    restored = CalendarWriter(SharedArrays(shm_dir / "b", ARRAYS, create=True), BASE_DAY // PAGE, 30)
    restored.load_state(state)
    assert read_all(CalendarReader(restored.shared), rows) == read_all(CalendarReader(writer.shared), rows)
    assert_references_counted(restored)
