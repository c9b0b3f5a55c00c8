"""iCalendar (RFC 5545) availability feeds, as Airbnb, VRBO, Booking.com and OwnerRez export them.

A feed is a snapshot of one listing: each VEVENT blocks nights (a reservation or a host
block), every other night of the feed's horizon is open. A feed says nothing of prices or stay
rules, so it sets the **availability** fact only (`facts.py`): a blocked night becomes
unavailable and keeps whatever price it has, an open night becomes available with whatever
price it has, or none (the calendar then shows price null and search skips the night until a
price arrives). No currency is needed. Choices (docs/adapters.md says why):

- all-day events (`DTSTART;VALUE=DATE`) block DTSTART <= night < DTEND (DTEND is the checkout
  day); without DTEND, `DURATION` (whole days) or else one night;
- timed events block every date they overlap in local time (an end at exactly 00:00 does not
  touch that date): a same-day turnover shows as blocked, never as sellable. `TZID` times are
  taken at their wall-clock date; UTC times are converted to `X-WR-TIMEZONE` when the feed has
  one, else to the source's time zone (sources file; default UTC);
- `STATUS:CANCELLED` events block nothing; `RRULE` (never sent by these exporters) is refused;
- the horizon is [start, end) from the request, by default today and the next 365 nights;
- a malformed event does not stop the rest, but then **no night is opened**: the nights the
  bad event meant to block are unknown, and selling one of them would be worse than waiting
  for the next fetch. Likewise a feed with no VEVENT at all opens nothing unless the caller
  says `empty_ok` (Airbnb sometimes serves an empty calendar by mistake).

The parser is the standard library's: the feeds use a small part of RFC 5545 (unfolding,
parameters, DATE and DATE-TIME values, DURATION), and errors must name the line, which
`icalendar` does not track.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from staystream.adapters.facts import Availability, describe_nights, events
from staystream.adapters.messages import Outcome, Problem

DEFAULT_HORIZON_NIGHTS = 365  # Airbnb exports a year ahead; later nights sit in its rolling block
MAX_VEVENTS = 50_000
MAX_HORIZON_NIGHTS = 1100
MAX_REPORTED = 100
_DURATION = re.compile(r"([+-]?)P(?:(\d+)W|(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)$")
_DATE = re.compile(r"\d{8}$")
_DATE_TIME = re.compile(r"(\d{8})T(\d{6})(Z?)$")


class FeedError(ValueError):
    """The body is not an iCalendar feed at all (`400`)."""


@dataclass
class Block:
    """The nights one VEVENT blocks: first <= night < end."""

    first: dt.date
    end: dt.date
    line: int
    uid: str | None = None
    summary: str | None = None
    timed: tuple[_Moment, _Moment] | None = None  # start and end of a timed event, until localized


@dataclass
class Feed:
    """A feed as read: its blocking events and the problems of the others, by line."""

    blocks: list[Block] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # advisory: nights still open
    vevents: int = 0
    cancelled: int = 0
    prodid: str | None = None
    timezone: str | None = None


@dataclass
class Result:
    """What a feed did to a listing's calendar."""

    outcome: Outcome
    blocked_nights: int = 0
    open_nights: int = 0
    opened: bool = True  # whether open nights were applied (see the module docstring)


@dataclass
class _Line:
    number: int
    name: str
    params: dict[str, str]
    value: str


