"""What a pushed partner message became: events with their origin, errors and warnings.

Push protocols (OTA, Expedia EQC) answer each message with a status naming the parts that
failed, so every event remembers the element it came from (`RateAmountMessage[3]`) and every
problem says where it is, the value, and what was expected:

    RateAmountMessage[3]/StatusApplicationControl@Start: '2025-13-01' is not a date; expected YYYY-MM-DD

The readers below fetch attributes with that kind of error (`Invalid`), so an adapter stays a
list of what it reads, not of how it complains.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol

from staystream.adapters.facts import FactEvent

NOT_IMPLEMENTED = 2  # OTA Error Warning Type "No implementation": a part read but not used
TRUE_WORDS = {"true": True, "1": True, "false": False, "0": False}
FIRST_DATE, LAST_DATE = dt.date(1970, 1, 1), dt.date(2199, 12, 31)  # far beyond any horizon, far from overflow


@dataclass(frozen=True)
class Problem:
    """One error or warning: where (element path, `@attribute`), what, and the codes to send.

    `code` is the protocol's error code (OTA ERR list, EQC codes), `type` the OTA Error
    Warning Type (EWT: 3 business rule, 7 protocol violation, 10 required field missing,
    11 advisory, 12 processing exception).
    """

    where: str
    message: str
    code: int = 320
    type: int = 3

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class Invalid(ValueError):
    """An element or attribute that cannot be read; carries the `Problem` to report."""

    def __init__(self, where: str, message: str, code: int = 320, type: int = 3) -> None:
        super().__init__(f"{where}: {message}")
        self.problem = Problem(where, message, code, type)


@dataclass
class Outcome:
    """A message's events (with the element each came from), errors and warnings."""

    events: list[FactEvent] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    elements: int = 0  # update elements read: what an RS can count as applied

    def add(self, events: list[FactEvent], origin: str) -> None:
        self.events.extend(events)
        self.origins.extend([origin] * len(events))

    def warn(self, where: str, message: str, code: int = 320, type: int = 11) -> None:
        self.warnings.append(Problem(where, message, code, type))

    def rejected(self, rejected: list[dict[str, object]], code: int = 320) -> None:
        """Turn the service's rejections (`{"index", "error"}`) into errors at their element."""
        seen: set[tuple[str, str]] = set()
        for rejection in rejected:
            index, error = int(rejection["index"]), str(rejection["error"])  # type: ignore[call-overload]  # index is an int
            where = self.origins[index] if 0 <= index < len(self.origins) else ""
            if (where, error) in seen:  # one element's runs often fail for the same reason
                continue
            seen.add((where, error))
            self.errors.append(Problem(where, error, code, 3))


def located(path: str, name: str) -> str:
    """`path@name`: where an attribute is, in messages."""
    return f"{path}@{name}" if path else f"@{name}"


def text_attr(element: ET.Element, name: str, path: str, required: bool = False) -> str | None:
    """An attribute's trimmed value; None when absent (an `Invalid` if `required`)."""
    value = element.get(name)
    if value is None or not value.strip():
        if required:
            raise Invalid(located(path, name), "missing; it is required", 321, 10)
        return None
    return value.strip()


def code_attr(element: ET.Element, name: str, path: str, required: bool = False) -> str | None:
    """A partner code used inside listing ids: printable, at most 40 characters, no ':'."""
    value = text_attr(element, name, path, required)
    if value is None:
        return None
    if ":" in value or not value.isprintable() or len(value) > 40:
        raise Invalid(located(path, name), f"{value[:60]!r} is not a usable code; expected up to 40 "
                                           "printable characters without ':' (it joins listing ids)")
    return value


def date_attr(element: ET.Element, name: str, path: str, required: bool = False) -> dt.date | None:
    value = text_attr(element, name, path, required)
    if value is None:
        return None
    try:
        if "T" in value:  # some senders write midnight datetimes where xs:date belongs
            day = dt.datetime.fromisoformat(value).date()
        elif len(value) != 10:
            raise ValueError(value)
        else:
            day = dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid(located(path, name), f"'{value[:40]}' is not a date; expected YYYY-MM-DD", 15, 3) from None
    if not FIRST_DATE <= day <= LAST_DATE:
        raise Invalid(located(path, name), f"'{value}' is out of range; expected a date from {FIRST_DATE} "
                                           f"to {LAST_DATE}", 15, 3)
    return day


def int_attr(element: ET.Element, name: str, path: str, low: int, high: int, required: bool = False) -> int | None:
    value = text_attr(element, name, path, required)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise Invalid(located(path, name), f"'{value[:40]}' is not an integer; expected {low} to {high}") from None
    if not low <= number <= high:
        raise Invalid(located(path, name), f"{number} is out of range; expected {low} to {high}")
    return number


