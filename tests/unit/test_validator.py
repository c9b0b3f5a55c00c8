"""`events.ingest.Validator` in-process: what it accepts, and rejections that name field, value and bound."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from staystream.dates import epoch_day
from staystream.events.fx import default_fx
from staystream.events.ingest import MAX_MIN_NIGHTS, BodyError, Parsed, TooManyEvents, Validator

TODAY = dt.date.today()
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(default_fx(None), dt.date(2015, 1, 1), horizon_days=730, max_night_price_eur=100_000)


def rate(**fields: object) -> dict[str, object]:
    return {"type": "rate", "source": "airbnb", "listing_id": "v-1", "start": str(TODAY),
            "end": str(TODAY + dt.timedelta(days=2)), "price": "129.50", "currency": "EUR",
            "changed_at": NOW, **fields}


def body(*events: dict[str, object]) -> bytes:
    return b"\n".join(msgspec.json.encode(event) for event in events)


def validated(validator: Validator, *events: dict[str, object]) -> Parsed:
    return validator.validate(validator.decode(body(*events), ndjson=True, max_events=100))


def test_a_valid_rate_becomes_one_column_row_in_minor_units(validator: Validator) -> None:
    parsed = validated(validator, rate())
    assert parsed.accepted == 1 and parsed.rejected == []
    assert len(parsed.keys) == 1
    row = parsed.rate_columns()[0]
    assert int(row["price"]) == 12950
    assert int(row["start"]) == epoch_day(TODAY)
    assert parsed.accepted_by_source == {("airbnb", "rate"): 1}


@pytest.mark.parametrize(("fields", "error"), [
    ({"price": "129.501"}, "price: '129.501' has more decimals than EUR allows"),
    ({"currency": "EURO"}, "currency: 'EURO'"),
    ({"start": "2014-12-31", "end": "2015-01-02"},
     "start: '2014-12-31' is before the earliest night kept (2015-01-01)"),
    ({"end": str(TODAY + dt.timedelta(days=900))}, "end: "),
    ({"min_nights": MAX_MIN_NIGHTS + 1}, "min_nights: "),
    ({"source": "Not A Source!"}, "source: "),
])
def test_one_bad_field_rejects_that_event_only_and_names_it(
        validator: Validator, fields: dict[str, object], error: str) -> None:
    parsed = validated(validator, rate(listing_id="ok-before"), rate(**fields), rate(listing_id="ok-after"))
    assert parsed.accepted == 2
    assert [rejection["index"] for rejection in parsed.rejected] == [1]
    assert str(parsed.rejected[0]["error"]).startswith(error), parsed.rejected


def test_a_price_over_the_ceiling_is_refused_in_its_own_currency(validator: Validator) -> None:
    parsed = validated(validator, rate(price="100000.01"))
    assert parsed.accepted == 0
    assert "price: '100000.01'" in str(parsed.rejected[0]["error"])


def test_an_event_that_is_not_json_costs_only_itself(validator: Validator) -> None:
    events = validator.decode(body(rate()) + b"\n{not json}\n" + body(rate(listing_id="v-2")), True, 100)
    parsed = validator.validate(events)
    assert parsed.accepted == 2
    assert [rejection["index"] for rejection in parsed.rejected] == [1]


def test_too_many_events_and_a_bad_array_are_body_errors(validator: Validator) -> None:
    with pytest.raises(TooManyEvents, match="3 events; the limit is 2"):
        validator.decode(body(rate(), rate(), rate()), ndjson=True, max_events=2)
    with pytest.raises(BodyError):
        validator.decode(b"[{", ndjson=False, max_events=10)


def test_slices_validated_apart_extend_into_one_result(validator: Validator) -> None:
    events = validator.decode(body(rate(), rate(listing_id="v-2"), rate()), ndjson=True, max_events=10)
    whole = validator.validate(events)
    parts = validator.validate(events[:1])
    parts.extend(validator.validate(events[1:], 1))
    assert parts.keys == whole.keys
    assert parts.rate_columns().tolist() == whole.rate_columns().tolist()


def test_keys_are_the_same_whatever_the_sources_and_forms_met_before(validator: Validator) -> None:
    """Keys of pairs that need no normalizing are cached per source: a slice of one source,
    of several, and ids that must be normalized (or refused) all give the keys one event alone does."""
    forms = [rate(listing_id="k-1"), rate(listing_id=" k-1 "), rate(source=" AirBnb", listing_id="k-1"),
             rate(source="vrbo", listing_id="k-1"), rate(listing_id=12), rate(listing_id="12"),
             rate(source="vrbo", listing_id="K\u0301"), rate(listing_id=""), rate(source="vrbo", listing_id="k-2")]
    alone = [validated(validator, event).keys for event in forms]
    assert alone[:3] == [["airbnb\x00k-1"]] * 3 and alone[3] == ["vrbo\x00k-1"] and alone[7] == []
    for _ in range(2):  # the second time from the cache
        together = validated(validator, *forms)
        assert [rejection["index"] for rejection in together.rejected] == [7]
        assert together.keys == list(dict.fromkeys(key for keys in alone for key in keys))
        assert together.accepted_by_source == {("airbnb", "rate"): 5, ("vrbo", "rate"): 3}
        one_source = validated(validator, rate(listing_id="k-1"), rate(listing_id=" k-1 "), rate(listing_id=12))
        assert one_source.keys == ["airbnb\x00k-1", "airbnb\x0012"]
        assert one_source.accepted_by_source == {("airbnb", "rate"): 3}


def one_fact(kind: str, listing_id: str = "v-1", **fields: object) -> dict[str, object]:
    return {"type": kind, "source": "airbnb", "listing_id": listing_id, "start": str(TODAY),
            "end": str(TODAY + dt.timedelta(days=2)), "changed_at": NOW, **fields}


def test_one_fact_events_become_rows_that_set_their_fact_only(validator: Validator) -> None:
    from staystream.events.types import ALL_FACTS, FACT_AVAILABILITY, FACT_PRICE, FACT_STAY_RULE, NO_PRICE

    parsed = validated(validator, one_fact("price", price="10.5", currency=" eur"), rate(listing_id="v-2"),
                       one_fact("availability", available=False), one_fact("stay_rule", min_nights=3))
    assert parsed.rejected == []
    rows = parsed.rate_columns()
    assert rows["facts"].tolist() == [FACT_PRICE, ALL_FACTS, FACT_AVAILABILITY, FACT_STAY_RULE], "request order kept"
    assert [parsed.keys[k] for k in rows["key"]] == ["airbnb\x00v-1", "airbnb\x00v-2", "airbnb\x00v-1", "airbnb\x00v-1"]
    assert (int(rows[0]["price"]), int(rows[2]["price"]), int(rows[3]["price"])) == (1050, NO_PRICE, NO_PRICE)
    assert (int(rows[2]["available"]), int(rows[3]["min_nights"])) == (0, 3)
    assert parsed.accepted_by_source == {("airbnb", "price"): 1, ("airbnb", "rate"): 1, ("airbnb", "availability"): 1,
                                         ("airbnb", "stay_rule"): 1}


def test_price_event_in_yen_rejects_decimals(validator: Validator) -> None:
    parsed = validated(validator, one_fact("price", price="10.5", currency="JPY"))
    assert [r["error"] for r in parsed.rejected] == ["price: '10.5' has more decimals than JPY allows (0)"]


@pytest.mark.parametrize("price", ["1_0", "١٢", "12_000.00", "１２"])
def test_a_price_with_underscores_or_other_scripts_digits_is_refused_by_name(validator: Validator, price: str) -> None:
    """`Decimal` reads '1_0' as 10 and Arabic-Indic digits as ours; a price is a JSON number or a
    decimal string, so these are refused, naming the field and the value."""
    parsed = validated(validator, rate(listing_id="ok-before"), rate(price=price))
    assert parsed.accepted == 1
    assert [rejection["index"] for rejection in parsed.rejected] == [1]
    assert str(parsed.rejected[0]["error"]).startswith(f"price: {price!r} is not a decimal number"), parsed.rejected


@pytest.mark.parametrize(("price", "minor"), [
    ("129.50", 12950), ("129.5", 12950), ("0129", 12900), (129, 12900), (129.5, 12950), ("1E2", 10000), (" 12 ", 1200),
])
def test_prices_as_text_or_json_numbers_give_the_same_minor_units(
        validator: Validator, price: object, minor: int) -> None:
    """Prices decode as their text (a cache key cheaper than a `Decimal`), JSON numbers with a
    fraction as exact `Decimal`s: every form reads as before."""
    parsed = validated(validator, rate(price=price), rate(listing_id="v-2", price="1.00"))
    assert parsed.rejected == [] and parsed.rate_columns()["price"].tolist() == [minor, 100]


@pytest.mark.parametrize("price", ["abc", "NaN", "-1", "1.001", ""])
def test_a_bad_price_text_is_refused_with_its_value(validator: Validator, price: str) -> None:
    parsed = validated(validator, rate(price=price), rate(listing_id="v-2"))
    assert parsed.accepted == 1 and [r["index"] for r in parsed.rejected] == [0]
    assert str(parsed.rejected[0]["error"]).startswith(f"price: '{price}'"), parsed.rejected
