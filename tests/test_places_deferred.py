"""Automatic matching deferred for imports (`apply(match=False)`, then `match_pending` in
slices) ends with the places of matching at once, whatever the mix and the slices."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from staystream.places import Link, PlaceEvent, PlaceGraph
from test_places_graph import delists, final_state, link_parts, listings, snapshot

# -- matching deferred (`apply(match=False)`, then `match_pending` in slices) ends as from scratch

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(listings, listings, delists, link_parts), max_size=25), st.booleans(),
       st.integers(1, 3), st.randoms(use_true_random=False))
def test_deferred_matching_ends_where_matching_at_once_does(raw: list[object], mixed: bool, slice_size: int,
                                                            rnd: object) -> None:
    evs: list[PlaceEvent] = []
    for item in raw:
        if isinstance(item, tuple):
            a, b, same, when = item
            if a != b:
                evs.append(Link(a[0], a[1], b[0], b[1], same, when))
        else:
            evs.append(item)  # type: ignore[arg-type]
    deferred = PlaceGraph()
    reported: dict[str, str | None] = {}
    for event in evs:
        # some applied with matching at once (live traffic), the others deferred (imports)
        reported.update(deferred.apply([event], match=mixed and rnd.random() < 0.5))  # type: ignore[attr-defined]
        if rnd.random() < 0.3:  # type: ignore[attr-defined]
            reported.update(deferred.match_pending(slice_size))
    while deferred.pending:
        reported.update(deferred.match_pending(slice_size))
    from_scratch = PlaceGraph()
    from_scratch.apply(final_state(evs))
    expected = snapshot(from_scratch)
    assert snapshot(deferred) == expected
    current = {k: v for k, v in reported.items() if v is not None}
    assert current == {m["source"] + "\x00" + m["listing_id"]: pid  # type: ignore[index,operator]
                       for pid, place in expected.items() for m in place["listings"]}  # type: ignore[index]
