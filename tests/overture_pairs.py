"""The 3,000 labeled place pairs of tests/data/places (Overture Maps), as matching sees them.

Names, one-line addresses and kinds (from categories) per side, the label, whether a lodging
category is involved, and a fixed split in two halves by a hash of the pair's id (`tuning`).
Used by tests/test_places_matching.py and benchmarks/places_pairs.py.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

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


