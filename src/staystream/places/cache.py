"""The places cache: the candidate edges of automatic matching, kept in a SQLite file so that a
restart scores only the listings that changed since (matching is most of what rebuilding the
places costs).

A cache, not a store: the places are a pure function of the listings and links, which the
store keeps. Each save is one transaction that brings the listings it names to the graph's
state (`PlaceGraph.unsaved`), so after any crash the file holds, for each listing it has, a
fingerprint and the edges it had at its last save. On restart a listing whose fingerprint
still matches keeps its edges to the others that match (`PlaceGraph.restore`); any other is
scored again. The file names the matching code it was made with: other code, an unreadable
file, or none at all, and everything is matched again.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path

from staystream.places import graph, grid, matching
from staystream.places.types import MatchChanges, SavedMatches

log = logging.getLogger("staystream.places")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS listings (key TEXT PRIMARY KEY, fingerprint INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edges (
    a TEXT NOT NULL, b TEXT NOT NULL, score REAL NOT NULL, metres REAL NOT NULL, PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_b ON edges (b);
"""


def code_version() -> str:
    """A hash of the code that decides candidate edges: saved edges are only as good as it."""
    digest = hashlib.blake2b(digest_size=16)
    for module in (matching, graph, grid):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


class PlacesCache:
    """One cache file, opened by its one writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:
            self._db = self._replace(error)

    def _replace(self, error: sqlite3.DatabaseError) -> sqlite3.Connection:
        """A damaged file goes: it only saves work."""
        log.warning("places cache unreadable, matching everything again",
                    extra={"path": str(self.path), "error": str(error)})
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        # WAL, synchronous NORMAL: a killed process loses no committed save; a power cut may
        # lose the last ones, which only means more to score again
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return db

    def load(self) -> SavedMatches:
        """What the file saved; nothing if it was made by other code or cannot be read (it is
        then emptied, to be filled again by the next saves)."""
        version = code_version()
        try:
            found = self._db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
            if found is not None and found[0] == version:
                return SavedMatches(
                    dict(self._db.execute("SELECT key, fingerprint FROM listings").fetchall()),
                    self._db.execute("SELECT a, b, score, metres FROM edges").fetchall(),
                )
        except sqlite3.DatabaseError as error:
            self._db.close()
            self._db = self._replace(error)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM listings")
            self._db.execute("DELETE FROM edges")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (version,))
        return SavedMatches({}, [])

    def save(self, changes: MatchChanges) -> None:
        """One transaction: the rows and edges of every listing `changes` names are replaced."""
        if not (changes.matched or changes.dropped):
            return
        keys = [(key,) for key, _ in changes.matched] + [(key,) for key in changes.dropped]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM listings WHERE key = ?", keys)
            self._db.executemany("DELETE FROM edges WHERE a = ?", keys)
            self._db.executemany("DELETE FROM edges WHERE b = ?", keys)
            self._db.executemany("INSERT INTO listings VALUES (?, ?)", changes.matched)
            self._db.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?)",
                                 [(a, b, score, metres) if a < b else (b, a, score, metres)
                                  for a, b, score, metres in changes.edges])

    def close(self) -> None:
        self._db.close()
