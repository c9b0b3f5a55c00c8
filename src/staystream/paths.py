"""Where the service keeps its files: the data directory and the shared-memory directory.

Every process finds the others' files here, so each name is spelled once.
"""

from __future__ import annotations

from pathlib import Path

DATABASE_FILE = "store.sqlite3"  # the embedded store, or the PostgreSQL store's local mirror
WATCHES_FILE = "watches.sqlite3"  # embedded store: watches, their state, the event outbox
PLACES_CACHE_FILE = "places-cache.sqlite3"  # automatic matching's candidate edges, so a restart re-matches little
LOCK_FILE = "lock"  # flock'ed by the one process that owns the data directory; holds its pid
REJECTS_FILE = "import-rejects.csv"  # rows `staystream import` rejected, when it started the server itself
SNAPSHOT_DIR = "snapshot"  # the embedded store's shared-array snapshots
WRITER_SOCKET = "writer.sock"  # shared-memory directory: the writer listens, the workers connect
CONTROL_FILE = "ctl"  # shared-memory directory: the counters of `memory.shm`
METRICS_DIR = "metrics"  # shared-memory directory: prometheus-client's multiprocess files
WRITER_STATUS_FILE = "writer.json"  # shared-memory directory: the writer's restart and snapshot state
REJECTIONS_DIR = "rejections"  # shared-memory directory: each worker's latest rejection examples


def database_path(data_dir: Path) -> Path:
    return data_dir / DATABASE_FILE


def watches_path(data_dir: Path) -> Path:
    return data_dir / WATCHES_FILE


def writer_socket(shm_path: Path) -> Path:
    return shm_path / WRITER_SOCKET