def bool_attr(element: ET.Element, name: str, path: str) -> bool | None:
    value = text_attr(element, name, path)
    if value is None:
        return None
    flag = TRUE_WORDS.get(value.lower())
    if flag is None:
        raise Invalid(located(path, name), f"'{value[:40]}' is not a boolean; expected true, false, 1 or 0")
    return flag


def decimal_attr(element: ET.Element, name: str, path: str, decimal_places: int | None = None) -> Decimal | None:
    """A non-negative decimal amount; with `decimal_places` an integer in minor units
    (Booking.com: `13350` with `DecimalPlaces="2"` is 133.50)."""
    value = text_attr(element, name, path)
    if value is None:
        return None
    where = located(path, name)
    if decimal_places is not None:
        if not value.isdigit():
            raise Invalid(where, f"'{value[:40]}' is not a whole number; with DecimalPlaces="
                                 f"{decimal_places} the amount is written in minor units (13350 for 133.50)")
        return Decimal(int(value)).scaleb(-decimal_places)
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise Invalid(where, f"'{value[:40]}' is not a decimal amount; expected e.g. 129.50") from None
    if not amount.is_finite() or amount < 0 or "e" in value.lower():
        raise Invalid(where, f"'{value[:40]}' is not a plain non-negative amount; expected e.g. 129.50")
    return amount


def weekdays_attr(element: ET.Element, path: str, names: dict[str, int]) -> frozenset[int] | None:
    """A day-of-week mask (0 = Monday) from boolean attributes; None when the element has none.

    A day the mask leaves out counts as true (Google's default; SiteMinder sends all or none).
    """
    flags: dict[int, bool] = {}
    for name, day in names.items():
        flag = bool_attr(element, name, path)
        if flag is not None:
            flags[day] = flag
    if not flags:
        return None
    return frozenset(day for day in range(7) if flags.get(day, True))


def occupancy_rank(guests: int | None, target: int = 2) -> tuple[int, int]:
    """Order of preference among per-occupancy amounts, lowest first: the amount for `target`
    guests (the source's setting, by default 2: what metasearch shows, a double room), then the
    per-room amount (no occupancy), then the occupancy nearest to `target`, fewer guests on a
    tie (1 before 3)."""
    if guests == target:
        return (0, 0)
    if guests is None:
        return (1, 0)
    return (2, abs(guests - target) * 2 + (guests > target))


class Products(Protocol):
    """The rate plans the store knows, for elements that name a room type but no rate plan."""

    def listing_ids(self, prefix: str) -> list[str]:
        """Listing ids of the source that start with `prefix` (`Hotel:Room:`), sorted."""
        ...


class NoProducts:
    """Knows no product: for parsing a message on its own (tests, tools)."""

    def listing_ids(self, prefix: str) -> list[str]:
        return []


# What an adapter reads of an element: its attributes, and its children (by local name).
Schema = Mapping[str, tuple[frozenset[str], frozenset[str]]]


def unread_parts(element: ET.Element, path: str, schema: Schema, outcome: Outcome, code: int = 320) -> None:
    """Warn about every attribute and child element the adapter does not read (grouped by
    name): a partner's extension or a newer schema's field is reported, never a rejection."""
    attributes, child_names = schema.get(element.tag, (frozenset(), frozenset()))
    for name in element.attrib:
        if name not in attributes and not name.startswith("{"):
            outcome.warn(located(path, name), f"attribute {element.tag}@{name} is not read; ignored", code,
                         NOT_IMPLEMENTED)
    counts: dict[str, int] = {}
    for child in element:  # the tree holds elements only (xmlsafe's builder drops comments)
        counts[child.tag] = counts.get(child.tag, 0) + 1
        child_path = f"{path}/{child.tag}[{counts[child.tag]}]"
        if child.tag not in child_names:
            outcome.warn(child_path, f"element {child.tag} is not read; ignored", code, NOT_IMPLEMENTED)
        else:
            unread_parts(child, child_path, schema, outcome, code)


def grouped(problems: list[Problem]) -> list[Problem]:
    """One warning per distinct (message, code) with the elements it concerns, so 700 days of
    ignored closed-to-arrival flags make one Warning, not 700."""
    groups: dict[tuple[str, int], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.message, problem.code), []).append(problem)
    result = []
    for same in groups.values():
        first = same[0]
        if len(same) == 1:
            result.append(first)
            continue
        places = ", ".join(p.where for p in same[:5]) + (f" and {len(same) - 5} more" if len(same) > 5 else "")
        result.append(
            Problem(first.where, f"{first.message} (in {len(same)} places: {places})", first.code, first.type)
        )
    return result
