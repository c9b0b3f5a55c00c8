"""The pairwise decision: are two listings of different sources the same property?

A score in [0, 1]: a text score (a logistic regression over rapidfuzz similarities of the
normalised names and addresses) times factors for the distance between the points, the
compatibility of the kinds and, for whole units, of the capacities. Two listings are the same
property when the score reaches `THRESHOLD`. The weights and the threshold were fitted on half
of 3,000 real labeled pairs and checked on the other half (`benchmarks/places_pairs.py`,
figures in docs/places.md).
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process

from staystream.places.types import PlaceListing

EARTH_RADIUS_M = 6_371_008.8
# Candidates are the listings of other sources within this distance: real duplicates across
# marketplaces sit within ~0-300 m (Airbnb blurs its points by up to ~150 m).
RADIUS_M = 400.0
# Within this distance the points say nothing against a match (blurring); beyond it the score
# decays linearly to `FAR_FACTOR` at `RADIUS_M`.
BLUR_M = 150.0
FAR_FACTOR = 0.85
# The text score's logistic weights over `TextEvidence.features()` (bias first), fitted on the
# tuning half of the labeled pairs by `python -m benchmarks.places_pairs --fit`.
TEXT_WEIGHTS: tuple[float, ...] = (-3.58, 0.97, 0.25, 0.98, 1.85, 1.69, -2.15, -1.7, -0.12, -1.57,
                                   0.57, 2.27)
# A pair at or above this score is the same property (chosen on the tuning half, see --fit).
THRESHOLD = 0.6
# Factors applied to the score when kinds or whole-unit capacities disagree.
KIND_MISMATCH_FACTOR = 0.8
CAPACITY_MISMATCH_FACTOR = 0.8

# Words that say "a place to stay" in many languages: they make any two hotels look alike.
LODGING_WORDS = frozenset(str.split(
    """
    hotel hotels hotell hôtel motel motels inn inns hostel hostels hostal hostales auberge
    apartment apartments apartament apartamento apartamentos appartement appartements
    appartamento appartamenti apt apts flat flats studio studios residence residences
    residencia residenza suite suites resort resorts spa lodge lodges guesthouse guesthouses
    guest house houses pension pensione pensao pousada posada albergo locanda gasthaus gasthof
    ryokan bnb b&b bed breakfast room rooms rental rentals vacation holiday villa villas
    homestay stay chambres chambre d'hotes hotes condo condos boutique
    """
))
# Articles and connectors that differ between providers' spellings of one name.
STOP_WORDS = frozenset(str.split(
    "the a an and of at by in on de da do das dos di del della la le les l el los las du des "
    "et y e und am an der die das zum zur"
))
# Street types to one canonical token, so "Av." and "Avenida" and "Avenue" agree.
STREET_TYPES: dict[str, str] = {}
for _canonical, _spellings in {
    "st": "st st. str street strasse straße",
    "ave": "av av. ave avenue avenida avda avenija viale",
    "rd": "rd road",
    "blvd": "blvd boulevard bd bld boulevar",
    "dr": "dr drive",
    "ln": "ln lane",
    "ct": "ct court",
    "pl": "pl place plaza platz praca praça piazza plac",
    "sq": "sq square",
    "hwy": "hwy highway",
    "pkwy": "pkwy parkway",
    "rua": "rua r calle c carrer via rue",
    "sn": "sn s/n",
    "n": "n north nord norte",
    "s": "s south sud sur",
    "e": "e east est este",
    "w": "w west ouest oeste",
    "unit": "unit ste suite apt apartment flat #",
}.items():
    for _spelling in _spellings.split():
        STREET_TYPES[_spelling] = _canonical

_NON_WORD = re.compile(r"[^\w#]+")
_NUMBER = re.compile(r"\d+")
# Whole units: a flat for 2 is not the flat for 8 above it; hotel room types of one hotel differ.
_WHOLE_UNITS = frozenset({"apartment", "house"})
_ROOMS = frozenset({"hotel_room", "private_room", "shared_room", "hostel_bed"})


@dataclass(frozen=True, slots=True)
class Match:
    """A scored pair and why: each part of the score, for `GET /v1/places/{id}` and humans."""

    score: float
    text: float
    evidence: TextEvidence
    distance_m: float
    kind_factor: float
    capacity_factor: float

    @property
    def same(self) -> bool:
        return self.score >= THRESHOLD

    def explain(self) -> str:
        """One line: "score 0.912 (threshold 0.6): text 0.93 (name 1.00, address 0.95), 42 m, ..."."""
        ev = self.evidence
        address = f"address {ev.address:.2f}" if ev.has_address else "no address"
        return (
            f"score {self.score:.3f} (threshold {THRESHOLD}): text {self.text:.2f} "
            f"(name {ev.name_set:.2f}, {address}), {self.distance_m:.0f} m, "
            f"kind x{self.kind_factor}, capacity x{self.capacity_factor}"
        )


def fold(text: str) -> list[str]:
    """Lower-case ASCII-ish words: accents dropped, punctuation split.

    >>> fold("Hôtel  Le-Marais, Paris")
    ['hotel', 'le', 'marais', 'paris']
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("b&b", "bnb").replace("&", " & ")  # "B&B" is one (lodging) word
    return [word for word in _NON_WORD.split(plain) if word]


