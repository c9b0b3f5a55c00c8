"""Calendar snapshots on disk: one directory per snapshot, complete or absent.

A snapshot is written to `tmp-<seq>/`, every file fsynced, then renamed to `<seq>/` and the
parent directory fsynced, so a crash leaves either the old snapshot or the new one, never half.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np


def write(directory: Path, seq: int, state: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f"tmp-{seq}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for name, array in state.items():
        with open(temporary / f"{name}.npy", "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
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


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
