"""Per-source settings: what a partner's messages leave implicit, in one TOML file.

`staystream serve --sources-file sources.toml` reads it; each top-level table is a source (the
`{source}` of `/v1/sources/{source}/...`):

    [booking]
    time_zone = "Europe/Rome"      # OTA TimeStamps without a zone are in it (default UTC)
    currency = "EUR"               # amounts that name no currency (default: none, an error)
    occupancy = 2                  # the guest count whose amount is the night's price (default 2)

    [booking.properties.H123]      # one property (HotelCode, Expedia Hotel id) overriding them
    currency = "CHF"
    time_zone = "Europe/Zurich"

Why a file: Booking.com fixes a property's currency and may omit it from messages, Expedia
configures it per property and never sends it when closing, and a channel manager's clock zone
is a contract detail, not something the message says. The file is checked whole at start (a
bad value stops `serve` with the file, table, key, value and what was expected) and re-read when
its modification time changes, at most once a second per worker, so an operator edits it
without a restart; a reload that does not validate keeps the previous settings and is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from staystream.events.money import CURRENCY_INDEX

log = logging.getLogger(__name__)
SOURCE_NAME = re.compile(r"[a-z0-9_-]{1,32}")  # as the contract's `source`
SOURCE_KEYS = {"time_zone", "currency", "occupancy", "properties"}
PROPERTY_KEYS = {"time_zone", "currency", "occupancy"}
RELOAD_CHECK_SECONDS = 1.0
DEFAULT_OCCUPANCY = 2  # what metasearch shows: a double room


class SettingsError(ValueError):
    """The file, or one value in it, is not usable; the message names where and why."""


@dataclass(frozen=True)
class PropertySettings:
    time_zone: dt.tzinfo | None = None
    currency: str | None = None
    occupancy: int | None = None


@dataclass(frozen=True)
class SourceSettings:
    """One source's settings, with per-property overrides (`for_property`)."""

    time_zone: dt.tzinfo = dt.UTC
    currency: str | None = None
    occupancy: int = DEFAULT_OCCUPANCY
    properties: dict[str, PropertySettings] = field(default_factory=dict)

    def for_property(self, property_id: str | None) -> SourceSettings:
        """The settings that apply to one property: its overrides over the source's."""
        override = self.properties.get(property_id or "")
        if override is None:
            return self
        return SourceSettings(override.time_zone or self.time_zone, override.currency or self.currency,
                              override.occupancy or self.occupancy)


DEFAULTS = SourceSettings()


def parse(text: str, where: str = "sources file") -> dict[str, SourceSettings]:
    """Every source's settings from TOML text; `SettingsError` naming the first bad value."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{where}: not valid TOML: {exc}") from None
    result = {}
    for source, table in document.items():
        if not SOURCE_NAME.fullmatch(source):
            raise SettingsError(f"{where}: [{source}]: not a source name; expected [a-z0-9_-]{{1,32}} "
                                "as in /v1/sources/{source}/...")
        if not isinstance(table, dict):
            raise SettingsError(f"{where}: {source} = {table!r}: expected a table [{source}]")
        result[source] = _source(table, f"{where}: [{source}]")
    return result


def load(path: Path) -> dict[str, SourceSettings]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read: {exc}") from None
    return parse(text, str(path))


def _source(table: dict[str, Any], where: str) -> SourceSettings:
    _known_keys(table, SOURCE_KEYS, where)
    properties_table = table.get("properties", {})
    if not isinstance(properties_table, dict):
        raise SettingsError(f"{where} properties: expected tables [source.properties.<id>]")
    properties = {}
    for property_id, override in properties_table.items():
        here = f"{where.removesuffix(']')}.properties.{property_id}]"
        if not isinstance(override, dict):
            raise SettingsError(f"{here}: expected a table with {', '.join(sorted(PROPERTY_KEYS))}")
        _known_keys(override, PROPERTY_KEYS, here)
        properties[str(property_id)] = PropertySettings(
            _zone(override, here), _currency(override, here), _occupancy(override, here))
    return SourceSettings(_zone(table, where) or dt.UTC, _currency(table, where),
                          _occupancy(table, where) or DEFAULT_OCCUPANCY, properties)


def _known_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SettingsError(f"{where} {key}: not a setting; expected one of {', '.join(sorted(allowed))}")


def _zone(table: dict[str, Any], where: str) -> dt.tzinfo | None:
    value = table.get("time_zone")
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"{where} time_zone: {value!r} is not text; expected an IANA zone such as \"Europe/Rome\"")
    if value.upper() == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{where} time_zone: '{value}' is not a known time zone; expected an IANA "
                            "zone such as \"Europe/Rome\" or \"UTC\"") from None


def _currency(table: dict[str, Any], where: str) -> str | None:
    value = table.get("currency")
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in CURRENCY_INDEX:
        raise SettingsError(f"{where} currency: {value!r} is not an ISO 4217 currency code; expected e.g. \"EUR\"")
    return value.upper()


def _occupancy(table: dict[str, Any], where: str) -> int | None:
    value = table.get("occupancy")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 99:
        raise SettingsError(f"{where} occupancy: {value!r} is not a guest count; expected a whole number 1 to 99")
    return value


class SourcesFile:
    """The settings file as a running worker sees it: re-read when it changes on disk."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._settings: dict[str, SourceSettings] = load(path) if path is not None else {}
        self._mtime = self._stat()
        self._checked = time.monotonic()

    def get(self, source: str) -> SourceSettings:
        """The source's settings (the defaults for a source the file does not name)."""
        self._reload_if_changed()
        return self._settings.get(source, DEFAULTS)

    def _stat(self) -> int | None:
        if self.path is None:
            return None
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def _reload_if_changed(self) -> None:
        if self.path is None or time.monotonic() - self._checked < RELOAD_CHECK_SECONDS:
            return
        self._checked = time.monotonic()
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self._settings = load(self.path)
        except SettingsError as exc:
            log.error("sources file not reloaded; the previous settings stay in use",
                      extra={"error": str(exc)})
            return
        log.info("sources file reloaded", extra={"path": str(self.path), "sources": len(self._settings)})
