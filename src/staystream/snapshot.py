"""Calendar snapshots on disk: one directory per snapshot, complete or absent.

A snapshot is written to `tmp-<seq>/`, every file fsynced, then renamed to `<seq>/` and the
parent directory fsynced, so a crash leaves either the old snapshot or the new one, never half.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

import numpy as np

FLUSH_BYTES = 8 << 20


def write(directory: Path, seq: int, state: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f"tmp-{seq}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for name, array in state.items():
        with open(temporary / f"{name}.npy", "wb") as f:
            _write_array(f, array)
    _fsync_directory(temporary)
    final = directory / str(seq)
    os.rename(temporary, final)
    _fsync_directory(directory)
    for old in directory.iterdir():
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def load_latest(directory: Path) -> tuple[int, dict[str, np.ndarray]] | None:
    """The newest complete snapshot as (seq, arrays), or None."""
    if not directory.exists():
        return None
    complete = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
    if not complete:
        return None
    seq = max(complete)
    path = directory / str(seq)
    return seq, {f.stem: np.load(f) for f in path.glob("*.npy")}


def _write_array(f: BinaryIO, array: np.ndarray) -> None:
    """An .npy file written and flushed a slice at a time: one burst of hundreds of MB of dirty
    pages made the store's own WAL fsync, the one every acknowledgment waits for, queue behind
    it for up to a second."""
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    data = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    for start in range(0, len(data), FLUSH_BYTES):
        f.write(data[start : start + FLUSH_BYTES])
        f.flush()
        os.fdatasync(f.fileno())
    os.fsync(f.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