def read_feed(document: bytes, zone: dt.tzinfo | None = None) -> Feed:
    """Parse a feed; `FeedError` if it is not a VCALENDAR, `Problem`s for bad events or lines.

    `zone` is where UTC times are dated when the feed names no `X-WR-TIMEZONE`."""
    text = document.decode("utf-8-sig", errors="replace")
    feed = Feed()
    first = next(((number, raw.strip()) for number, raw in enumerate(text.split("\n"), start=1) if raw.strip()), None)
    if first is None:
        raise FeedError("the body is empty; expected an iCalendar feed starting with BEGIN:VCALENDAR")
    if first[1].upper() != "BEGIN:VCALENDAR":
        raise FeedError(f"line {first[0]}: '{first[1][:60]}' is not BEGIN:VCALENDAR; expected an iCalendar feed")
    lines = _content_lines(text, feed.problems)
    stack: list[tuple[str, int]] = []
    event: list[_Line] | None = None
    event_line = 0
    for line in lines:
        if line.name == "BEGIN":
            component = line.value.upper()
            stack.append((component, line.number))
            if component == "VEVENT" and len(stack) == 2:
                event, event_line = [], line.number
                feed.vevents += 1
                if feed.vevents > MAX_VEVENTS:
                    raise FeedError(f"line {line.number}: more than {MAX_VEVENTS} events; expected one "
                                    "listing's calendar")
            continue
        if line.name == "END":
            component = line.value.upper()
            if not stack or stack[-1][0] != component:
                open_component = stack[-1][0] if stack else "nothing"
                feed.problems.append(Problem(f"line {line.number}", f"END:{line.value} closes {open_component}; "
                                                                     f"expected END:{open_component}"))
                if event is not None and component == "VEVENT":  # resynchronize on the event's end
                    while stack and stack[-1][0] != "VEVENT":
                        stack.pop()
                else:
                    continue
            stack.pop()
            if component == "VEVENT" and event is not None:
                _event(event, event_line, feed)
                event = None
            continue
        if event is not None and len(stack) == 2:
            event.append(line)
        elif len(stack) == 1:
            if line.name == "PRODID":
                feed.prodid = line.value
            elif line.name == "X-WR-TIMEZONE":
                feed.timezone = line.value.strip()
    if event is not None:
        feed.problems.append(Problem(f"line {event_line}", "BEGIN:VEVENT is never closed; expected END:VEVENT"))
    elif stack:
        feed.problems.append(Problem(f"line {stack[0][1]}", f"BEGIN:{stack[-1][0]} is never closed"))
    _localize(feed, zone)
    return feed


def plan(
    feed: Feed, source: str, listing_id: str, *,
    start: dt.date, end: dt.date, changed_at: dt.datetime, empty_ok: bool = False,
) -> Result:
    """Availability events that make the listing's nights in [start, end) what the feed says."""
    outcome = Outcome(errors=list(feed.problems), warnings=list(feed.warnings))
    result = Result(outcome)
    if end <= start or (end - start).days > MAX_HORIZON_NIGHTS:
        raise FeedError(f"end: '{end}' must be after start '{start}' and at most {MAX_HORIZON_NIGHTS} nights later")
    horizon = [start + dt.timedelta(days=i) for i in range((end - start).days)]
    blocked = _blocked_nights(feed.blocks, start, end, horizon)
    open_nights = [night for night in horizon if night not in blocked]
    result.blocked_nights, result.open_nights = len(blocked), len(open_nights)
    outcome.add(events(source, listing_id, blocked, Availability(False), changed_at), "VEVENT")
    if feed.problems or (feed.vevents == 0 and not empty_ok):
        result.opened = False
        why = ("the feed has malformed events, whose nights are unknown" if feed.problems else
               "the feed has no events at all (pass empty_ok=true if the calendar really is empty)")
        outcome.warn("", f"{describe_nights(open_nights)} were not opened: {why}")
    else:
        outcome.add(events(source, listing_id, open_nights, Availability(True), changed_at), "open nights")
    return result


def read_feed_within(document: bytes, start: dt.date, end: dt.date, zone: dt.tzinfo | None = None) -> Feed:
    """`read_feed`, its blocks reduced to the runs of nights they block within [start, end).

    `plan` gives the same result for it; what changes is the size: 30,000 overlapping events
    become a few runs, cheap to send back from the process that parsed them (`api/offload.py`)."""
    feed = read_feed(document, zone)
    if start < end and (end - start).days <= MAX_HORIZON_NIGHTS:
        horizon = [start + dt.timedelta(days=i) for i in range((end - start).days)]
        runs: list[Block] = []
        for night, line in sorted(_blocked_nights(feed.blocks, start, end, horizon).items()):
            if runs and runs[-1].end == night and runs[-1].line == line:
                runs[-1].end = night + dt.timedelta(days=1)
            else:
                runs.append(Block(night, night + dt.timedelta(days=1), line))
        feed.blocks = runs
    return feed


