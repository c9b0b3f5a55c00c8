"""Precision and recall of place matching on 3,000 real labeled pairs (Overture Maps sample).

    python -m benchmarks.places_pairs [--fit] [path/to/overture-pairs-3k.csv.gz]

The pairs have names, addresses and categories but no coordinates, so they measure the text
part of the score (the pairs were candidates near each other); kinds come from categories.
The pairs are split in two halves by a hash of their ids: `--fit` fits the text weights and the
threshold on the tuning half only; the report gives the held-out half, the whole and
the lodging pairs with the constants of `staystream.places.matching`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from staystream.places import matching

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "tests/data/places/overture-pairs-3k.csv.gz"
LODGING = ("hotel", "motel", "inn", "hostel", "resort", "bed_and_breakfast", "lodging",
           "accommodation", "apartments", "guest_house", "vacation_rental", "holiday_rental")
# The threshold is the lowest whose precision on the tuning half reaches this: the service is
# held to precision >= 0.90 with coordinates, which the text alone cannot see.
MIN_PRECISION = 0.85


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    same: bool
    names: tuple[str, str]
    addresses: tuple[str | None, str | None]
    kinds: tuple[str, str]
    lodging: bool
    tuning: bool


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
            digest = hashlib.sha256(row["id"].encode()).digest()
            pairs.append(Pair(
                id=row["id"], same=row["label"] == "1.0", names=(names[0], names[1]),
                addresses=(_address(row["addresses"]), _address(row["base_addresses"])),
                kinds=(_kind(cats[0]), _kind(cats[1])),
                lodging=any(w in (cats[0] + cats[1]).lower() for w in LODGING),
                tuning=digest[0] % 2 == 0,
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


if __name__ == "__main__":
    main(sys.argv[1:])
