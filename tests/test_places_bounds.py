"""What the service adds to the places engine for speed: the bulk pre-filter of automatic
matching (`matching.text_score_bounds`) never drops a pair the full score would keep, on the
3,000 real labeled pairs; and matching deferred for imports ends with the places of matching at
once (`test_places_graph` checks incremental == from scratch with the pre-filter in place)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from overture_pairs import load
from staystream.places import Link, PlaceEvent, PlaceGraph, matching
from test_places_graph import delists, final_state, link_parts, listings, snapshot

PAIRS = load(Path(__file__).parent / "data" / "places" / "overture-pairs-3k.csv.gz")


def test_the_bound_is_never_under_the_text_score_of_a_labeled_pair() -> None:
    names_a = np.array([matching.normalise_name(p.names[0]) for p in PAIRS], dtype=object)
    names_b = np.array([matching.normalise_name(p.names[1]) for p in PAIRS], dtype=object)
    numbers = [(matching.name_numbers(a), matching.name_numbers(b)) for a, b in zip(names_a, names_b, strict=True)]
    differ = np.array([bool(x - y) and bool(y - x) for x, y in numbers])
    addressed = np.array([bool(p.addresses[0]) and bool(p.addresses[1]) for p in PAIRS])
    bounds = matching.text_score_bounds(names_a, names_b, differ, addressed)
    scores = np.array([matching.text_score(matching.text_evidence(p.names[0], p.addresses[0], p.names[1],
                                                                  p.addresses[1])) for p in PAIRS])
    reaching = scores >= matching.THRESHOLD
    assert reaching.sum() > 1000  # the test means something: many pairs reach the threshold
    assert bool((bounds[reaching] >= matching.THRESHOLD - 1e-6).all())
    exact = ~addressed & (bounds > 0)  # without addresses the bound is the score itself
    assert np.allclose(bounds[exact], scores[exact], atol=1e-4)
    assert (bounds < matching.THRESHOLD).sum() > 500  # and it prunes: most different pairs go


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
