"""Places from `property_id` alone: listings of one source sharing a `property_id` are one place.

The rule the service starts from, before operator links and automatic matching (the `places`
engine) decide more. A place is named by its smallest row, so the answer depends only on which
listings share a property, not on the order they were described in; every other listing is a
place of its own (its own row).
"""

from __future__ import annotations

Property = tuple[str, str]  # (source, property_id)


class PropertyPlaces:
    """The writer's record of who shares a property; tells which rows change place."""

    def __init__(self) -> None:
        self.members: dict[Property, set[int]] = {}
        self.property_of: dict[int, Property] = {}

    def assign(self, row: int, source: str, property_id: str | None) -> dict[int, int]:
        """Record the row's current property; returns {row: place} of every row whose place changed."""
        new = None if property_id is None else (source, property_id)
        old = self.property_of.get(row)
        if new == old:
            return {}
        changed: dict[int, int] = {row: row}
        if old is not None:
            group = self.members[old]
            group.discard(row)
            del self.property_of[row]
            if not group:
                del self.members[old]
            elif row < min(group):  # it named the place: the others take the next smallest row
                place = min(group)
                changed.update(dict.fromkeys(group, place))
        if new is not None:
            group = self.members.setdefault(new, set())
            if group and row > min(group):
                changed[row] = min(group)
            else:
                changed.update(dict.fromkeys(group, row))
            group.add(row)
            self.property_of[row] = new
        return changed
