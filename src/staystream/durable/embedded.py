"""Where the writer makes things durable: the interface, and its embedded SQLite implementation.

The writer is the same program whatever holds its durable state. A backend keeps listings
(with their row numbers), the log of rate events since the last calendar snapshot, the snapshot
itself, and settings. `commit_group` returns only once the group survives a crash of any
process; everything else follows from that and from last-writer-wins making replay idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from staystream.durable import snapshot, sqlite
from staystream.durable.lock import lock_directory
from staystream.events.types import Commit, Fee, Link
from staystream.paths import SNAPSHOT_DIR, database_path


class Durable(Protocol):
    async def recover(self) -> Recovered: ...

    async def commit_group(self, commit: Commit) -> None: ...

    async def write_snapshot(self, seq: int, rows: int, pieces: Iterator[snapshot.Piece]) -> None:
        """Store the calendar as of `seq` (fuzzy, see `CalendarWriter.snapshot_chunks`) for
        listing rows [0, rows), taking one piece at a time: the next is copied only when
        asked for, so writes go on in between and no second calendar is ever in memory."""

    async def log_after(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """The log rows after `seq` still kept, in order (the history copies what it lacks)."""

    async def close(self) -> None: ...


class Recovered:
    """What a backend hands the writer at start-up, in the order the writer needs it."""

    def __init__(self, snapshot: tuple[int, dict[str, np.ndarray]] | None, keys: list[tuple[int, str, str]],
                 columns: list[tuple[Any, ...]], log: Iterator[tuple[int, bytes]],
                 fees: list[tuple[int, Fee]] | None = None, places: list[tuple[Any, ...]] | None = None,
                 links: list[Link] | None = None) -> None:
        self.snapshot = snapshot
        self.keys = keys
        self.columns = columns
        self.log = log
        self.fees = fees or []  # by row, tombstones included
        self.places = places or []  # the listings in search, as `sqlite.place_listings` reads them
        self.links = links or []


class SqliteDurable:
    """The embedded default: one SQLite file (WAL, synchronous=FULL) and snapshot files."""

    def __init__(self, data_dir: Path, snapshot_bytes_per_second: float) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_directory(data_dir)
        self.path = database_path(data_dir)
        self.snapshot_dir = data_dir / SNAPSHOT_DIR
        self.snapshot_bytes_per_second = snapshot_bytes_per_second
        self.connection = sqlite.connect_writer(self.path)
        # One thread owns the connection: commits run there while the event loop goes on.
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite")

    async def recover(self) -> Recovered:
        found = snapshot.load_latest(self.snapshot_dir)
        after = 0 if found is None else found[0]
        return Recovered(
            found,
            list(sqlite.all_keys(self.connection)),
            list(sqlite.listing_columns(self.connection)),
            sqlite.log_after(self.connection, after),
            fees=sqlite.all_fees(self.connection),
            places=list(sqlite.place_listings(self.connection)),
            links=sqlite.links(self.connection),
        )

    async def commit_group(self, commit: Commit) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, sqlite.commit_group, self.connection, commit)

    async def log_after(self, seq: int) -> Iterator[tuple[int, bytes]]:
        return sqlite.log_after(self.connection, seq)

    async def write_snapshot(self, seq: int, rows: int, pieces: Iterator[snapshot.Piece]) -> None:
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(
            None, snapshot.Files, self.snapshot_dir, seq, self.snapshot_bytes_per_second
        )
        try:
            for name, piece in pieces:
                await loop.run_in_executor(None, files.write, name, piece)
            await loop.run_in_executor(None, files.complete)
        finally:
            files.close()
        while await loop.run_in_executor(self.thread, sqlite.truncate_log, self.connection, seq, 16):
            pass

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, self.connection.close)
        self.thread.shutdown()