@lru_cache(maxsize=1 << 18)
def normalise_name(name: str) -> str:
    """The distinctive words of a name, without lodging words and articles.

    >>> normalise_name("The Grand Hotel de l'Europe")
    'grand europe'

    A name made only of generic words keeps them (else "Hotel" would equal "Apartments").
    Repeated words count once.
    """
    words = fold(name)
    core = [w for w in words if w not in LODGING_WORDS and w not in STOP_WORDS and w != "&"]
    # each word once: then, without a shared word, token_set_ratio <= token_sort_ratio,
    # which the graph's bulk pre-filter relies on
    return " ".join(dict.fromkeys(core or words))


@lru_cache(maxsize=1 << 18)
def normalise_address(address: str) -> tuple[str, frozenset[str]]:
    """The street words with canonical street types, and the set of numbers in the address.

    >>> street, numbers = normalise_address("12bis Av. des Champs-Élysées, 75008 Paris")
    >>> street, sorted(numbers)
    ('ave champs elysees paris', ['12', '75008'])
    """
    words = fold(address)
    numbers = frozenset(n.lstrip("0") or "0" for w in words for n in _NUMBER.findall(w))
    street = [
        STREET_TYPES.get(w, w)
        for w in words
        if not _NUMBER.search(w) and w not in STOP_WORDS and w not in ("bis", "ter", "&")
    ]
    return " ".join(street), numbers


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (mean Earth radius, as search uses)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class TextEvidence:
    """What the names and addresses say, as the features of the text score (all in [0, 1])."""

    name_set: float  # rapidfuzz token_set_ratio of the normalised names: one inside the other
    name_sort: float  # token_sort_ratio: all words, any order
    name_partial: float  # partial_ratio: the best matching substring
    name_weighted: float  # WRatio: rapidfuzz's blend of the above
    name_equal: bool  # the normalised names are identical
    name_numbers_differ: bool  # each name has a number the other lacks ("Block 4" / "Block 7")
    has_address: bool  # both listings have an address
    address: float  # token_set_ratio of the street words (canonical street types), 0 without
    address_numbers_differ: bool  # each address has a number the other lacks (house numbers)
    address_numbers_shared: bool  # the addresses share a number

    def features(self) -> tuple[float, ...]:
        return (
            1.0, self.name_set, self.name_sort, self.name_partial, self.name_weighted,
            float(self.name_equal), float(self.name_numbers_differ), float(self.has_address),
            self.address, float(self.address_numbers_differ), float(self.address_numbers_shared),
            self.name_set * self.address,
        )


@lru_cache(maxsize=1 << 18)
def _numbers(words: str) -> frozenset[str]:
    return frozenset(_NUMBER.findall(words))


def _differ(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a - b) and bool(b - a)


