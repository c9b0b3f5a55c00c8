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
from staystream.events.money import EXPONENT
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

    def of(self, stay: int) -> tuple[list[tuple[int, int]], int]:
        """One stay's fixed charges as (minor, currency) and its percent, for `exact_value`."""
        mine = np.flatnonzero(self.stay == stay)
        return list(zip(self.amount[mine].tolist(), self.currency[mine].tolist(), strict=True)), int(self.percent[stay])


def charge(basis: int, amount: int, nights: int, guests: int) -> int:
    """A fixed fee's charge for a stay, in minor units of its currency."""
    if basis == PER_NIGHT:
        return amount * nights
    if basis == PER_GUEST_PER_NIGHT:
        return amount * guests * nights
    return amount


def stay_charges(shared: SharedArrays, rows: np.ndarray, checkins: np.ndarray, nights: int, guests: int) -> Charges:
    """The mandatory fees that apply to each stay (`rows[i]` checking in on `checkins[i]`), one
    gather of every candidate fee slot: no Python per stay."""
    span = _fresh(shared, "fee_span", rows)
    spans = np.where(rows < len(span), span[np.minimum(rows, len(span) - 1)], 0) if len(rows) else np.zeros(0, np.int64)
    count = span_count(spans)
    total = int(count.sum())
    if not total:
        empty = np.zeros(0, dtype=np.int64)
        return Charges(empty, empty, empty, np.zeros(len(rows), dtype=np.int64))
    stay = np.repeat(np.arange(len(rows)), count)
    starts = np.cumsum(count) - count
    slot = span_first(spans)[stay] + (np.arange(total) - starts[stay])
    basis = _fresh(shared, "fee_basis", slot)[slot]
    checkin = checkins[stay]
    applies = (_fresh(shared, "fee_mandatory", slot)[slot] == 1) & (_fresh(shared, "fee_start", slot)[slot] <= checkin)
    applies &= checkin < _fresh(shared, "fee_end", slot)[slot]
    amount = _fresh(shared, "fee_amount", slot)[slot]
    percent = np.zeros(len(rows), dtype=np.int64)
    is_percent = applies & (basis == PERCENT)
    np.add.at(percent, stay[is_percent], amount[is_percent])
    fixed = applies & (basis != PERCENT)
    multiplier = np.where(basis == PER_NIGHT, nights, np.where(basis == PER_GUEST_PER_NIGHT, nights * guests, 1))
    currency = _fresh(shared, "fee_currency", slot)[slot]
    return Charges(stay[fixed], (amount * multiplier)[fixed], currency[fixed].astype(np.int64), percent)


def exact_value(fx: Fx, nights: Iterable[tuple[int, int]], fixed: Sequence[tuple[int, int]], percent: int,
                target: int) -> Fraction:
    """A stay's exact value in `target` minor units (not rounded): the nights ((minor, currency)
    each) times 1 + `percent` (millionths of a percent), plus the fixed charges."""
    sums: dict[int, int] = {}
    for minor, currency in nights:
        sums[currency] = sums.get(currency, 0) + minor
    value = sum((convert(fx, minor, currency, target) for currency, minor in sums.items()), Fraction(0))
    value *= 1 + Fraction(percent, PERCENT_DENOMINATOR)
    return value + sum((convert(fx, minor, currency, target) for minor, currency in fixed), Fraction(0))


def convert(fx: Fx, minor: int, currency: int, target: int) -> Fraction:
    """Minor units of `currency` as exact minor units of `target` (`KeyError` without a rate)."""
    if currency == target:
        return Fraction(minor)
    scale = Fraction(10) ** (EXPONENT[target] - EXPONENT[currency])
    return minor * scale * Fraction(fx.rates[target]) / Fraction(fx.rates[currency])


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


def _fresh(shared: SharedArrays, name: str, index: np.ndarray) -> np.ndarray:
    """`shared[name]`, remapped if the writer grew it after this request mapped it."""
    array = shared[name]
    if index.size and int(index.max()) >= len(array):
        shared.refresh()
        array = shared[name]
    return array
