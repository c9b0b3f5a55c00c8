"""Arrays in shared memory: one writer creates and grows them, every process maps them.

Each array lives in its own file under a tmpfs directory (`/dev/shm/...`), named
`{name}.{generation}`. A small control file holds, per array, its generation and row width, plus
a few shared counters. Growing an array writes a new generation and unlinks the old file; a
reader calls `refresh()` at the start of each request and remaps what changed. A reader that
still holds an old mapping keeps valid (if stale) memory: Linux frees it at the last unmap.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from staystream.paths import CONTROL_FILE

COUNTERS = 32  # control slots past the per-array ones, indexed by the `Counter` constants


class Counter:
    """Indices of the shared counters in the control file."""

    ROWS = 0  # listing rows in use
    SLOTS = 1  # calendar page slots in use
    ENTRIES = 2  # calendar entries in use (high-water mark)
    SEQ = 3  # last applied commit sequence
    BACKLOG = 4  # events handed to the writer and not yet answered
    BASE_PAGE = 5  # page number of directory column 0
    FX_GENERATION = 6  # bumped when the FX table is replaced
    READY = 7  # 1 once the writer recovered the store
    MOVED = 8  # entries in the listings' `moved` log (rows whose coordinates were set)
    HEARTBEAT = 9  # the writer's CLOCK_MONOTONIC in ms, set twice a second: a stuck writer shows
    FEED_HEAD = 10  # entries ever appended to the change feed (memory/feed.py)
    WATCHES_CHANGED = 11  # bumped by a worker that created or deleted a watch: the watcher reloads
    OUTBOX = 12  # bumped by the watcher after it committed watch events: SSE streams read them
    HISTORY_SEQ = 13  # the last commit sequence the price history holds (`durable.history`)
    FEE_SLOTS = 16  # fee arena slots in use (memory/fees.py)
    DIRECTORY_SHIFTS = 17  # odd while the writer moves the calendar directory's base (memory/calendar.py)


class SharedArrays:
    def __init__(self, path: Path, specs: dict[str, np.dtype], create: bool) -> None:
        self.path = path
        self.names = list(specs)
        self.dtypes = {name: np.dtype(dtype) for name, dtype in specs.items()}
        self.arrays: dict[str, np.ndarray] = {}
        self._generations: dict[str, int] = {}
        control_size = (2 * len(self.names) + COUNTERS) * 8
        if create:
            path.mkdir(parents=True, exist_ok=True)
            with open(path / CONTROL_FILE, "wb") as f:
                f.truncate(control_size)
        self._control_map = _map(path / CONTROL_FILE, writable=True)
        self.control = np.frombuffer(self._control_map, dtype=np.int64)
        self.counters = self.control[2 * len(self.names) :]

    def _slot(self, name: str) -> int:
        return 2 * self.names.index(name)

    def allocate(self, name: str, rows: int, width: int = 1, source: np.ndarray | None = None) -> np.ndarray:
        """(Writer) a new generation of `name` with `rows` capacity, filled from `source`."""
        slot = self._slot(name)
        generation = int(self.control[slot]) + 1
        dtype = self.dtypes[name]
        file = self.path / f"{name}.{generation}"
        with open(file, "wb") as f:
            f.truncate(max(rows * width * dtype.itemsize, 1))
        array = _as_array(_map(file, writable=True), dtype, rows, width)
        if source is not None:
            if width == 1 or source.ndim == 1:
                array[: len(source)] = source
            else:
                array[: source.shape[0], : source.shape[1]] = source
        old = self.path / f"{name}.{generation - 1}"
        self.control[slot + 1] = width
        self.control[slot] = generation
        if old.exists():
            old.unlink()
        self.arrays[name] = array
        self._generations[name] = generation
        return array

    def grow(self, name: str, rows: int) -> np.ndarray:
        """(Writer) at least `rows` capacity (doubling), keeping the contents.

        The file is extended in place and renamed to the next generation: nothing is copied
        (a copy of a few hundred MB stalled every write behind it), and a reader's old mapping
        stays valid, over the same memory."""
        current = self.arrays[name]
        width = 1 if current.ndim == 1 else current.shape[1]
        capacity = max(rows, 2 * len(current), 1024)
        slot = self._slot(name)
        generation = int(self.control[slot]) + 1
        file = self.path / f"{name}.{generation}"
        os.truncate(self.path / f"{name}.{generation - 1}", capacity * width * self.dtypes[name].itemsize)
        os.rename(self.path / f"{name}.{generation - 1}", file)
        array = _as_array(_map(file, writable=True), self.dtypes[name], capacity, width)
        self.control[slot] = generation
        self.arrays[name] = array
        self._generations[name] = generation
        return array

    def refresh(self) -> None:
        """(Reader) remap every array whose generation changed since the last call."""
        for name in self.names:
            self._remap(name)

    def covering(self, name: str, index: np.ndarray) -> np.ndarray:
        """(Reader) `name`, remapped if the writer grew it past every position in `index` since
        this process mapped it."""
        array = self.arrays[name]
        if index.size and int(index.max()) >= len(array):
            self.refresh()
            array = self.arrays[name]
        return array

    def current(self, name: str) -> np.ndarray:
        """(Reader) `name` as its latest generation, remapped if it changed since it was mapped."""
        self._remap(name)
        return self.arrays[name]

    def _remap(self, name: str) -> None:
        slot = self._slot(name)
        generation = int(self.control[slot])
        while generation and generation != self._generations.get(name):
            width = int(self.control[slot + 1])
            try:
                mapped = _map(self.path / f"{name}.{generation}", writable=False)
            except FileNotFoundError:  # grown again meanwhile: read the control again
                generation = int(self.control[slot])
                continue
            rows = len(mapped) // (width * self.dtypes[name].itemsize)
            self.arrays[name] = _as_array(mapped, self.dtypes[name], rows, width)
            self._generations[name] = generation

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def _map(file: Path, writable: bool) -> mmap.mmap:
    fd = os.open(file, os.O_RDWR if writable else os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
    finally:
        os.close(fd)


def _as_array(buffer: mmap.mmap, dtype: np.dtype, rows: int, width: int) -> np.ndarray:
    array = np.frombuffer(buffer, dtype=dtype, count=rows * width)
    return array if width == 1 else array.reshape(rows, width)
