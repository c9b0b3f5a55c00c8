"""The pairwise decision: are two listings of different sources the same property?

A score in [0, 1]: a text score (a logistic regression over rapidfuzz similarities of the
normalised names and addresses) times factors for the distance between the points, the
compatibility of the kinds and, for whole units, of the capacities. Two listings are the same
property when the score reaches `THRESHOLD`. The weights and the threshold were fitted on 3,000
real labeled pairs, and the fitting procedure measured by k-fold cross-validation
(`benchmarks/places_pairs.py`, figures in docs/places.md).
"""

from __future__ import annotations

import hashlib
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
# labeled pairs by `python -m benchmarks.places_pairs --fit`.
TEXT_WEIGHTS: tuple[float, ...] = (-4.0, 1.05, -0.4, 1.39, 2.0, 1.89, -1.72, -0.3, -1.21, 0.74, 2.35,
                                   -0.21, -0.16, -1.59, 0.28, -1.43)
# A pair at or above this score is the same property (chosen with the weights, see --fit).
THRESHOLD = 0.58
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
# What kind of stay a name announces: "Fistral Beach Holiday Apartment" is not "Fistral Beach
# Hotel", nor "The Boutike Guesthouse" "The Boutike Hostel" (words of `LODGING_WORDS`).
STAY_TYPES: dict[str, str] = {}
for _canonical, _spellings in {
    "hotel": "hotel hotels hotell motel motels inn inns albergo gasthof gasthaus ryokan",
    "apartment": "apartment apartments apartament apartamento apartamentos appartement appartements "
                 "appartamento appartamenti apt apts flat flats studio studios condo condos residence "
                 "residences residencia residenza",
    "hostel": "hostel hostels hostal hostales auberge",
    "guesthouse": "guesthouse guesthouses guest pension pensione pensao pousada posada locanda homestay "
                  "bnb bed breakfast chambres chambre hotes",
    "resort": "resort resorts spa",
    "house": "villa villas house houses lodge lodges",
}.items():
    for _spelling in _spellings.split():
        STAY_TYPES[_spelling] = _canonical
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

# Vowel signs and tone marks are part of the word in Brahmic scripts (Thai, Devanagari, ...):
# `\w` alone would cut "ริเวอร์ไซด์" at every one of them.
_NON_WORD = re.compile(r"[^\w#\u0900-\u0dff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]+")
# Accents (Latin, Greek, Cyrillic), Hebrew points and Arabic short vowels: often left out.
_ACCENTS = re.compile("[\u0300-\u036f\u0591-\u05c7\u064b-\u065f]+")
_NUMBER = re.compile(r"\d+")
# Scripts written without spaces between words (Thai, Lao, Burmese, Khmer, kana, CJK, Hangul):
# providers space them differently ("ホテルオホーツク・イン" / "ホテル オホーツクイン"), so the
# spaces and dots inside a run of them go, and the run is one word.
_UNSPACED_CHARS = ("\u0e00-\u0eff\u1000-\u11ff\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
                   "\uac00-\ud7af\uff66-\uff9f")
_UNSPACED_GAP = re.compile(f"(?<=[{_UNSPACED_CHARS}])[\\s\u00b7\u30fb]+(?=[{_UNSPACED_CHARS}])")
# A house number has at most 4 digits; longer numbers are postcodes.
_HOUSE_DIGITS = 4
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
        against = "".join(note for flag, note in ((ev.houses_differ, ", house numbers differ"),
                                                  (ev.postcodes_differ, ", postcodes differ"),
                                                  (ev.stay_types_differ, ", kinds of stay differ"),
                                                  (ev.name_is_address, ", name is a street or town")) if flag)
        return (
            f"score {self.score:.3f} (threshold {THRESHOLD}): text {self.text:.2f} "
            f"(name {ev.name_set:.2f}, {address}{against}), {self.distance_m:.0f} m, "
            f"kind x{self.kind_factor}, capacity x{self.capacity_factor}"
        )


