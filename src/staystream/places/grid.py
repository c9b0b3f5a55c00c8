"""A spatial grid of listing keys: the candidates of a point are in a few cells around it.

Rows are bands of latitude `radius` metres high; each row is cut into equal cells at least
`radius` metres wide at the worst latitude of it and its neighbours (so rows near the poles
have few cells), and the cells of a row wrap around the antimeridian. The cells near a cell
cover every point within `radius` of any point of it; callers filter the exact distance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

import numpy as np

METRES_PER_DEGREE = 6_371_008.8 * math.pi / 180.0

Cell = tuple[int, int]
Item = TypeVar("Item", bound=Hashable)


class Grid(Generic[Item]):
    """Items (a graph's listing slots) by cell; `cells_near(cell)` gives the cells within
    `radius_m` of it. A cell holds a list: 8 bytes an item (a set took ~80), and a removal
    scans one cell."""

    def __init__(self, radius_m: float) -> None:
        self._row_height = radius_m / METRES_PER_DEGREE
        self._rows = math.ceil(180.0 / self._row_height)
        self._cells: dict[Cell, list[Item]] = {}
        self._counts: dict[int, int] = {}  # by row, filled as rows are used

    def _count(self, row: int) -> int:
        count = self._counts.get(row)
        if count is None:
            count = self._counts[row] = self._row_cells(row)
        return count

    def _row_cells(self, row: int) -> int:
        """How many equal cells of row `row`, each at least the row height wide in metres.

        Widths are measured one row further from the equator than the row reaches, so that a
        point of a neighbouring row is covered too.
        """
        south = -90.0 + (row - 1) * self._row_height
        worst = min(90.0, max(abs(south), abs(south + 3 * self._row_height)))
        width = self._row_height / max(math.cos(math.radians(worst)), 1e-9)
        return max(1, math.floor(360.0 / width))

    def _row(self, lat: float) -> int:
        return min(self._rows - 1, int((lat + 90.0) / self._row_height))

    def cell(self, lat: float, lon: float) -> Cell:
        row = self._row(lat)
        count = self._count(row)
        return row, int((lon + 180.0) / 360.0 * count) % count

    def add(self, item: Item, lat: float, lon: float) -> None:
        """Add an item not in the grid."""
        self._cells.setdefault(self.cell(lat, lon), []).append(item)

    def add_many(self, items: Sequence[Item], lat: np.ndarray, lon: np.ndarray) -> None:
        """`add` of many items at once: the cells computed in numpy, as `cell` does one."""
        rows = np.minimum(self._rows - 1, ((lat + 90.0) / self._row_height).astype(np.int64))
        used, inverse = np.unique(rows, return_inverse=True)
        counts = np.array([self._count(row) for row in used.tolist()], np.int64)[inverse]
        index = ((lon + 180.0) / 360.0 * counts).astype(np.int64) % counts
        codes = rows * (1 << 32) + index
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for part in np.split(order, bounds) if len(order) else []:
            code = int(codes[part[0]])
            self._cells.setdefault((code >> 32, code & 0xFFFFFFFF), []).extend(items[i] for i in part.tolist())

    def remove(self, item: Item, lat: float, lon: float) -> None:
        cell = self.cell(lat, lon)
        items = self._cells[cell]
        items.remove(item)
        if not items:
            del self._cells[cell]

    def cells_near(self, cell: Cell) -> list[Cell]:
        """The occupied cells that may hold points within the radius of a point of `cell`."""
        row, index = cell
        count = self._count(row)
        west, east = index / count, (index + 1) / count  # the cell's span, in turns of longitude
        found: list[Cell] = []
        for r in range(max(0, row - 1), min(self._rows, row + 2)):
            other = self._count(r)
            # One cell beyond each side is enough: cells are at least a radius wide.
            first, last = math.floor(west * other) - 1, math.floor(east * other) + 1
            indices = range(other) if last - first + 1 >= other else (i % other for i in range(first, last + 1))
            found.extend((r, i) for i in indices if (r, i) in self._cells)
        return found

    def items(self, cell: Cell) -> list[Item]:
        return self._cells.get(cell, [])
