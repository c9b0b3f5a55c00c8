"""Precision and recall of place matching on 3,000 real labeled pairs (Overture Maps sample).

    python -m benchmarks.places_pairs [--fit] [--repeats N] [path/to/overture-pairs-3k.csv.gz]

The pairs have names, addresses and categories but no coordinates, so they measure the text
part of the score (the pairs were candidates near each other); kinds come from categories.
The fitting procedure (`overture_pairs.fit`: weights, then threshold) is measured by 5-fold
cross-validation repeated N times (default 4): fitted on four fifths, measured on the lodging
pairs of the fifth it did not see. `--fit` then fits on all the pairs and prints the constants
for `staystream.places.matching`; the last lines are the constants in use, on all the pairs
(seen: optimistic) and with synthetic distances.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
from pathlib import Path

from staystream.places import matching

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from overture_pairs import DEFAULT_PATH, Pair, cross_validate, fit, load, measure, pair_score


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
        elif evidence.houses_shared and evidence.address >= 0.9:
            distance = 50.0 * math.sqrt(rnd.random())
        else:
            distance = matching.RADIUS_M * math.sqrt(rnd.random())
        scored.append((pair_score(pair) * matching.distance_factor(distance), pair.same))
    return scored


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    repeats = int(args.pop(0)) if "--repeats" in argv else 4
    pairs = load(Path(args[0]) if args else DEFAULT_PATH)
    lodging = [p for p in pairs if p.lodging]
    results = cross_validate(pairs, folds=5, repeats=repeats)
    precision, recall = ([r[i] for r in results] for i in (0, 1))
    print(f"5-fold x {repeats} cross-validation, lodging pairs of the held-out folds "
          f"({len(lodging)} lodging pairs, {sum(p.same for p in lodging)} same, over {len(pairs)}):")
    print(f"  precision {statistics.mean(precision):.3f} +- {statistics.stdev(precision):.3f}  "
          f"recall {statistics.mean(recall):.3f} +- {statistics.stdev(recall):.3f}  (mean +- sd of "
          f"{len(results)} folds)")
    if "--fit" in argv:
        weights, threshold = fit(pairs)
        print(f"fitted on all {len(pairs)} pairs: TEXT_WEIGHTS = {weights}, THRESHOLD = {threshold}")
    print(f"the constants of staystream.places.matching (THRESHOLD {matching.THRESHOLD}), on the pairs "
          "they were fitted on:")
    for label, subset in (("all", pairs), ("lodging", lodging)):
        p, r = measure([(pair_score(x), x.same) for x in subset], matching.THRESHOLD)
        p_far, r_far = measure(with_coordinates(subset), matching.THRESHOLD)
        print(f"{label:>8}: precision {p:.3f} recall {r:.3f}; with synthetic distances {p_far:.3f} {r_far:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
