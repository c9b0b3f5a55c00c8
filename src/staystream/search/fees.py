"""The fees a stay pays (contract v1.1, "Fees and taxes"), for many stays at once and for one.

A fee applies to a stay when it is mandatory and the stay's check-in is in its window
(`start` <= check-in < `end`). Its charge: `per_stay` its amount, `per_night` amount x nights,
`per_guest_per_night` amount x guests x nights, each in the fee's own currency; `percent` that
percent of the nights' sum in the listing's currency. Conversion is linear, so a percent fee in
any currency is that percent of the nights' value there: a stay's exact value in a currency T is
`nights x (1 + percents) + the fixed charges`, each converted like the nights, rounded once
(`engine.stay_totals` vectorized, `exact_value` exactly). Optional fees are listed on a result,
not added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from staystream.events.fx import Fx
from staystream.events.types import FEE_BASIS_INDEX, PERCENT_SCALE
from staystream.memory.fees import span_count, span_first
from staystream.memory.shm import SharedArrays

PER_STAY, PER_NIGHT, PER_GUEST_PER_NIGHT, PERCENT = (
    FEE_BASIS_INDEX[name] for name in ("per_stay", "per_night", "per_guest_per_night", "percent"))
PERCENT_DENOMINATOR = 100 * PERCENT_SCALE  # a percent fee's `amount` over this is its ratio


@dataclass(frozen=True)
class Charges:
    """The mandatory fees of many stays (CSR-like): fixed charges as flat arrays naming their
    stay, percent fees summed per stay."""

    stay: np.ndarray  # per fixed charge: the stay (position) it belongs to
    amount: np.ndarray  # per fixed charge: minor units of `currency`, nights and guests applied
    currency: np.ndarray
    percent: np.ndarray  # per stay: the sum of its percent fees, in millionths of a percent

    def foreign(self, own: np.ndarray) -> np.ndarray:
        """Per stay, whether a fixed charge is in another currency than `own` (the stay's): such
        a stay has a total only where the FX table converts, even shown in its own currency."""
        other = self.currency != own[self.stay]
        return np.bincount(self.stay[other], minlength=len(own)) > 0

    def of(self, stays: np.ndarray) -> dict[int, tuple[list[tuple[int, int]], int]]:
        """Some stays' fixed charges as (minor, currency) and percent, for `exact_minor`."""
        found: dict[int, tuple[list[tuple[int, int]], int]] = {
            stay: ([], percent) for stay, percent in zip(stays.tolist(), self.percent[stays].tolist(), strict=True)}
        mine = np.isin(self.stay, stays)
        for stay, amount, currency in zip(self.stay[mine].tolist(), self.amount[mine].tolist(),
                                          self.currency[mine].tolist(), strict=True):
            found[stay][0].append((amount, currency))
        return found


def charge(basis: int, amount: int, nights: int, guests: int) -> int:
    """A fixed fee's charge for a stay, in minor units of its currency."""
    if basis == PER_NIGHT:
        return amount * nights
    if basis == PER_GUEST_PER_NIGHT:
        return amount * guests * nights
    return amount


def has_fees(shared: SharedArrays, rows: np.ndarray) -> np.ndarray:
    """Which rows have any fee (mandatory or not, whatever its window)."""
    span = shared.covering("fee_span", rows)
    inside = rows < len(span)
    found = np.zeros(len(rows), dtype=bool)
    found[inside] = span_count(span[rows[inside]]) > 0
    return found


def stay_charges(shared: SharedArrays, rows: np.ndarray, checkins: np.ndarray, nights: int, guests: int) -> Charges:
    """The mandatory fees that apply to each stay (`rows[i]` checking in on `checkins[i]`), one
    gather of every candidate fee slot: no Python per stay."""
    span = shared.covering("fee_span", rows)
    spans = np.where(rows < len(span), span[np.minimum(rows, len(span) - 1)], 0) if len(rows) else np.zeros(0, np.int64)
    count = span_count(spans)
    total = int(count.sum())
    if not total:
        empty = np.zeros(0, dtype=np.int64)
        return Charges(empty, empty, empty, np.zeros(len(rows), dtype=np.int64))
    stay = np.repeat(np.arange(len(rows)), count)
    starts = np.cumsum(count) - count
    slot = span_first(spans)[stay] + (np.arange(total) - starts[stay])
    basis = shared.covering("fee_basis", slot)[slot]
    checkin = checkins[stay]
    applies = shared.covering("fee_mandatory", slot)[slot] == 1
    applies &= shared.covering("fee_start", slot)[slot] <= checkin
    applies &= checkin < shared.covering("fee_end", slot)[slot]
    amount = shared.covering("fee_amount", slot)[slot]
    is_percent = applies & (basis == PERCENT)
    # Exact in float64: each is at most 10^8, and a listing has few.
    percent = np.bincount(stay[is_percent], weights=amount[is_percent], minlength=len(rows)).astype(np.int64)
    fixed = applies & (basis != PERCENT)
    multiplier = np.where(basis == PER_NIGHT, nights, np.where(basis == PER_GUEST_PER_NIGHT, nights * guests, 1))
    currency = shared.covering("fee_currency", slot)[slot]
    return Charges(stay[fixed], (amount * multiplier)[fixed], currency[fixed].astype(np.int64), percent)


def exact_value(fx: Fx, nights: Iterable[tuple[int, int]], fixed: Sequence[tuple[int, int]], percent: int,
                target: int) -> Fraction:
    """A stay's exact value in `target` minor units (not rounded): the nights ((minor, currency)
    each) times 1 + `percent` (millionths of a percent), plus the fixed charges."""
    numerator, denominator = _exact(fx, nights, fixed, percent, target)
    return Fraction(numerator, denominator)


def exact_minor(fx: Fx, nights: Iterable[tuple[int, int]], fixed: Sequence[tuple[int, int]], percent: int,
                target: int) -> int:
    """`exact_value` rounded once, half-even, in integers (several times faster than `Fraction`:
    search recomputes every total within float error of half a minor unit, exact ties included)."""
    numerator, denominator = _exact(fx, nights, fixed, percent, target)
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    return quotient + (twice > denominator or (twice == denominator and quotient % 2 == 1))


def _exact(fx: Fx, nights: Iterable[tuple[int, int]], fixed: Sequence[tuple[int, int]], percent: int,
           target: int) -> tuple[int, int]:
    """(numerator, denominator > 0) of `exact_value`, over one common denominator."""
    sums: dict[int, int] = {}
    for minor, currency in nights:
        sums[currency] = sums.get(currency, 0) + minor
    terms = [(minor * (PERCENT_DENOMINATOR + percent), PERCENT_DENOMINATOR, currency)
             for currency, minor in sums.items()]
    terms += [(minor, 1, currency) for minor, currency in fixed]
    numerator, denominator = 0, 1
    for minor, scale, currency in terms:
        if currency == target:
            top, bottom = minor, scale
        else:
            ratio = fx.minor_ratio(currency, target)
            top, bottom = minor * ratio.numerator, scale * ratio.denominator
        numerator, denominator = numerator * bottom + top * denominator, denominator * bottom
    return numerator, denominator


def convert(fx: Fx, minor: int, currency: int, target: int) -> Fraction:
    """Minor units of `currency` as exact minor units of `target` (`KeyError` without a rate)."""
    if currency == target:
        return Fraction(minor)
    return minor * fx.minor_ratio(currency, target)


def breakdown(fx: Fx, fees: list[dict[str, Any]], checkin: int, guests: int, prices: list[int],
              currencies: list[int], shown: int) -> tuple[list[dict[str, Any]], list[tuple[int, int]], int]:
    """A result's `fees` (every fee whose window holds the check-in, mandatory or not, each
    amount in minor units of `shown`, rounded half-even on its own) and the mandatory ones as
    `exact_value` takes them: (listed, fixed charges, percent). A percent fee is of the nights'
    sum in the listing's currency (the check-in night's), converted like the nights."""
    nights = len(prices)
    own = currencies[0]
    listed: list[dict[str, Any]] = []
    fixed: list[tuple[int, int]] = []
    percent = 0
    for fee in fees:
        if not fee["start_day"] <= checkin < fee["end_day"]:
            continue
        if fee["basis"] == PERCENT:
            nights_value = exact_value(fx, zip(prices, currencies, strict=True), (), 0, own)
            value = nights_value * Fraction(fee["amount"], PERCENT_DENOMINATOR)
            shown_value = value if own == shown else value * convert(fx, 1, own, shown)
            if fee["mandatory"]:
                percent += fee["amount"]
        else:
            minor = charge(fee["basis"], fee["amount"], nights, guests)
            shown_value = convert(fx, minor, fee["currency"], shown)
            if fee["mandatory"]:
                fixed.append((minor, fee["currency"]))
        listed.append({"fee_id": fee["fee_id"], "label": fee["label"], "amount": round(shown_value),
                       "mandatory": bool(fee["mandatory"])})
    return listed, fixed, percent
