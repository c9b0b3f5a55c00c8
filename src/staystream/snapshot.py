"""Calendar snapshots: `.npy` arrays streamed a piece at a time, and their files on disk.

A snapshot is never held whole in memory: the calendar hands out copies of a few MB at a time
(`CalendarWriter.snapshot_chunks`), `npy_pieces` turns them into the bytes of one `.npy` per
array, and a backend writes each piece before asking for the next. On disk a snapshot is
written to `tmp-<seq>/`, every file fsynced, then renamed to `<seq>/` and the parent directory
fsynced, so a crash leaves either the old snapshot or the new one, never half.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

FLUSH_BYTES = 8 << 20

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
        yield name, memoryview(np.ascontiguousarray(rows).reshape(-1).view(np.uint8))


def from_npy(data: bytes) -> np.ndarray:
    """An array over the bytes of a `.npy` file, without copying them."""
    stream = io.BytesIO(data)
    np.lib.format.read_magic(stream)
    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    return np.frombuffer(data, dtype, int(np.prod(shape)), stream.tell()).reshape(shape)


class Files:
    """A snapshot being written to `tmp-<seq>/`; `complete` makes it the current one."""

    def __init__(self, directory: Path, seq: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.seq = seq
        self.temporary = directory / f"tmp-{seq}"
        shutil.rmtree(self.temporary, ignore_errors=True)
        self.temporary.mkdir()
        self.name: str | None = None
        self.file: BinaryIO | None = None

    def write(self, name: str, piece: memoryview) -> None:
        if name != self.name:
            self.close()
            self.name, self.file = name, open(self.temporary / f"{name}.npy", "wb")
        assert self.file is not None
        _write_flushed(self.file, piece)

    def complete(self) -> None:
        self.close()
        _fsync_directory(self.temporary)
        final = self.directory / str(self.seq)
        os.rename(self.temporary, final)
        _fsync_directory(self.directory)
        for old in self.directory.iterdir():
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        """Close the file being written (fsynced); an incomplete snapshot stays `tmp-` and is
        removed by the next one to complete."""
        if self.file is not None:
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None


def load_latest(directory: Path) -> tuple[int, dict[str, np.ndarray]] | None:
    """The newest complete snapshot as (seq, arrays mapped from its files), or None."""
    if not directory.exists():
        return None
    complete = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
    if not complete:
        return None
    seq = max(complete)
    path = directory / str(seq)
    return seq, {f.stem: np.load(f, mmap_mode="r") for f in path.glob("*.npy")}


def _write_flushed(f: BinaryIO, data: memoryview) -> None:
    """Written and flushed a slice at a time: one burst of hundreds of MB of dirty pages made
    the store's own WAL fsync, the one every acknowledgment waits for, queue behind it for up
    to a second."""
    for start in range(0, len(data), FLUSH_BYTES):
        f.write(data[start : start + FLUSH_BYTES])
        f.flush()
        os.fdatasync(f.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