def fold(text: str) -> list[str]:
    """Lower-case ASCII-ish words: accents dropped, punctuation split.

    >>> fold("Hôtel  Le-Marais, Paris")
    ['hotel', 'le', 'marais', 'paris']
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = unicodedata.normalize("NFC", _ACCENTS.sub("", decomposed))  # kana, Hangul composed again
    plain = plain.replace("\u0e40\u0e40", "\u0e41")  # Thai: sara ae typed as two sara e
    plain = _UNSPACED_GAP.sub("", plain)
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
    words = _folded(name).split()
    core = [w for w in words if w not in LODGING_WORDS and w not in STOP_WORDS and w != "&"]
    # each word once: then, without a shared word, token_set_ratio <= token_sort_ratio,
    # which the graph's bulk pre-filter relies on
    return " ".join(dict.fromkeys(core or words))


@lru_cache(maxsize=1 << 18)
def stay_types(name: str) -> frozenset[str]:
    """The kinds of stay a name announces (`STAY_TYPES`).

    >>> sorted(stay_types("Fistral Beach Hotel And Spa"))
    ['hotel', 'resort']
    """
    return frozenset(STAY_TYPES[w] for w in _folded(name).split() if w in STAY_TYPES)


@dataclass(frozen=True, slots=True)
class Address:
    """An address as matching compares it."""

    street: str  # the words without digits, street types canonical
    houses: frozenset[str]  # numbers of at most 4 digits: house, unit, block
    postcodes: frozenset[str]  # longer numbers
    words: frozenset[str]  # every folded word, to tell a name that is only a street or a town


@lru_cache(maxsize=1 << 18)
def normalise_address(address: str) -> Address:
    """The street words with canonical street types, house numbers and postcodes apart.

    >>> parts = normalise_address("12bis Av. des Champs-Élysées, 75008 Paris")
    >>> parts.street, sorted(parts.houses), sorted(parts.postcodes)
    ('ave champs elysees paris', ['12'], ['75008'])
    """
    words = fold(address)
    numbers = [n for w in words for n in _NUMBER.findall(w)]
    street = [
        STREET_TYPES.get(w, w)
        for w in words
        if not _NUMBER.search(w) and w not in STOP_WORDS and w not in ("bis", "ter", "&")
    ]
    return Address(
        " ".join(street),
        frozenset(n.lstrip("0") or "0" for n in numbers if len(n) <= _HOUSE_DIGITS),
        frozenset(n for n in numbers if len(n) > _HOUSE_DIGITS),
        frozenset(words),
    )


def fingerprint(listing: PlaceListing) -> int:
    """A 63-bit hash of everything a listing's candidate edges depend on: equal fingerprints,
    equal scores against any other listing (with this code: `places.cache` keys on its source)."""
    return int(fingerprints([listing.key], [listing.kind], [listing.name], [listing.address],
                            np.array([listing.lat]), np.array([listing.lon]), np.array([listing.max_guests]))[0])


def _mixed(state: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of `state ^ value`: a bijection, so each field changes the hash."""
    x = state ^ value
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    mixed: np.ndarray = x
    return mixed


def fingerprints(keys: Sequence[str], kinds: Sequence[str], names: Sequence[str], addresses: Sequence[str | None],
                 lat: np.ndarray, lon: np.ndarray, max_guests: np.ndarray) -> np.ndarray:
    """`fingerprint` of many listings at once (int64, >= 0): the texts by blake2b one by one,
    the numbers mixed in in numpy (a restart checks a million: ~0.4 s, not 2 s by `repr`)."""
    texts = b"".join(hashlib.blake2b(f"{key}\x00{kind}\x00{name}\x00{address}".encode(), digest_size=8).digest()
                     for key, kind, name, address in zip(keys, kinds, names, addresses, strict=True))
    state = np.frombuffer(texts, np.uint64).copy()
    with np.errstate(over="ignore"):
        for column in (np.ascontiguousarray(lat, np.float64).view(np.uint64),
                       np.ascontiguousarray(lon, np.float64).view(np.uint64), max_guests.astype(np.uint64)):
            state = _mixed(state, column)
    found: np.ndarray = (state >> np.uint64(1)).astype(np.int64)
    return found


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
    has_address: bool  # both listings have an address
    address: float  # token_set_ratio of the street words (canonical street types), 0 without
    houses_differ: bool  # both addresses have house numbers, none in common
    houses_shared: bool  # the addresses share a house number
    postcodes_differ: bool  # both addresses have postcodes, none in common
    stay_types_differ: bool  # both names announce a kind of stay, none in common (hotel / hostel)
    full_name_sort: float  # token_sort_ratio of the whole names, lodging words included
    name_is_address: bool  # a name is only words of the addresses: a street or a town

    def features(self) -> tuple[float, ...]:
        return (
            1.0, self.name_set, self.name_sort, self.name_partial, self.name_weighted,
            float(self.name_equal), float(self.has_address), self.address, float(self.houses_differ),
            float(self.houses_shared), self.name_set * self.address, float(self.postcodes_differ),
            self.address * self.houses_differ, float(self.stay_types_differ), self.full_name_sort,
            float(self.name_is_address),
        )