def text_evidence(name_a: str, address_a: str | None, name_b: str,
                  address_b: str | None) -> TextEvidence:
    """Compare two names and (when both are given) two addresses."""
    na, nb = normalise_name(name_a), normalise_name(name_b)
    has_address = bool(address_a and address_b)
    street, numbers_differ, numbers_shared = 0.0, False, False
    if address_a and address_b:
        (sa, xa), (sb, xb) = normalise_address(address_a), normalise_address(address_b)
        street = fuzz.token_set_ratio(sa, sb) / 100.0 if sa and sb else 0.0
        numbers_differ, numbers_shared = _differ(xa, xb), bool(xa & xb)
    return TextEvidence(
        name_set=fuzz.token_set_ratio(na, nb) / 100.0,
        name_sort=fuzz.token_sort_ratio(na, nb) / 100.0,
        name_partial=fuzz.partial_ratio(na, nb) / 100.0,
        name_weighted=fuzz.WRatio(na, nb) / 100.0,
        name_equal=bool(na) and na == nb,
        name_numbers_differ=_differ(_numbers(na), _numbers(nb)),
        has_address=has_address,
        address=street,
        address_numbers_differ=numbers_differ,
        address_numbers_shared=numbers_shared,
    )


def text_score(evidence: TextEvidence, weights: tuple[float, ...] = TEXT_WEIGHTS) -> float:
    """The probability-like text score: logistic regression over `TextEvidence.features()`."""
    z = sum(w * x for w, x in zip(weights, evidence.features(), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def _min_name_set(weights: tuple[float, ...], threshold: float) -> float:
    """A `name_set` below which no evidence can reach `threshold`: a hundredth under the least.

    The score is at most the text score, which is linear in every other feature, so trying the
    ends of each (as `text_evidence` can produce them) bounds it. Below this, a pair need not
    be scored: a safe pre-filter that rapidfuzz evaluates in bulk.
    """
    for hundredths in range(101):
        s = hundredths / 100.0
        for partial, weighted, numbers, sort in itertools.product((0.0, 1.0), (0.0, 1.0), (False, True), (0.0, s)):
            for has_address, address, differ, shared in [(False, 0.0, False, False)] + [
                (True, a, d, sh) for a in (0.0, 1.0) for d in (False, True) for sh in (False, True)
            ]:
                evidence = TextEvidence(s, sort, partial, weighted, s == 1.0, numbers, has_address,
                                        address, differ, shared)
                if text_score(evidence, weights) >= threshold:
                    return max(0.0, s - 0.01)  # the grid's step: the true bound is above this
    return 1.0


# Pairs whose normalised names have a lower token_set_ratio cannot be the same property.
MIN_NAME_SET = _min_name_set(TEXT_WEIGHTS, THRESHOLD)


def kind_factor(a: str, b: str) -> float:
    """1.0 when the kinds can describe one property, else `KIND_MISMATCH_FACTOR`.

    Rooms (hotel room, private or shared room, hostel bed) go with rooms, whole units
    (apartment, house) with whole units, and `other` with anything.
    """
    if a == b or "other" in (a, b):
        return 1.0
    if (a in _ROOMS and b in _ROOMS) or (a in _WHOLE_UNITS and b in _WHOLE_UNITS):
        return 1.0
    return KIND_MISMATCH_FACTOR


def capacity_factor(kind_a: str, guests_a: int, kind_b: str, guests_b: int) -> float:
    """Whole units (flat, house) of very different capacity are different units.

    Only when both are whole units: capacities more than 2 guests and more than 1.5x apart
    give `CAPACITY_MISMATCH_FACTOR`. Rooms of one hotel differ in capacity by nature.
    """
    if kind_a not in _WHOLE_UNITS or kind_b not in _WHOLE_UNITS:
        return 1.0
    low, high = sorted((guests_a, guests_b))
    if high - low > 2 and high > 1.5 * low:
        return CAPACITY_MISMATCH_FACTOR
    return 1.0


def distance_factor(distance_m: float) -> float:
    """1.0 within `BLUR_M`, then linear down to `FAR_FACTOR` at `RADIUS_M`, 0 beyond."""
    if distance_m <= BLUR_M:
        return 1.0
    if distance_m > RADIUS_M:
        return 0.0
    return 1.0 - (1.0 - FAR_FACTOR) * (distance_m - BLUR_M) / (RADIUS_M - BLUR_M)


def score(a: PlaceListing, b: PlaceListing) -> Match:
    """Score a pair of listings; `Match.same` is the decision, `Match.explain()` the reasons.

    score = text score x distance factor x kind factor x capacity factor.
    """
    evidence = text_evidence(a.name, a.address, b.name, b.address)
    text = text_score(evidence)
    distance = haversine_m(a.lat, a.lon, b.lat, b.lon)
    kinds = kind_factor(a.kind, b.kind)
    capacity = capacity_factor(a.kind, a.max_guests, b.kind, b.max_guests)
    total = text * distance_factor(distance) * kinds * capacity
    return Match(round(total, 4), round(text, 4), evidence, round(distance, 1), kinds, capacity)


def score_many(pairs: Sequence[tuple[PlaceListing, PlaceListing]]) -> tuple[np.ndarray, np.ndarray]:
    """`score(a, b).score` and the distance in metres of many pairs at once (rapidfuzz `cpdist`,
    numpy): what the graph uses.

    The same features, weights and factors as `score`; floating-point sums may differ from it
    in the last bits, the rounding to 4 decimals hides that but at a rounding boundary.
    """
    n = len(pairs)
    x = np.zeros((n, len(TEXT_WEIGHTS)))
    if n == 0:
        return np.zeros(0), np.zeros(0)
    names_a = [normalise_name(a.name) for a, _ in pairs]
    names_b = [normalise_name(b.name) for _, b in pairs]
    x[:, 0] = 1.0
    for column, scorer in enumerate((fuzz.token_set_ratio, fuzz.token_sort_ratio, fuzz.partial_ratio,
                                     fuzz.WRatio), start=1):
        x[:, column] = process.cpdist(names_a, names_b, scorer=scorer, dtype=np.float64) / 100.0
    x[:, 5] = [bool(na) and na == nb for na, nb in zip(names_a, names_b, strict=True)]
    x[:, 6] = [_differ(_numbers(na), _numbers(nb)) for na, nb in zip(names_a, names_b, strict=True)]
    both = [i for i, (a, b) in enumerate(pairs) if a.address and b.address]
    if both:
        streets = [(normalise_address(pairs[i][0].address or ""), normalise_address(pairs[i][1].address or ""))
                   for i in both]
        street = process.cpdist([sa for (sa, _), _ in streets], [sb for _, (sb, _) in streets],
                                scorer=fuzz.token_set_ratio, dtype=np.float64) / 100.0
        rows = np.array(both)
        x[rows, 7] = 1.0
        x[rows, 8] = [v if sa and sb else 0.0 for v, ((sa, _), (sb, _)) in zip(street.tolist(), streets, strict=True)]
        x[rows, 9] = [_differ(xa, xb) for (_, xa), (_, xb) in streets]
        x[rows, 10] = [bool(xa & xb) for (_, xa), (_, xb) in streets]
    x[:, 11] = x[:, 1] * x[:, 8]
    text = 1.0 / (1.0 + np.exp(-(x @ np.array(TEXT_WEIGHTS))))
    lat_a, lon_a, lat_b, lon_b = (np.radians(np.array(v)) for v in zip(
        *((a.lat, a.lon, b.lat, b.lon) for a, b in pairs), strict=True))
    h = np.sin((lat_b - lat_a) / 2) ** 2 + np.cos(lat_a) * np.cos(lat_b) * np.sin((lon_b - lon_a) / 2) ** 2
    distance = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    near = 1.0 - (1.0 - FAR_FACTOR) * (distance - BLUR_M) / (RADIUS_M - BLUR_M)
    distance_factors = np.where(distance <= BLUR_M, 1.0, np.where(distance > RADIUS_M, 0.0, near))
    factors = np.array([kind_factor(a.kind, b.kind) * capacity_factor(a.kind, a.max_guests, b.kind, b.max_guests)
                        for a, b in pairs])
    return np.round(text * distance_factors * factors, 4), distance
