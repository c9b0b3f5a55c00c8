"""Calendar snapshots: `.npy` arrays streamed a piece at a time, and their files on disk.

A snapshot is never held whole in memory: the calendar hands out copies of a few MB at a time
(`CalendarWriter.snapshot_chunks`), `npy_pieces` turns them into the bytes of one `.npy` per
array, and a backend writes each piece before asking for the next.

On disk there are two slots, `a/` and `b/`; a slot holds a complete snapshot when its
`complete` file (the snapshot's sequence) exists. A new snapshot overwrites the older slot in
place: its marker is removed first, the files are rewritten and fsynced, then the marker is
written, so a crash leaves the newer complete snapshot untouched. Overwriting rather than
deleting matters: on this machine deleting an old 512 MB snapshot stalled the WAL fsync every
acknowledgment waits for by up to 48-81 ms (the filesystem discards the freed blocks),
overwriting in place by at most 1.4-1.7 ms (`benchmarks/snapshot_disk.py`).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

FLUSH_BYTES = 1 << 20
SLOTS = ("a", "b")
MARKER = "complete"

Chunk = tuple[str, tuple[int, ...], np.ndarray]  # (array, its whole shape, the next rows)
Piece = tuple[str, memoryview]  # (array, the next bytes of its .npy file)


def npy_pieces(chunks: Iterator[Chunk]) -> Iterator[Piece]:
    """Each array as the bytes of a `.npy` file: its header, then its rows as they come."""
    current = None
    for name, shape, rows in chunks:
        if name != current:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": np.lib.format.dtype_to_descr(rows.dtype), "fortran_order": False, "shape": shape}
            )
            yield name, header.getbuffer()
            current = name
        yield name, np.ascontiguousarray(rows).reshape(-1).view(np.uint8).data


def from_npy(data: bytes) -> np.ndarray:
    """An array over the bytes of a `.npy` file, without copying them."""
    stream = io.BytesIO(data)
    np.lib.format.read_magic(stream)
    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    return np.frombuffer(data, dtype, int(np.prod(shape)), stream.tell()).reshape(shape)


class Files:
    """A snapshot being written into the older slot; `complete` makes it the current one.

    Writes go out in `FLUSH_BYTES` slices, each fdatasynced, at most `bytes_per_second`:
    a burst of hundreds of MB of dirty pages made the WAL fsync queue behind it for up to a
    second; paced, the fsync's max stays near 1 ms on this machine, a margin for slower disks."""

    def __init__(self, directory: Path, seq: int, bytes_per_second: float) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        newest = _newest(directory)
        self.directory = directory
        self.slot = directory / ("b" if newest is not None and newest[1].name == "a" else "a")
        self.seq = seq
        self.bytes_per_second = bytes_per_second
        self.slot.mkdir(exist_ok=True)
        (self.slot / MARKER).unlink(missing_ok=True)
        _fsync_directory(self.slot)
        self.written: list[str] = []
        self.fd: int | None = None
        self.offset = 0
        self.started = time.monotonic()
        self.total = 0

    def write(self, name: str, piece: memoryview) -> None:
        if not self.written or name != self.written[-1]:
            self.close()
            self.fd = os.open(self.slot / f"{name}.npy", os.O_WRONLY | os.O_CREAT, 0o644)
            self.offset = 0
            self.written.append(name)
        assert self.fd is not None
        for start in range(0, len(piece), FLUSH_BYTES):
            self.offset += os.pwrite(self.fd, piece[start : start + FLUSH_BYTES], self.offset)
            os.fdatasync(self.fd)
            self.total += min(FLUSH_BYTES, len(piece) - start)
            ahead = self.total / self.bytes_per_second - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)

    def complete(self) -> None:
        self.close()
        for stale in self.slot.glob("*.npy"):
            if stale.stem not in self.written:
                stale.unlink()
        marker = self.slot / f"{MARKER}.tmp"
        with open(marker, "w") as f:
            f.write(str(self.seq))
            f.flush()
            os.fsync(f.fileno())
        os.rename(marker, self.slot / MARKER)
        _fsync_directory(self.slot)
        for legacy in self.directory.iterdir():  # snapshots of the earlier `<seq>/` layout
            if legacy.name not in SLOTS:
                shutil.rmtree(legacy, ignore_errors=True)

    def close(self) -> None:
        """Finish the file being written: cut what an older, longer snapshot left, fsync."""
        if self.fd is not None:
            os.ftruncate(self.fd, self.offset)
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None


def load_latest(directory: Path) -> tuple[int, dict[str, np.ndarray]] | None:
    """The newest complete snapshot as (seq, arrays mapped from its files), or None."""
    newest = _newest(directory)
    if newest is None:
        return None
    seq, path = newest
    return seq, {f.stem: np.load(f, mmap_mode="r") for f in path.glob("*.npy")}


def _newest(directory: Path) -> tuple[int, Path] | None:
    """(seq, directory) of the newest complete snapshot: a slot with its marker, or a
    directory of the earlier layout (named by its seq, complete once renamed so)."""
    found = []
    for path in directory.iterdir() if directory.exists() else ():
        if path.name in SLOTS and (path / MARKER).exists():
            found.append((int((path / MARKER).read_text()), path))
        elif path.name.isdigit():
            found.append((int(path.name), path))
    return max(found, default=None)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
