"""Exact money: ISO 4217 currencies, decimal prices as integer minor units.

Prices never pass through binary floating point. A price arrives as a JSON number or a decimal
string, becomes a `Decimal`, and is stored as an integer count of the currency's minor unit
(cents for EUR, yen for JPY, fils for KWD); `ingest.Validator` rejects, rather than rounds, a
price with more decimals than its currency has: the source meant something we cannot store.

>>> format_minor(12950, "EUR")
'129.50'
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import pycountry

# ISO 4217 minor-unit exponents that differ from 2 (pycountry lists codes, not exponents).
# A number as the contract writes one: ASCII digits, optional sign, fraction and exponent. Python's
# own parsers also take '1_0' (10) and other scripts' digits ('٣', 3), which no sender means.
DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EXPONENT_EXCEPTIONS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
         "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"], 0
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
# Codes that are not money one can pay a night with (gold, testing, SDR units...).
_NOT_PAYABLE = set(["XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"])

CURRENCIES: tuple[str, ...] = tuple(
    sorted(c.alpha_3 for c in pycountry.currencies if c.alpha_3 not in _NOT_PAYABLE)
)
"""Every accepted currency code; a currency's position here is its stored index."""

CURRENCY_INDEX: dict[str, int] = {code: i for i, code in enumerate(CURRENCIES)}
EXPONENT: tuple[int, ...] = tuple(_EXPONENT_EXCEPTIONS.get(code, 2) for code in CURRENCIES)
COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
AMOUNT_LIMIT = 10**15
"""Amounts from here up are refused in any unit: no real price, and int64 minor units of a 4-decimal currency."""


class MoneyError(ValueError):
    """A price or currency that cannot be stored exactly; the message says why."""


def parse_decimal(value: object) -> Decimal:
    """A JSON number or decimal string (`"1.5"`, `"1e2"`) as an exact `Decimal`; no NaN, no infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise MoneyError(f"{value!r} is not a number or decimal string")
    if isinstance(value, float):
        value = repr(value)  # the shortest text that round-trips: what the sender wrote
    if isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value.strip()):
        raise MoneyError(f"'{value}' is not a decimal number; expected ASCII digits like 99.50 or 1e3")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise MoneyError(f"'{value}' is not a decimal number") from None
    if not number.is_finite():
        raise MoneyError(f"'{value}' is not a finite number")
    return number


def format_minor(minor: int, currency_or_index: str | int) -> str:
    """Integer minor units as the decimal string of the contract (`12950` -> `'129.50'`)."""
    index = (
        currency_or_index
        if isinstance(currency_or_index, int)
        else CURRENCY_INDEX[currency_or_index]
    )
    exponent = EXPONENT[index]
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}"