def _blocked_nights(blocks: list[Block], start: dt.date, end: dt.date, horizon: list[dt.date]) -> dict[dt.date, int]:
    """Night -> the line of the first event blocking it, within [start, end).

    Each night is visited once however many events cover it (30,000 century-long events are
    30,000 clipped intervals, not 30,000 horizons): `unfilled[i]` points at or before the next
    night not blocked yet, and is compressed as it is followed."""
    unfilled = list(range(len(horizon) + 1))

    def next_unfilled(i: int) -> int:
        root = i
        while unfilled[root] != root:
            root = unfilled[root]
        while unfilled[i] != root:
            unfilled[i], i = root, unfilled[i]
        return root

    blocked: dict[dt.date, int] = {}
    for block in blocks:
        first, last = max(block.first, start), min(block.end, end)
        if first >= last:
            continue
        i, stop = next_unfilled((first - start).days), (last - start).days
        while i < stop:
            blocked[horizon[i]] = block.line
            unfilled[i] = i + 1
            i = next_unfilled(i + 1)
    return blocked


def parse(
    document: bytes, source: str, listing_id: str, zone: dt.tzinfo | None = None, **options: object
) -> tuple[Feed, Result]:
    """`read_feed` then `plan` (options: start, end, changed_at, empty_ok)."""
    feed = read_feed(document, zone)
    return feed, plan(feed, source, listing_id, **options)  # type: ignore[arg-type]  # plan checks its keywords


# -- lines --------------------------------------------------------------------------------------


def _content_lines(text: str, problems: list[Problem]) -> list[_Line]:
    """Unfolded content lines (RFC 5545 3.1), each with the number of its first physical line."""
    logical: list[tuple[int, list[str]]] = []  # parts joined once: appending to a str is quadratic
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if raw[:1] in (" ", "\t") and logical:
            logical[-1][1].append(raw[1:])
        elif raw.strip():
            logical.append((number, [raw]))
    lines = []
    for number, parts in logical:
        parsed = _content_line("".join(parts), number)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            lines.append(parsed)
    return lines


def _content_line(raw: str, number: int) -> _Line | Problem:
    """`NAME;PARAM=VALUE;PARAM="QUOTED:VALUE":value`, or the problem with it."""
    quoted = False
    colon = -1
    for index, char in enumerate(raw):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            colon = index
            break
    if colon <= 0:
        return Problem(f"line {number}", f"'{raw[:60]}' is not a content line; expected NAME[;PARAM=VALUE]:VALUE")
    head, value = raw[:colon], raw[colon + 1:]
    parts = _split_params(head)
    name = parts[0].strip().upper()
    if not name or not re.fullmatch(r"[A-Z0-9-]+", name):
        return Problem(f"line {number}", f"'{parts[0][:40]}' is not a property name; expected letters, digits, '-'")
    params = {}
    for part in parts[1:]:
        key, equals, param_value = part.partition("=")
        if not equals:
            return Problem(f"line {number}", f"parameter '{part[:40]}' of {name} has no value; expected NAME=VALUE")
        params[key.strip().upper()] = param_value.strip().strip('"')
    return _Line(number, name, params, value)


