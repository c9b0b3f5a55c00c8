"""Which watches a change can affect, without looking at every watch.

A watch's area box is cut into grid cells (`CELL_DEGREES`) and its stay into buckets of
`BUCKET_NIGHTS` nights; the index holds (cell x bucket, watch) pairs sorted by key, so each changed
row finds its watches with two binary searches per bucket its changed nights touch. (Cells alone
put thousands of watches of a dense city on every change; the dates cut that a hundredfold.)
Watches added since the last full build go to a second, smaller sorted level, re-sorted when it
is next read; it is merged into the first once it holds an eighth as many watches (so a burst of
new watches costs amortized O(log n) each). An area too large for cells (`MAX_CELLS`) is checked
directly against every change. A removed watch is only marked dead until the next build. Candidates are then
checked exactly against the box and the dates: a watch is affected by a row inside its box whose
changed nights overlap its stay (a description or delist overlaps every stay).

Price: within a key, watches are sorted by their max_price per night (quantized, `_levels`), so a
change whose row costs more a night than a watch allows gathers it not at all: a change may come
with a floor, the least any night of the row costs in its window (the buckets its nights touch
and one each side, where every stay of at most `PRUNED_NIGHTS` nights that overlaps them lies).
Such a stay of n nights costs at least n x floor (prices and fees are never negative), so the
watch is affected only if floor <= its bound / n. Longer stays are never pruned by price.
"""

from __future__ import annotations

import numpy as np

from staystream.search.engine import Area

CELL_DEGREES = 0.01  # ~1.1 km of latitude: a watch of a 1 km radius covers about 3 x 3 cells
LAT_CELLS, LON_CELLS = int(180 / CELL_DEGREES) + 1, int(360 / CELL_DEGREES)
SPACE = LAT_CELLS * LON_CELLS
BUCKET_NIGHTS = 8
MAX_KEYS = 4096  # a watch of more keys (a country, a long stay) is checked directly on every change
MERGE_MIN = 4096  # recent watches merged into the main level past max(this, main / 8)
PRUNED_NIGHTS = BUCKET_NIGHTS  # stays up to this long lie in a change's window: pruned by price
LEVEL_BITS = 16  # a key's watches sorted by their per-night bound quantized to this many bits
TOP_LEVEL = (1 << LEVEL_BITS) - 1  # no bound (or a stay too long to prune): every change gathers it
LEVELS_PER_OCTAVE = 256  # quantization steps per doubling of the bound: 0.3% apart


