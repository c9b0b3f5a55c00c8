"""`watches/store.py` on a file made before watches had `changes`: it opens as it is, its watches
keep the contract's events only, and new ones may opt in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from staystream.watches import store
from staystream.watches.store import Watch

BEFORE_CHANGES = """
CREATE TABLE watches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, secret TEXT NOT NULL,
    params TEXT NOT NULL, webhook TEXT, client TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
INSERT INTO watches (id, secret, params, webhook, client, created_at, expires_at)
    VALUES ('old', 's', '{}', NULL, '127.0.0.1', 0, 4e9);
"""


def test_a_file_from_before_changes_opens_with_its_watches(tmp_path: Path) -> None:
    path = tmp_path / "watches.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(BEFORE_CHANGES)
    connection = store.connect(path)
    try:
        found = store.find(connection, "old")
        assert found is not None and not found.changes
        new = Watch(0, "new", "s", "{}", None, 4e9, True)
        assert store.create(connection, [(new, "127.0.0.1")], per_client=10, total=10) == [None]
        assert [(w.id, bool(w.changes)) for w in store.watches_since(connection, 0, (0, 1))] == [
            ("old", False), ("new", True)]
    finally:
        connection.close()
    again = store.connect(path)  # opened again: nothing left to add
    try:
        assert [name for _, name, *_ in again.execute("PRAGMA table_info(watches)")].count("changes") == 1
    finally:
        again.close()
