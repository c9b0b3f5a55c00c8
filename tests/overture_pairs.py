"""The 3,000 labeled place pairs of tests/data/places (Overture Maps), as matching sees them.

Names, one-line addresses and kinds (from categories) per side, the label and whether a lodging
category is involved; `fit` fits the text weights and the threshold, `cross_validate` measures
that procedure on folds it did not see. Used by tests/test_places_matching.py and
benchmarks/places_pairs.py.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from staystream.places import matching

DEFAULT_PATH = Path(__file__).resolve().parent / "data/places/overture-pairs-3k.csv.gz"
LODGING = ("hotel", "motel", "inn", "hostel", "resort", "bed_and_breakfast", "lodging",
           "accommodation", "apartments", "guest_house", "vacation_rental", "holiday_rental")


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    same: bool
    names: tuple[str, str]
    addresses: tuple[str | None, str | None]
    kinds: tuple[str, str]
    lodging: bool


def _address(raw: str) -> str | None:
    """The first Overture address as one line, as a marketplace would print it."""
    items = json.loads(raw) if raw else None
    if not items:
        return None
    first = items[0]
    parts = [first.get(k) for k in ("freeform", "postcode", "locality")]
    return ", ".join(p for p in parts if p) or None


def _kind(categories: str) -> str:
    lowered = categories.lower()
    if "hostel" in lowered:
        return "hostel_bed"
    if "apartment" in lowered or "vacation_rental" in lowered or "holiday_rental" in lowered:
        return "apartment"
    if any(word in lowered for word in LODGING):
        return "hotel_room"
    return "other"


def load(path: Path) -> list[Pair]:
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            sides = ("", "base_")
            names = tuple((json.loads(row[s + "names"] or "{}") or {}).get("primary") or "" for s in sides)
            cats = tuple(row[s + "categories"] or "" for s in sides)
            pairs.append(Pair(
                id=row["id"], same=row["label"] == "1.0", names=(names[0], names[1]),
                addresses=(_address(row["addresses"]), _address(row["base_addresses"])),
                kinds=(_kind(cats[0]), _kind(cats[1])),
                lodging=any(w in (cats[0] + cats[1]).lower() for w in LODGING),
            ))
    return pairs


def pair_score(pair: Pair, weights: tuple[float, ...] = matching.TEXT_WEIGHTS) -> float:
    """The service's score of a pair at distance 0 (kinds from categories, no capacities)."""
    evidence = matching.text_evidence(pair.names[0], pair.addresses[0], pair.names[1], pair.addresses[1])
    return matching.text_score(evidence, weights) * matching.kind_factor(*pair.kinds)


def measure(scored: list[tuple[float, bool]], threshold: float) -> tuple[float, float]:
    """(precision, recall) of the decision score >= threshold."""
    tp = sum(1 for s, same in scored if same and s >= threshold)
    fp = sum(1 for s, same in scored if not same and s >= threshold)
    fn = sum(1 for s, same in scored if same and s < threshold)
    return tp / max(1, tp + fp), tp / max(1, tp + fn)




# Lodging pairs weigh this much more than others in the fit: the service matches lodging only,
# and there are few (215 of 3,000); chosen by cross-validation (1, 3 and 8 tried).
LODGING_WEIGHT = 3.0
# The threshold is the lowest whose precision on the fitted lodging pairs reaches this: a margin
# over the bar of 0.90, as precision on unseen pairs comes out lower than on the fitted ones.
TARGET_PRECISION = 0.91
L2 = 1e-3


def features(pairs: list[Pair]) -> np.ndarray:
    return np.array([matching.text_evidence(p.names[0], p.addresses[0], p.names[1], p.addresses[1]).features()
                     for p in pairs])


def _scores(pairs: list[Pair], x: np.ndarray, weights: tuple[float, ...]) -> list[float]:
    """`pair_score` of each pair from its features."""
    kinds = np.array([matching.kind_factor(*p.kinds) for p in pairs])
    return (kinds / (1.0 + np.exp(-(x @ np.array(weights))))).tolist()


def fit(pairs: list[Pair], x: np.ndarray | None = None) -> tuple[tuple[float, ...], float]:
    """Logistic regression of the text features (L-BFGS, L2 `L2`, lodging pairs weighted
    `LODGING_WEIGHT`), then the lowest threshold (in hundredths) whose precision on these
    lodging pairs reaches `TARGET_PRECISION`."""
    x = features(pairs) if x is None else x
    y = np.array([p.same for p in pairs], dtype=float)
    weight = np.array([LODGING_WEIGHT if p.lodging else 1.0 for p in pairs])
    weight /= weight.mean()

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        value = np.mean(weight * (np.logaddexp(0.0, z) - y * z)) + L2 / 2 * w @ w
        return float(value), x.T @ (weight * (1.0 / (1.0 + np.exp(-z)) - y)) / len(y) + L2 * w

    weights = tuple(round(float(v), 2) for v in minimize(loss, np.zeros(x.shape[1]), jac=True,
                                                          method="L-BFGS-B").x)
    lodging = [(score, p.same) for score, p in zip(_scores(pairs, x, weights), pairs, strict=True) if p.lodging]
    for hundredths in range(30, 96):
        if measure(lodging, hundredths / 100)[0] >= TARGET_PRECISION:
            return weights, hundredths / 100
    return weights, 0.95


def cross_validate(pairs: list[Pair], folds: int = 5, repeats: int = 4) -> list[tuple[float, float]]:
    """(precision, recall) on the lodging pairs of each held-out fold, `fit` on the others:
    `repeats` random partitions (seeds 0, 1, ...) into `folds` folds."""
    x = features(pairs)
    results = []
    for seed in range(repeats):
        order = np.random.default_rng(seed).permutation(len(pairs))
        parts = np.array_split(order, folds)
        for k, test in enumerate(parts):
            train = np.concatenate([part for j, part in enumerate(parts) if j != k])
            weights, threshold = fit([pairs[i] for i in train], x[train])
            held_out = [pairs[i] for i in test]
            scored = [(score, p.same) for score, p in zip(_scores(held_out, x[test], weights), held_out, strict=True)
                      if p.lodging]
            results.append(measure(scored, threshold))
    return results
