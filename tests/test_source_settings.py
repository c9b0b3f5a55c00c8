"""The per-source settings file: validation with clear errors, overrides, and reload without restart."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from staystream.adapters import source_settings
from staystream.adapters.source_settings import SettingsError, SourcesFile

EXAMPLE = """
[booking]
time_zone = "Europe/Rome"
currency = "EUR"
occupancy = 2

[booking.properties.H123]
currency = "CHF"
time_zone = "Europe/Zurich"

[expedia]
currency = "usd"
occupancy = 1
"""


def test_example_parses_with_property_overrides_and_defaults() -> None:
    sources = source_settings.parse(EXAMPLE)
    booking = sources["booking"]
    assert (booking.time_zone, booking.currency, booking.occupancy) == (ZoneInfo("Europe/Rome"), "EUR", 2)
    hotel = booking.for_property("H123")
    assert (hotel.time_zone, hotel.currency, hotel.occupancy) == (ZoneInfo("Europe/Zurich"), "CHF", 2)
    assert booking.for_property("OTHER") is booking
    expedia = sources["expedia"]
    assert (expedia.time_zone, expedia.currency, expedia.occupancy) == (dt.UTC, "USD", 1)
    assert source_settings.DEFAULTS.currency is None and source_settings.DEFAULTS.time_zone is dt.UTC


def test_the_shipped_example_file_is_valid() -> None:
    path = Path(__file__).parent.parent / "examples" / "sources.toml"
    assert source_settings.load(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("[booking]\ncurrency = 'EURO'", "sources file: [booking] currency: 'EURO' is not an ISO 4217 currency code; "
                                     "expected e.g. \"EUR\""),
    ("[booking]\ntime_zone = 'Mars/Olympus'", "sources file: [booking] time_zone: 'Mars/Olympus' is not a known time "
                                              "zone; expected an IANA zone such as \"Europe/Rome\" or \"UTC\""),
    ("[booking]\noccupancy = 0", "sources file: [booking] occupancy: 0 is not a guest count; expected a whole number "
                                 "1 to 99"),
    ("[booking]\noccupancy = true", "occupancy: True is not a guest count"),
    ("[booking]\ncurrencies = 'EUR'", "sources file: [booking] currencies: not a setting; expected one of currency, "
                                      "occupancy, properties, tax_percent, time_zone"),
    ("[booking.properties.H1]\nprice = 1", "sources file: [booking.properties.H1] price: not a setting; expected one "
                                           "of currency, occupancy, tax_percent, time_zone"),
    ("[booking.properties]\nH1 = 'EUR'", "sources file: [booking.properties.H1]: expected a table with currency, "
                                         "occupancy, tax_percent, time_zone"),
    ("['Booking.com']\ncurrency = 'EUR'", "sources file: [Booking.com]: not a source name; expected [a-z0-9_-]{1,32}"),
    ("booking = 'EUR'", "sources file: booking = 'EUR': expected a table [booking]"),
    ("[booking\n", "sources file: not valid TOML: "),
])
def test_bad_values_are_named_with_where_value_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        source_settings.parse(text)
    assert str(caught.value).startswith(expected) or expected in str(caught.value)


def test_reload_on_change_keeps_the_previous_settings_when_the_new_file_is_bad(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(source_settings, "RELOAD_CHECK_SECONDS", 0)
    path = tmp_path / "sources.toml"
    path.write_text("[booking]\ncurrency = 'EUR'\n")
    sources = SourcesFile(path)
    assert sources.get("booking").currency == "EUR" and sources.get("other").currency is None
    path.write_text("[booking]\ncurrency = 'GBP'\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert sources.get("booking").currency == "GBP"
    path.write_text("[booking]\ncurrency = 'POUNDS'\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    assert sources.get("booking").currency == "GBP"  # the bad file is refused, the good one stays


def test_serve_refuses_to_start_with_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text("[booking]\ncurrency = 'EURO'\n")
    done = subprocess.run([sys.executable, "-m", "staystream", "serve", "--port", "0", "--data-dir",
                           str(tmp_path / "var"), "--sources-file", str(path)], capture_output=True, timeout=60)
    assert done.returncode != 0
    expected = f"--sources-file: {path}: [booking] currency: 'EURO' is not an ISO 4217 currency code"
    assert expected in done.stderr.decode()


def rate_without_currency(hotel: str, night: dt.date) -> bytes:
    return (f'<OTA_HotelRateAmountNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" '
            f'TimeStamp="2025-03-01T10:15:00">'
            f'<RateAmountMessages HotelCode="{hotel}"><RateAmountMessage><StatusApplicationControl Start="{night}" '
            f'End="{night}" InvTypeCode="R" RatePlanCode="P"/><Rates><Rate><BaseByGuestAmts><BaseByGuestAmt '
            f'AmountAfterTax="100.00"/></BaseByGuestAmts></Rate></Rates></RateAmountMessage></RateAmountMessages>'
            f'</OTA_HotelRateAmountNotifRQ>').encode()


def test_a_running_server_uses_and_reloads_the_file(server_factory, tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text("[booking]\ncurrency = 'EUR'\ntime_zone = 'Asia/Tokyo'\n")
    server = server_factory("--sources-file", str(path))
    night = dt.date.today() + dt.timedelta(days=3)
    with server.client() as client:
        rs = client.post("/v1/sources/booking/ota", content=rate_without_currency("S1", night))
        assert b"<Success" in rs.content, rs.text
        [entry] = client.get("/v1/listings/booking/S1:R:P/calendar").json()["nights"]
        assert (entry["price"], entry["currency"]) == ("100.00", "EUR")
        assert entry["changed_at"] == "2025-03-01T01:15:00.000Z"  # 10:15 in Tokyo
        path.write_text("[booking]\ncurrency = 'JPY'\n")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # each worker re-reads it within a second
            rs = client.post("/v1/sources/booking/ota", content=rate_without_currency("S2", night))
            entry = client.get("/v1/listings/booking/S2:R:P/calendar").json()["nights"][0]
            if entry["currency"] == "JPY":
                break
            time.sleep(0.2)
        assert entry["currency"] == "JPY" and entry["changed_at"] == "2025-03-01T10:15:00.000Z"  # UTC now
