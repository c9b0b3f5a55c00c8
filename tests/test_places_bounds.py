"""The bulk pre-filter of automatic matching (`matching.text_score_bounds`) never drops a pair
the full score would keep, on the 3,000 real labeled pairs (`test_places_graph` checks that the
places come out the same, incrementally and from scratch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from overture_pairs import load
from staystream.places import matching

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
