"""`engine.stay_totals` with fees against `Fraction` arithmetic, in process and densely.

The server test (`tests/test_fees.py`) covers the whole path; this one drives the vectorized
function itself over thousands of stays per example, with amounts chosen to land on exact
half-minor-unit ties (where the float path must hand over to the exact one), several
currencies, every basis and windows, and LWW in the shared-memory arena (`FeeColumns`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from staystream.events.fx import default_fx
from staystream.events.money import CURRENCY_INDEX, EXPONENT
from staystream.events.types import ALWAYS_FROM, ALWAYS_UNTIL, FEE_BASIS_INDEX, PERCENT_SCALE, Fee
from staystream.memory.fees import FeeColumns
from staystream.memory.layout import SHARED_ARRAYS
from staystream.memory.shm import SharedArrays
from staystream.search import engine, fees

CODES = ("EUR", "USD", "JPY", "GBP")
FX = default_fx()
_counter = [0]


def ratio(source: int, target: int) -> Fraction:
    rates = {CURRENCY_INDEX[c]: Fraction(r) for c, r in FX.table.rates.items()}
    return Fraction(10) ** (EXPONENT[target] - EXPONENT[source]) * rates[target] / rates[source]


def fee_strategy() -> st.SearchStrategy[tuple]:
    return st.tuples(
        st.sampled_from(sorted(FEE_BASIS_INDEX)), st.sampled_from(CODES),
        st.one_of(st.sampled_from([0, 1000, 2000, 1039, 2078, 500]), st.integers(0, 20_000)),
        st.one_of(st.sampled_from([0, 0, 0, 10, 12_500_000, 50 * PERCENT_SCALE, 7_700_000, 33_333_333]),
                  st.integers(0, 100 * PERCENT_SCALE)), st.booleans(), st.one_of(st.none(), st.tuples(st.integers(0, 5),
                                                                                          st.integers(1, 5))),
        st.integers(0, 3), st.booleans())


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(CODES)), min_size=1,
                                        max_size=4),
                               st.lists(st.tuples(st.integers(0, 3), fee_strategy()), max_size=6)),
                     min_size=1, max_size=12),
       checkin=st.integers(0, 8), guests=st.integers(1, 5), target=st.sampled_from(CODES))
def test_stay_totals_equal_exact_arithmetic(tmp_path_factory, rows: list, checkin: int, guests: int,
                                            target: str) -> None:
    _counter[0] += 1
    shared = SharedArrays(Path(tmp_path_factory.mktemp("shm")) / f"s{_counter[0]}", SHARED_ARRAYS, create=True)
    arena = FeeColumns(shared, rows=4, slots=2)  # small: the arena grows while fees are written
    arena.add_rows(len(rows))
    target_index = CURRENCY_INDEX[target]
    prices, currencies, expected = [], [], []
    for row, (nights, versions) in enumerate(rows):
        # 5.00 EUR is 519.5 US cents at the shipped table (1.039), and odd amounts make halves of
        # 50% fees: the float path meets exact ties and must hand them to the exact one
        night_prices = [(1 + 2 * k) * 500 + (k == 3) for k, code in nights]
        night_currencies = [CURRENCY_INDEX[code] for _, code in nights]
        changes, winners = [], {}
        for changed_at, (basis, code, amount, percent, mandatory, window, fee_id, removed) in versions:
            start, end = (ALWAYS_FROM, ALWAYS_UNTIL) if window is None else (window[0], window[0] + window[1])
            is_percent = basis == "percent"
            fee = Fee("", f"f{fee_id}", "label", FEE_BASIS_INDEX[basis], percent if is_percent else amount,
                      0 if is_percent else CURRENCY_INDEX[code], mandatory, start, end, changed_at, removed)
            changes.append((row, fee))
            if fee.fee_id not in winners or changed_at >= winners[fee.fee_id].changed_at:
                winners[fee.fee_id] = fee
        arena.apply(changes)
        own = night_currencies[0]
        nights_value = sum((p * ratio(c, own) for p, c in zip(night_prices, night_currencies, strict=True)),
                           Fraction(0))
        value = nights_value * ratio(own, target_index)
        count = len(night_prices)
        for fee in winners.values():
            if fee.removed or not fee.mandatory or not fee.start <= checkin < fee.end:
                continue
            if fee.basis == FEE_BASIS_INDEX["percent"]:
                value += nights_value * Fraction(fee.amount, 100 * PERCENT_SCALE) * ratio(own, target_index)
            else:
                times = {"per_stay": 1, "per_night": count, "per_guest_per_night": count * guests}
                basis = next(name for name, index in FEE_BASIS_INDEX.items() if index == fee.basis)
                value += fee.amount * times[basis] * ratio(fee.currency, target_index)
        prices.append(night_prices)
        currencies.append(night_currencies)
        expected.append(round(value))
    # One stay length per call, as search makes them: group the rows by their number of nights.
    got = [0] * len(rows)
    for length in {len(p) for p in prices}:
        members = np.array([i for i, p in enumerate(prices) if len(p) == length])
        price = np.array([prices[i] for i in members], dtype=np.int64).T
        currency = np.array([currencies[i] for i in members], dtype=np.int64).T
        charges = fees.stay_charges(shared, members, np.full(len(members), checkin), length, guests)
        single = (currency == currency[0]).all(axis=0)
        for i, total in zip(members.tolist(), engine.night_totals(FX, price, currency, single, charges, target_index)
                            .tolist(), strict=True):
            got[i] = total
    assert got == expected
    # the page's exact function agrees with the vectorized one
    for i in range(len(rows)):
        charges = fees.stay_charges(shared, np.array([i]), np.array([checkin]), len(prices[i]), guests)
        fixed, percent = charges.of(np.array([0]))[0]
        assert engine.exact_stay_total(FX, prices[i], currencies[i], fixed, percent, target_index) == expected[i]


def test_the_arena_grows_only_when_what_a_listing_charges_changes(tmp_path: Path) -> None:
    from staystream.memory.shm import Counter

    shared = SharedArrays(tmp_path / "shm", SHARED_ARRAYS, create=True)
    arena = FeeColumns(shared)
    arena.add_rows(2)
    eur = CURRENCY_INDEX["EUR"]

    def fee(changed_at: int, amount: int = 5000, removed: bool = False) -> Fee:
        return Fee("", "cleaning", "Cleaning", FEE_BASIS_INDEX["per_stay"], amount, eur, True, ALWAYS_FROM,
                   ALWAYS_UNTIL, changed_at, removed)

    arena.apply([(1, fee(1))])
    used = int(shared.counters[Counter.FEE_SLOTS])
    arena.apply([(1, fee(2)), (1, fee(3))])  # the same fee re-sent: nothing written
    assert int(shared.counters[Counter.FEE_SLOTS]) == used
    arena.apply([(1, fee(4, amount=6000)), (1, fee(3, amount=7000))])  # the older one loses
    assert int(shared.counters[Counter.FEE_SLOTS]) == used + 1
    assert shared["fee_amount"][shared["fee_span"][1] >> 16] == 6000
    arena.apply([(1, fee(5, removed=True)), (1, fee(4, amount=9000))])  # removed; an older version stays out
    assert shared["fee_span"][1] == 0 and shared["fee_span"][0] == 0
