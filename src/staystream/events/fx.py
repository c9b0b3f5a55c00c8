"""Currency conversion for search answers, from a dated FX table that can be replaced live.

A table is `{"name", "date", "base", "rates": {code: units of code per 1 base}}`. Every search
answer names the table and its date, so a price shown in another currency says where its rate
came from. Conversions for ranking use float64 factors over whole columns; the amounts shown
are computed exactly with `Decimal` and rounded half-even to the target's minor unit.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np

from staystream.events.money import CURRENCIES, CURRENCY_INDEX, EXPONENT, MoneyError, parse_decimal


class FxTable(msgspec.Struct, frozen=True):
    name: str
    date: dt.date
    base: str
    rates: dict[str, str]
    note: str = ""


class Fx:
    """A validated FX table with per-currency conversion factors precomputed."""

    def __init__(self, table: FxTable) -> None:
        if table.base not in CURRENCY_INDEX:
            raise MoneyError(f"FX table base '{table.base}' is not an ISO 4217 currency code")
        rates: dict[int, Decimal] = {}
        for code, text in table.rates.items():
            if code not in CURRENCY_INDEX:
                raise MoneyError(f"FX table rate for '{code}': not an ISO 4217 currency code")
            rate = parse_decimal(text)
            if rate <= 0:
                raise MoneyError(f"FX table rate for '{code}' is '{text}'; expected > 0")
            rates[CURRENCY_INDEX[code]] = rate
        if rates.get(CURRENCY_INDEX[table.base]) != 1:
            raise MoneyError(f"FX table rate for its base '{table.base}' must be 1")
        self.table = table
        self.rates = rates
        # Units of currency i per 1 base, NaN where the table has no rate.
        self.per_base = np.full(len(CURRENCIES), np.nan)
        for index, rate in rates.items():
            self.per_base[index] = float(rate)
        self.minor_scale = np.array([10.0**e for e in EXPONENT])
        self._ratios: dict[tuple[int, int], Fraction] = {}

    @property
    def label(self) -> dict[str, str]:
        return {"name": self.table.name, "date": self.table.date.isoformat(), "base": self.table.base}

    def minor_factors(self, target: int) -> np.ndarray:
        """Per source currency, the float factor turning its minor units into `target`'s."""
        return (self.per_base[target] / self.per_base) * (  # type: ignore[no-any-return]  # numpy: Any
            self.minor_scale[target] / self.minor_scale
        )

    def minor_ratio(self, source: int, target: int) -> Fraction:
        """The exact factor turning minor units of `source` into minor units of `target`
        (`KeyError` without a rate), computed once per pair."""
        ratio = self._ratios.get((source, target))
        if ratio is None:
            ratio = Fraction(10) ** (EXPONENT[target] - EXPONENT[source]) * Fraction(self.rates[target]) / Fraction(
                self.rates[source])
            self._ratios[source, target] = ratio
        return ratio

    def convert_minor(self, minor: int, source: int, target: int) -> int:
        """Exact conversion of integer minor units, rounded half-even to the target's unit."""
        if source == target:
            return minor
        amount = Decimal(minor).scaleb(-EXPONENT[source])
        converted = amount / self.rates[source] * self.rates[target]
        return int(converted.scaleb(EXPONENT[target]).quantize(Decimal(1), ROUND_HALF_EVEN))

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self.table)


def load_fx(data: bytes) -> Fx:
    try:
        return Fx(msgspec.json.decode(data, type=FxTable))
    except msgspec.ValidationError as exc:
        raise MoneyError(f"FX table: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MoneyError(f"FX table is not valid JSON: {exc}") from None


def default_fx(path: Path | None = None) -> Fx:
    """The table from `path`, else the dated table shipped with the package."""
    if path is not None:
        return load_fx(path.read_bytes())
    return load_fx(resources.files("staystream").joinpath("data/fx-default.json").read_bytes())


__all__ = ["Fx", "FxTable", "default_fx", "load_fx"]