def _split_params(head: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in head:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


# -- events -------------------------------------------------------------------------------------


@dataclass
class _Moment:
    """A DTSTART/DTEND value: a date, or a date-time with its zone kind."""

    day: dt.date
    time: dt.time | None = None  # None: an all-day DATE
    utc: bool = False
    line: int = 0


def _event(lines: list[_Line], begin: int, feed: Feed) -> None:
    props: dict[str, _Line] = {}
    for line in lines:
        props.setdefault(line.name, line)
    try:
        if "STATUS" in props and props["STATUS"].value.strip().upper() == "CANCELLED":
            feed.cancelled += 1
            return
        if "RRULE" in props:
            raise _Bad(props["RRULE"].number, "RRULE: recurring events are not supported; expected "
                                              "one VEVENT per reservation or block")
        if "DTSTART" not in props:
            raise _Bad(begin, "VEVENT has no DTSTART; expected e.g. DTSTART;VALUE=DATE:20250410")
        start = _moment(props["DTSTART"])
        end = _moment(props["DTEND"]) if "DTEND" in props else None
        if end is None and "DURATION" in props:
            end = _plus_duration(start, props["DURATION"])
        if end is not None and (end.time is None) != (start.time is None):
            raise _Bad(
                end.line,
                f"DTEND: '{props['DTEND'].value}' is a "
                f"{'date' if end.time is None else 'date-time'} but DTSTART is not; expected both alike",
            )
        feed.blocks.append(_block(start, end, begin, props))
    except _Bad as exc:
        feed.problems.append(Problem(f"line {exc.line}", exc.message))
    except OverflowError:  # 9999-12-31 plus a day, or a DURATION of millions of weeks
        feed.problems.append(Problem(f"line {begin}", "the event ends after year 9999; expected a real stay"))


class _Bad(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _moment(line: _Line) -> _Moment:
    value = line.value.strip()
    kind = line.params.get("VALUE", "").upper()
    if _DATE.fullmatch(value) and kind in ("", "DATE"):
        try:
            return _Moment(dt.datetime.strptime(value, "%Y%m%d").date(), line=line.number)
        except ValueError:
            pass
    else:
        found = _DATE_TIME.fullmatch(value)
        if found and kind in ("", "DATE-TIME"):
            try:
                moment = dt.datetime.strptime(found.group(1) + found.group(2), "%Y%m%d%H%M%S")
            except ValueError:
                pass
            else:
                return _Moment(moment.date(), moment.time(), bool(found.group(3)), line.number)
    raise _Bad(line.number, f"{line.name}: '{value[:40]}' is not a date or date-time; expected "
                            "YYYYMMDD (VALUE=DATE) or YYYYMMDDTHHMMSS[Z]")


def _plus_duration(start: _Moment, line: _Line) -> _Moment:
    found = _DURATION.fullmatch(line.value.strip())
    if not found or found.group(1) == "-" or line.value.strip() in ("P", "PT"):
        raise _Bad(line.number, f"DURATION: '{line.value[:40]}' is not a positive duration; expected e.g. P3D or PT4H")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in found.groups()[1:])
    span = dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if start.time is None:
        if span.seconds or span.microseconds:
            raise _Bad(line.number, f"DURATION: '{line.value}' is not whole days; an all-day event needs e.g. P3D")
        return _Moment(start.day + span, line=line.number)
    moment = dt.datetime.combine(start.day, start.time) + span
    return _Moment(moment.date(), moment.time(), start.utc, line.number)


def _block(start: _Moment, end: _Moment | None, begin: int, props: dict[str, _Line]) -> Block:
    uid = props["UID"].value if "UID" in props else None
    summary = props["SUMMARY"].value if "SUMMARY" in props else None
    block = Block(start.day, start.day + dt.timedelta(days=1), begin, uid, summary)
    if start.time is None:
        if end is not None:
            if end.day <= start.day:
                raise _Bad(end.line, f"DTEND: '{end.day:%Y%m%d}' is not after DTSTART '{start.day:%Y%m%d}'; "
                                     "expected the checkout day, after the first night")
            block.end = end.day
        return block
    block.timed = (start, end or start)  # dated once the feed's zone is known (`_localize`)
    return block


def _localize(feed: Feed, default_zone: dt.tzinfo | None) -> None:
    """Dates of timed events in the feed's local time (see the module docstring)."""
    zone = default_zone
    if feed.timezone:
        try:
            zone = ZoneInfo(feed.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            feed.warnings.append(Problem("X-WR-TIMEZONE", f"'{feed.timezone[:40]}' is not a known time zone; "
                                                          "UTC times were dated in the source's zone", 320, 11))
    for block in feed.blocks:
        if block.timed is None:
            continue
        start, end = block.timed
        try:
            first, last = _local(start, zone), _local(end, zone)
            if last < first:
                feed.problems.append(
                    Problem(f"line {end.line}", "DTEND is before DTSTART; expected the end after the start")
                )
                block.end = block.first  # blocks nothing
                continue
            last_date = last.date()
            if last.time() == dt.time(0) and last > first:
                last_date -= dt.timedelta(days=1)  # ends at midnight: that date is not touched
            block.first, block.end = first.date(), last_date + dt.timedelta(days=1)
        except OverflowError:  # year 1 or 9999 moved across a zone, or the day after 9999-12-31
            feed.problems.append(Problem(f"line {block.line}",
                                         "the event is outside years 1 to 9999 in the feed's zone"))
            block.end = block.first


def _local(moment: _Moment, zone: dt.tzinfo | None) -> dt.datetime:
    assert moment.time is not None
    wall = dt.datetime.combine(moment.day, moment.time)
    if moment.utc and zone is not None:
        return wall.replace(tzinfo=dt.UTC).astimezone(zone).replace(tzinfo=None)
    return wall