def _levels(value: np.ndarray, round_up: bool) -> np.ndarray:
    """Per-night prices as sortable levels, monotonic: rounded up for bounds, down for floors (with
    slack for float error), so floor <= bound always gives level(floor) <= level(bound)."""
    value = np.asarray(value, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.log2(np.where(round_up, value, value * (1 - 1e-9))) * LEVELS_PER_OCTAVE
    stepped = np.ceil(scaled) if round_up else np.floor(scaled)
    middle = np.clip(np.nan_to_num(stepped, nan=0, posinf=0, neginf=0) + (1 << (LEVEL_BITS - 1)), 1, TOP_LEVEL - 1)
    levels = np.where(value > 0, middle, 0)
    levels = np.where(np.isposinf(value) | (round_up & np.isnan(value)), TOP_LEVEL, levels)
    result: np.ndarray = levels.astype(np.int64)
    return result


def _cells(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat_cell = np.floor((lat + 90) / CELL_DEGREES).astype(np.int64)
    lon_cell = np.minimum(np.floor((lon + 180) / CELL_DEGREES).astype(np.int64), LON_CELLS - 1)
    return lat_cell * LON_CELLS + lon_cell


class WatchIndex:
    def __init__(self) -> None:
        size = 1024
        self.min_lat = np.zeros(size)
        self.max_lat = np.zeros(size)
        self.lon = np.full((size, 4), np.nan)  # up to two [low, high] longitude ranges
        self.checkin = np.zeros(size, np.int64)
        self.end = np.zeros(size, np.int64)  # checkin + nights
        self.night_bound = np.full(size, np.inf)  # max_price / nights, inf: not pruned by price
        self.alive = np.zeros(size, bool)
        self.main: list[int] = []  # watches of the main level
        self.recent: list[int] = []  # watches of the second level
        self.levels: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted cell key + level, watch of each)
        self.stale = False  # `levels` misses recent watches
        self.buckets = (0, -1)  # the lowest and highest bucket any indexed watch covers
        self.wide: list[int] = []  # watches whose box has too many cells: always checked
        self.cell_lists: dict[int, np.ndarray] = {}

    def add(self, watch: int, area: Area, checkin: int, nights: int, bound: float = np.inf) -> None:
        """Index watch number `watch` (small dense integers: they index arrays), whose stays total
        at most `bound` (in the unit of `affected`'s floors; inf: any)."""
        if watch >= len(self.alive):
            self._grow(max(watch + 1, 2 * len(self.alive)))
        self.night_bound[watch] = bound / nights if nights <= PRUNED_NIGHTS else np.inf
        self.min_lat[watch], self.max_lat[watch] = area.min_lat, area.max_lat
        self.lon[watch] = np.nan
        for i, (low, high) in enumerate(area.lon_ranges):
            self.lon[watch, 2 * i : 2 * i + 2] = low, high
        self.checkin[watch], self.end[watch] = checkin, checkin + nights
        self.alive[watch] = True
        cells = self._cells_of(watch)
        if cells is not None:
            buckets = np.arange(checkin // BUCKET_NIGHTS, (checkin + nights - 1) // BUCKET_NIGHTS + 1, dtype=np.int64)
            cells = (buckets[:, None] * SPACE + cells[None, :]).ravel()
            if len(cells) > MAX_KEYS:
                cells = None
        if cells is None:
            self.wide.append(watch)
        else:
            self.cell_lists[watch] = cells
            self.recent.append(watch)
            self.stale = True
            low, high = int(cells.min()) // SPACE, int(cells.max()) // SPACE
            self.buckets = (low, high) if self.buckets[0] > self.buckets[1] else (
                min(low, self.buckets[0]), max(high, self.buckets[1]))

    def set_bounds(self, watches: list[int], bounds: np.ndarray) -> None:
        """New totals' bounds (a new FX table moves them): every level is sorted again."""
        for watch, bound in zip(watches, np.asarray(bounds, float).tolist(), strict=True):
            nights = self.end[watch] - self.checkin[watch]
            self.night_bound[watch] = bound / nights if nights <= PRUNED_NIGHTS else np.inf
        self.recent = [*self.main, *self.recent]
        self.main, self.levels, self.stale = [], [], True

    def remove(self, watch: int) -> None:
        self.alive[watch] = False
        self.cell_lists.pop(watch, None)
        if watch in self.wide:
            self.wide.remove(watch)

    def affected(
        self, rows: np.ndarray, lat: np.ndarray, lon: np.ndarray, first: np.ndarray, end: np.ndarray,
        floor: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(watch, position in `rows`) pairs of every live watch whose box holds the row, whose
        stay overlaps the row's changed nights [first, end), and, given `floor` (the least a
        night of the row costs in the change's window: see above; 0: unknown), whose bound allows it.
        A pair may repeat (a watch in several cells or buckets the row's nights reach): the
        caller dedupes, once, with its own key."""
        if self.stale:
            self._build()
        floor = np.zeros(len(rows)) if floor is None else np.asarray(floor, float)
        parts_w, parts_p = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        if self.levels and self.buckets[0] <= self.buckets[1]:
            # Each row once per bucket its changed nights touch (clamped to the watches' buckets).
            low = np.maximum(np.asarray(first, np.int64) // BUCKET_NIGHTS, self.buckets[0])
            high = np.minimum((np.asarray(end, np.int64) - 1) // BUCKET_NIGHTS, self.buckets[1])
            spans = np.maximum(high - low + 1, 0)
            row_of = np.repeat(np.arange(len(rows)), spans)
            bucket = low[row_of] + np.arange(len(row_of)) - np.repeat(np.cumsum(spans) - spans, spans)
            keys_wanted = (bucket * SPACE + _cells(lat, lon)[row_of]) << LEVEL_BITS
            # A key's watches run from the highest level down: those at or above the floor's.
            lowest = keys_wanted | (TOP_LEVEL - _levels(floor, round_up=False)[row_of])
            for keys, owners in self.levels:
                starts = np.searchsorted(keys, keys_wanted, "left")
                counts = np.searchsorted(keys, lowest, "right") - starts
                offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
                parts_w.append(owners[np.repeat(starts, counts) + offsets].astype(np.int64))
                parts_p.append(np.repeat(row_of, counts))
        everywhere = np.arange(len(rows))
        for w in self.wide:
            parts_w.append(np.full(len(rows), w, np.int64))
            parts_p.append(everywhere)
        watch, position = np.concatenate(parts_w), np.concatenate(parts_p)
        keep = self._overlaps(watch, lat[position], lon[position], first[position], end[position])
        keep &= floor[position] <= self.night_bound[watch]
        return watch[keep], position[keep]

    def brute_force(
        self, rows: np.ndarray, lat: np.ndarray, lon: np.ndarray, first: np.ndarray, end: np.ndarray,
        floor: np.ndarray | None = None,
    ) -> set[tuple[int, int]]:
        """`affected`, by checking every watch against every row (the tests' reference)."""
        floor = np.zeros(len(rows)) if floor is None else np.asarray(floor, float)
        found = set()
        for watch in np.flatnonzero(self.alive).tolist():
            w = np.full(len(rows), watch)
            allowed = floor <= self.night_bound[watch]
            for position in np.flatnonzero(self._overlaps(w, lat, lon, first, end) & allowed).tolist():
                found.add((watch, position))
        return found

    def affects(
        self, watch: np.ndarray, lat: np.ndarray, lon: np.ndarray, first: np.ndarray, end: np.ndarray
    ) -> np.ndarray:
        """Which (watch, changed entry) pairs `affected` would return: the live watch's box holds
        the row and its stay overlaps the changed nights (a watch never indexed: none)."""
        known = np.flatnonzero(watch < len(self.alive))
        # The dates first: they rule out most pairs, and cost a fraction of the box's checks.
        w = watch[known]
        known = known[(first[known] < self.end[w]) & (end[known] > self.checkin[w])]
        found = np.zeros(len(watch), bool)
        found[known] = self._overlaps(watch[known], lat[known], lon[known], first[known], end[known])
        return found

    def in_box(self, watch: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Which (watch, point) pairs have the point inside the live watch's area box."""
        every = np.full(len(watch), np.iinfo(np.int64).min), np.full(len(watch), np.iinfo(np.int64).max)
        return self._overlaps(watch, lat, lon, *every)

    def _overlaps(
        self, watch: np.ndarray, lat: np.ndarray, lon: np.ndarray, first: np.ndarray, end: np.ndarray
    ) -> np.ndarray:
        ranges = self.lon[watch]
        in_lon = ((lon >= ranges[:, 0]) & (lon <= ranges[:, 1])) | ((lon >= ranges[:, 2]) & (lon <= ranges[:, 3]))
        overlaps: np.ndarray = (
            self.alive[watch] & (lat >= self.min_lat[watch]) & (lat <= self.max_lat[watch]) & in_lon
            & (first < self.end[watch]) & (end > self.checkin[watch])
        )
        return overlaps

    def _cells_of(self, watch: int) -> np.ndarray | None:
        low_lat, high_lat = _cells(np.array([self.min_lat[watch], self.max_lat[watch]]), np.zeros(2)) // LON_CELLS
        rows = np.arange(low_lat, high_lat + 1)
        columns = []
        for i in (0, 2):
            low, high = self.lon[watch, i : i + 2]
            if not np.isnan(low):
                west, east = _cells(np.zeros(2), np.array([low, high])) % LON_CELLS
                columns.append(np.arange(west, east + 1))
        column = np.concatenate(columns)
        if len(rows) * len(column) > MAX_KEYS:
            return None
        keys: np.ndarray = (rows[:, None] * LON_CELLS + column[None, :]).ravel()
        return keys

    def _build(self) -> None:
        """Sort the recent level again, or merge it into the main one once it is large."""
        self.recent = [w for w in self.recent if self.alive[w]]
        if len(self.recent) > max(MERGE_MIN, len(self.main) // 8):
            self.main = [w for w in self.main if self.alive[w]] + self.recent
            self.recent = []
            self.levels = [self._sorted(self.main)]
        elif self.levels:
            self.levels = [self.levels[0], self._sorted(self.recent)]
        else:
            self.levels = [self._sorted(self.main), self._sorted(self.recent)]
        self.stale = False

    def _sorted(self, watches: list[int]) -> tuple[np.ndarray, np.ndarray]:
        watches = [w for w in watches if self.alive[w]]
        if not watches:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        owners = np.repeat(np.array(watches, np.int32), [len(self.cell_lists[w]) for w in watches])
        level = TOP_LEVEL - _levels(self.night_bound[owners], round_up=True)
        keys = (np.concatenate([self.cell_lists[w] for w in watches]) << LEVEL_BITS) | level
        order = np.argsort(keys, kind="stable")
        return keys[order], owners[order]

    def _grow(self, size: int) -> None:
        old = len(self.alive)
        for name, fill in (("min_lat", 0), ("max_lat", 0), ("checkin", 0), ("end", 0), ("alive", 0),
                           ("night_bound", np.inf)):
            array = getattr(self, name)
            grown = np.full(size, fill, array.dtype)
            grown[:old] = array
            setattr(self, name, grown)
        lon = np.full((size, 4), np.nan)
        lon[:old] = self.lon
        self.lon = lon