def _differ(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both have some, none in common."""
    return bool(a) and bool(b) and not a & b


@lru_cache(maxsize=1 << 18)
def _folded(name: str) -> str:
    """A name's folded words, joined by spaces (a word holds none): folded once a name for
    `normalise_name`, `stay_types` and the whole-name feature, which read one name many times."""
    return " ".join(fold(name))


def _is_address(name_a: str, name_b: str, address_words: frozenset[str]) -> bool:
    words_a, words_b = set(name_a.split()), set(name_b.split())
    return bool(words_a) and bool(words_b) and (words_a <= address_words or words_b <= address_words)


def text_evidence(name_a: str, address_a: str | None, name_b: str,
                  address_b: str | None) -> TextEvidence:
    """Compare two names and (when both are given) two addresses."""
    na, nb = normalise_name(name_a), normalise_name(name_b)
    has_address = bool(address_a and address_b)
    street, houses_differ, houses_shared, postcodes_differ = 0.0, False, False, False
    parts = [normalise_address(a) for a in (address_a, address_b) if a]
    if len(parts) == 2:
        a, b = parts
        street = fuzz.token_set_ratio(a.street, b.street) / 100.0 if a.street and b.street else 0.0
        houses_differ, houses_shared = _differ(a.houses, b.houses), bool(a.houses & b.houses)
        postcodes_differ = _differ(a.postcodes, b.postcodes)
    address_words = frozenset().union(*(x.words for x in parts))
    return TextEvidence(
        name_set=fuzz.token_set_ratio(na, nb) / 100.0,
        name_sort=fuzz.token_sort_ratio(na, nb) / 100.0,
        name_partial=fuzz.partial_ratio(na, nb) / 100.0,
        name_weighted=fuzz.WRatio(na, nb) / 100.0,
        name_equal=bool(na) and na == nb,
        has_address=has_address,
        address=street,
        houses_differ=houses_differ,
        houses_shared=houses_shared,
        postcodes_differ=postcodes_differ,
        stay_types_differ=_differ(stay_types(name_a), stay_types(name_b)),
        full_name_sort=fuzz.token_sort_ratio(_folded(name_a), _folded(name_b)) / 100.0,
        name_is_address=_is_address(na, nb, address_words),
    )


def text_score(evidence: TextEvidence, weights: tuple[float, ...] = TEXT_WEIGHTS) -> float:
    """The probability-like text score: logistic regression over `TextEvidence.features()`."""
    z = sum(w * x for w, x in zip(weights, evidence.features(), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def _min_name_set(weights: tuple[float, ...], threshold: float) -> float:
    """A `name_set` below which no evidence can reach `threshold`: a hundredth under the least.

    The score is at most the text score, whose logit is linear in each feature but the two
    products, so the best case for a given `name_set` takes every free feature at its better
    end (`name_sort` is at most `name_set`; names are equal only at 1.0), and the address
    features (which come together) at the best of their possible combinations. Below this, a
    pair need not be scored: a safe pre-filter that rapidfuzz evaluates in bulk.
    """
    w = weights
    addresses = [(0.0, 0.0), *_address_cases(w)]  # no address (nothing), or both
    free = _free_best(w)
    for hundredths in range(101):
        s = hundredths / 100.0
        logit = w[0] + w[1] * s + max(0.0, w[2] * s) + free + (max(0.0, w[5]) if hundredths == 100 else 0.0)
        logit += max(part + w[10] * s * street for part, street in addresses)
        if 1.0 / (1.0 + math.exp(-logit)) >= threshold:
            return max(0.0, s - 0.01)  # the grid's step: the true bound is above this
    return 1.0


def _address_cases(w: tuple[float, ...]) -> list[tuple[float, float]]:
    """Each case of the address features of a pair where both have one, as (its logit but the
    name x street product, street): street 0 or 1 (the logit is linear in it between), house
    numbers differ, shared or neither, postcodes differ or not."""
    return [
        (w[6] + w[7] * street + w[8] * differ + w[9] * shared + w[11] * postcodes + w[12] * street * differ,
         street)
        for street in (0.0, 1.0) for differ, shared in ((0, 0), (1, 0), (0, 1)) for postcodes in (0, 1)
    ]


def _free_best(w: tuple[float, ...]) -> float:
    """The most the features no bound knows can add: partial, weighted, stay types, whole names,
    name is an address, each at its better end."""
    return sum(max(0.0, w[i]) for i in (3, 4, 13, 14, 15))


# Pairs whose normalised names have a lower token_set_ratio cannot be the same property.
MIN_NAME_SET = _min_name_set(TEXT_WEIGHTS, THRESHOLD)


def text_score_bounds(name_set: np.ndarray, name_sort: np.ndarray, name_equal: np.ndarray,
                      has_address: np.ndarray, weights: tuple[float, ...] = TEXT_WEIGHTS) -> np.ndarray:
    """The most `text_score` can be for pairs of which these features are known (ratios in
    [0, 1]): the others at their better end, the address features at their best case. The
    graph scores in full only the pairs whose bound can reach the threshold: in a city of
    look-alike names ("Rental unit in Singapore ...", "Bench apartment 12") most pairs near a
    listing share words and pass `MIN_NAME_SET`, yet differ too much to match."""
    w = weights
    logit = w[0] + w[1] * name_set + w[2] * name_sort + w[5] * name_equal + _free_best(w)
    best_address = np.max([part + w[10] * name_set * street for part, street in _address_cases(w)], axis=0)
    bounds: np.ndarray = 1.0 / (1.0 + np.exp(-(logit + np.where(has_address, best_address, 0.0))))
    return bounds


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


Texts = tuple[str, str | None, str, str | None]  # name and address of one side, then the other's


def _features_many(texts: Sequence[Texts]) -> np.ndarray:
    """`TextEvidence.features()` of many pairs of texts, one row each: the similarities by `cpdist`."""
    x = np.zeros((len(texts), len(TEXT_WEIGHTS)))
    names_a = [normalise_name(name_a) for name_a, _, _, _ in texts]
    names_b = [normalise_name(name_b) for _, _, name_b, _ in texts]
    x[:, 0] = 1.0
    for column, scorer in enumerate((fuzz.token_set_ratio, fuzz.token_sort_ratio, fuzz.partial_ratio,
                                     fuzz.WRatio), start=1):
        x[:, column] = process.cpdist(names_a, names_b, scorer=scorer, dtype=np.float64) / 100.0
    x[:, 5] = [bool(na) and na == nb for na, nb in zip(names_a, names_b, strict=True)]
    both = [i for i, (_, address_a, _, address_b) in enumerate(texts) if address_a and address_b]
    if both:
        parts = [(normalise_address(texts[i][1] or ""), normalise_address(texts[i][3] or "")) for i in both]
        street = process.cpdist([a.street for a, _ in parts], [b.street for _, b in parts],
                                scorer=fuzz.token_set_ratio, dtype=np.float64) / 100.0
        rows = np.array(both)
        x[rows, 6] = 1.0
        x[rows, 7] = [v if a.street and b.street else 0.0 for v, (a, b) in zip(street.tolist(), parts, strict=True)]
        x[rows, 8] = [_differ(a.houses, b.houses) for a, b in parts]
        x[rows, 9] = [bool(a.houses & b.houses) for a, b in parts]
        x[rows, 11] = [_differ(a.postcodes, b.postcodes) for a, b in parts]
    x[:, 10] = x[:, 1] * x[:, 7]
    x[:, 12] = x[:, 7] * x[:, 8]
    x[:, 13] = [_differ(stay_types(name_a), stay_types(name_b)) for name_a, _, name_b, _ in texts]
    x[:, 14] = process.cpdist([_folded(t[0]) for t in texts], [_folded(t[2]) for t in texts],
                              scorer=fuzz.token_sort_ratio, dtype=np.float64) / 100.0
    x[:, 15] = [
        (address_a or address_b) is not None and _is_address(na, nb, frozenset().union(
            *(normalise_address(v).words for v in (address_a, address_b) if v)))
        for (_, address_a, _, address_b), na, nb in zip(texts, names_a, names_b, strict=True)
    ]
    return x


def text_scores(texts: Sequence[Texts]) -> np.ndarray:
    """`text_score` of many pairs of texts at once (rapidfuzz `cpdist`, numpy)."""
    scores: np.ndarray = 1.0 / (1.0 + np.exp(-(_features_many(texts) @ np.array(TEXT_WEIGHTS))))
    return scores


class TextScores:
    """Text scores kept by pair of texts, each computed once while kept: a city's generic names
    (the units of a building, a host's flats, Airbnb's summaries) make the same pairs of texts
    again and again, slice after slice of an import. At most `capacity` pairs (~150 B each):
    when full it starts again empty."""

    def __init__(self, capacity: int = 1 << 17) -> None:
        self._capacity = capacity
        self._scores: dict[Texts, float] = {}

    def __len__(self) -> int:
        return len(self._scores)

    def kept(self, texts: Sequence[Texts]) -> np.ndarray:
        """The kept text score of each pair of texts, NaN where none is kept."""
        return np.array([self._scores.get(t, math.nan) for t in texts], dtype=np.float64)

    def of(self, texts: Sequence[Texts]) -> np.ndarray:
        """The text score of each pair of texts (given once each)."""
        known = [self._scores.get(t) for t in texts]
        missing = [t for t, score in zip(texts, known, strict=True) if score is None]
        if missing:
            computed = text_scores(missing).tolist()
            if len(self._scores) + len(missing) > self._capacity:
                self._scores.clear()
            self._scores.update(zip(missing, computed, strict=True))
            fresh = iter(computed)
            known = [next(fresh) if score is None else score for score in known]
        return np.array(known, dtype=np.float64)


# The kinds as `factors_many` takes them: `other`, a room, a whole unit.
KIND_CLASSES = {"other": 0, **dict.fromkeys(_ROOMS, 1), **dict.fromkeys(_WHOLE_UNITS, 2)}


def factors_many(class_a: np.ndarray, guests_a: np.ndarray, class_b: np.ndarray, guests_b: np.ndarray) -> np.ndarray:
    """`kind_factor` x `capacity_factor` of many pairs, the kinds as `KIND_CLASSES` numbers."""
    kinds = np.where((class_a == class_b) | (class_a == 0) | (class_b == 0), 1.0, KIND_MISMATCH_FACTOR)
    low, high = np.minimum(guests_a, guests_b), np.maximum(guests_a, guests_b)
    apart = (class_a == 2) & (class_b == 2) & (high - low > 2) & (high > 1.5 * low)
    return kinds * np.where(apart, CAPACITY_MISMATCH_FACTOR, 1.0)


def distances_m(lat_a: np.ndarray, lon_a: np.ndarray, lat_b: np.ndarray, lon_b: np.ndarray) -> np.ndarray:
    """`haversine_m` of many pairs of points."""
    lat_a, lon_a, lat_b, lon_b = (np.radians(v) for v in (lat_a, lon_a, lat_b, lon_b))
    h = np.sin((lat_b - lat_a) / 2) ** 2 + np.cos(lat_a) * np.cos(lat_b) * np.sin((lon_b - lon_a) / 2) ** 2
    distance: np.ndarray = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return distance


def distance_factors(distance_m: np.ndarray) -> np.ndarray:
    """`distance_factor` of many distances."""
    near = 1.0 - (1.0 - FAR_FACTOR) * (distance_m - BLUR_M) / (RADIUS_M - BLUR_M)
    factors: np.ndarray = np.where(distance_m <= BLUR_M, 1.0, np.where(distance_m > RADIUS_M, 0.0, near))
    return factors


def score_many(pairs: Sequence[tuple[PlaceListing, PlaceListing]],
               kept: TextScores | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`score(a, b).score` and the distance in metres of many pairs at once: the graph's bulk
    path (`text_scores` of each distinct pair of texts, kept in `kept` if given, and the
    factors in numpy), here for one list of pairs.

    The same features, weights and factors as `score`; floating-point sums may differ from it
    in the last bits, the rounding to 4 decimals hides that but at a rounding boundary.
    """
    if not pairs:
        return np.zeros(0), np.zeros(0)
    distinct: dict[Texts, int] = {}
    inverse = np.fromiter((distinct.setdefault((a.name, a.address, b.name, b.address), len(distinct))
                           for a, b in pairs), np.intp, len(pairs))
    texts = list(distinct)
    text = (text_scores(texts) if kept is None else kept.of(texts))[inverse]
    lat_a, lon_a, lat_b, lon_b = (np.array(v) for v in zip(*((a.lat, a.lon, b.lat, b.lon) for a, b in pairs),
                                                          strict=True))
    distance = distances_m(lat_a, lon_a, lat_b, lon_b)
    class_a, guests_a, class_b, guests_b = (np.array(v) for v in zip(
        *((KIND_CLASSES[a.kind], a.max_guests, KIND_CLASSES[b.kind], b.max_guests) for a, b in pairs), strict=True))
    factors = factors_many(class_a, guests_a, class_b, guests_b)
    return np.round(text * distance_factors(distance) * factors, 4), distance
