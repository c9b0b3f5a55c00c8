"""The highest bookable nightly price of each listing: a bound that rules out most `less_than_usual` deals unread.

`sort=deal` and `deals=only` judge every match, and a unit's usual total (the lower median of
its stays checking in within 45 days of the check-in) needs the 91 + n - 1 nights around the
stay: the largest part of such a search in a dense city (docs/performance.md). But a stay of n
nights in one currency, without fees, costs at most n x the listing's highest bookable nightly
price, so a unit whose total is above 3/4 of that cannot be a `less_than_usual` deal, whatever
its usual total is: `deals.choose` needs it at most 3/4 of the usual.

Each worker keeps the ceiling of the rows it was asked about (two arrays, 10 bytes a row) and
forgets a row's when the writer's change feed (`memory/feed.py`) names it: the writer appends a
group's rows before it answers the group, and the feed is read before the calendar, so a
ceiling never misses a change acknowledged before the search that reads it. A feed that lapped
this worker's tail forgets every ceiling.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from staystream.memory.calendar import directory_and_base
from staystream.memory.feed import FeedReader
from staystream.memory.shm import SharedArrays

NONE = -1  # no ceiling: no bookable night, or bookable nights in several currencies


class Ceilings:
    """Per row, the highest price of a bookable night of its whole calendar and its currency."""

    def __init__(self, shared: SharedArrays) -> None:
        self.feed = FeedReader(shared)
        self.lock = threading.Lock()  # searches run in threads: one reads the feed at a time
        self.price = np.zeros(0, dtype=np.int64)
        self.currency = np.zeros(0, dtype=np.uint16)
        self.known = np.zeros(0, dtype=bool)

    def of(self, shared: SharedArrays, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(price in minor units or `NONE`, currency) of each row, as of now."""
        with self.lock:
            self._forget_changed()
            if len(rows) and int(rows.max()) >= len(self.known):
                size = max(int(rows.max()) + 1, 2 * len(self.known))
                self.price = np.concatenate([self.price, np.full(size - len(self.price), NONE, dtype=np.int64)])
                self.currency = np.concatenate([self.currency, np.zeros(size - len(self.currency), np.uint16)])
                self.known = np.concatenate([self.known, np.zeros(size - len(self.known), dtype=bool)])
            todo = np.unique(rows[~self.known[rows]])
            if len(todo):
                self.price[todo], self.currency[todo] = highest_prices(shared, todo)
                self.known[todo] = True
            return self.price[rows], self.currency[rows]

    def _forget_changed(self) -> None:
        while True:
            entries, waiting = self.feed.read()
            if entries is None:
                self.known[:] = False
                return
            changed = entries["row"].astype(np.int64)
            self.known[changed[changed < len(self.known)]] = False
            if not waiting:
                return


def highest_prices(shared: SharedArrays, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(highest price of a bookable night, its currency) of each row's calendar: `NONE` where
    no night is bookable or the bookable ones are in several currencies."""
    directory, _ = directory_and_base(shared)
    price = np.full(len(rows), NONE, dtype=np.int64)
    currency = np.zeros(len(rows), dtype=np.uint16)
    inside = np.flatnonzero(rows < len(directory))
    row, page = np.nonzero(directory[rows[inside]])
    slot = directory[rows[inside][row], page].astype(np.int64)
    uniform = slot < 0  # the page's one entry, in the directory
    pages = shared.covering("pages", slot)
    entries = np.concatenate([-slot[uniform], pages[slot[~uniform]].ravel()]).astype(np.int64)
    owner = np.concatenate([row[uniform], np.repeat(row[~uniform], pages.shape[1])])
    night_price = shared.covering("entry_price", entries)[entries]
    bookable = (shared.covering("entry_available", entries)[entries] == 1) & (night_price >= 0)
    owner, night_price = inside[owner[bookable]], night_price[bookable]
    night_currency = shared.covering("entry_currency", entries)[entries[bookable]]
    np.maximum.at(price, owner, night_price)
    low = np.full(len(rows), np.iinfo(np.uint16).max, dtype=np.uint16)
    np.minimum.at(low, owner, night_currency)
    np.maximum.at(currency, owner, night_currency)
    price[low != currency] = NONE  # several currencies (or none): no single ceiling
    return price, currency


_kept: weakref.WeakKeyDictionary[SharedArrays, Ceilings] = weakref.WeakKeyDictionary()
_creating = threading.Lock()


def ceilings(shared: SharedArrays) -> Ceilings:
    """This process's ceilings of the store's rows."""
    with _creating:
        kept = _kept.get(shared)
        if kept is None:
            kept = _kept[shared] = Ceilings(shared)
        return kept
