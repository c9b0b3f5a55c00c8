"""Precision and recall of place matching on 3,000 real labeled pairs (Overture Maps sample).

    python -m benchmarks.places_pairs [--fit] [path/to/overture-pairs-3k.csv.gz]

The pairs have names, addresses and categories but no coordinates, so they measure the text
part of the score (the pairs were candidates near each other); kinds come from categories.
The pairs are split in two halves by a hash of their ids: `--fit` fits the text weights and the
threshold on the tuning half only; the report gives the held-out half, the whole and the
lodging pairs with the constants of `staystream.places.matching`.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import numpy as np

from staystream.places import matching

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from overture_pairs import DEFAULT_PATH, Pair, load, measure, pair_score

# The threshold is the lowest whose precision on the tuning half reaches this: the service is
# held to precision >= 0.90 with coordinates, which the text alone cannot see.
MIN_PRECISION = 0.85


def fit(pairs: list[Pair]) -> tuple[tuple[float, ...], float]:
    """Logistic regression of the text features on the tuning half (gradient descent, L2 1e-3),
    and the lowest threshold whose precision on the tuning half is at least `MIN_PRECISION`."""
    tuning = [p for p in pairs if p.tuning]
    x = np.array([matching.text_evidence(p.names[0], p.addresses[0], p.names[1], p.addresses[1]).features()
                  for p in tuning])
    y = np.array([p.same for p in tuning], dtype=float)
    w = np.zeros(x.shape[1])
    for _ in range(30_000):
        predicted = 1.0 / (1.0 + np.exp(-(x @ w)))
        w -= x.T @ (predicted - y) / len(y) + 1e-3 * w
    weights = tuple(round(float(v), 2) for v in w)
    scored = [(pair_score(p, weights), p.same) for p in tuning]
    for threshold in [t / 100 for t in range(30, 96)]:
        if measure(scored, threshold)[0] >= MIN_PRECISION:
            return weights, threshold
    raise SystemExit(f"no threshold reaches precision {MIN_PRECISION} on the tuning half")


def with_coordinates(pairs: list[Pair], seed: int = 1) -> list[tuple[float, bool]]:
    """Scores with synthetic distances: what the distance factor would add (an assumption).

    Same place: one side blurred uniformly within `matching.BLUR_M` (Airbnb) plus ~30 m of
    geocoding noise. Different places: in the same building (a shared house number on a
    similar street) within 50 m, else anywhere in the candidate radius (uniform by area).
    """
    rnd = random.Random(seed)
    scored = []
    for pair in pairs:
        evidence = matching.text_evidence(pair.names[0], pair.addresses[0], pair.names[1], pair.addresses[1])
        if pair.same:
            distance = matching.BLUR_M * math.sqrt(rnd.random()) + abs(rnd.gauss(0.0, 30.0))
        elif evidence.address_numbers_shared and evidence.address >= 0.9:
            distance = 50.0 * math.sqrt(rnd.random())
        else:
            distance = matching.RADIUS_M * math.sqrt(rnd.random())
        scored.append((pair_score(pair) * matching.distance_factor(distance), pair.same))
    return scored


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    pairs = load(Path(args[0]) if args else DEFAULT_PATH)
    if "--fit" in argv:
        weights, threshold = fit(pairs)
        print(f"fitted on {sum(p.tuning for p in pairs)} pairs: TEXT_WEIGHTS = {weights}, THRESHOLD = {threshold}")
    subsets = {
        "tuning half": [p for p in pairs if p.tuning],
        "held-out half": [p for p in pairs if not p.tuning],
        "all": pairs,
        "lodging, held-out": [p for p in pairs if p.lodging and not p.tuning],
        "lodging, all": [p for p in pairs if p.lodging],
    }
    print(f"with the constants of staystream.places.matching (THRESHOLD {matching.THRESHOLD}):")
    for label, subset in subsets.items():
        precision, recall = measure([(pair_score(p), p.same) for p in subset], matching.THRESHOLD)
        same = sum(p.same for p in subset)
        print(f"{label:>18}: {len(subset):5d} pairs ({same:4d} same)  precision {precision:.3f}  recall {recall:.3f}")
    print("with synthetic distances (see with_coordinates):")
    for label, subset in subsets.items():
        precision, recall = measure(with_coordinates(subset), matching.THRESHOLD)
        print(f"{label:>18}: precision {precision:.3f}  recall {recall:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
