"""The data directory's owner: one process at a time may write a store, and others can ask who it is."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from staystream.paths import LOCK_FILE


class StoreLocked(RuntimeError):
    """Another server already owns this store (its data directory, or its PostgreSQL database)."""


def lock_directory(data_dir: Path) -> int:
    """An exclusive lock held for the life of the process: two writers on one store corrupt it."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreLocked(
            f"data dir '{data_dir}' is in use by another staystream (pid {owner}); stop it, "
            "or point this one at another --data-dir (or use `import --url` against the running one)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def owner_of(data_dir: Path) -> str | None:
    """The pid holding the data dir's lock (a running server), or None when it is free."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)  # releases our lock too
    return None
