"""Places in the running service: property, link and automatic matching as `GET /v1/places/{id}`
explains them, read-after-ack, bad input, and durability (restart, kill -9, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from conftest import Server, start_server
from pg_fixtures import Postgres, create_database, postgres  # noqa: F401 (fixture)

NDJSON = {"content-type": "application/x-ndjson"}
T0 = "2026-01-01T00:00:00Z"


def listing(source: str, listing_id: str, name: str, lat: float, lon: float, **more: object) -> dict[str, object]:
    return {"type": "listing", "source": source, "listing_id": listing_id, "name": name, "kind": "apartment",
            "lat": lat, "lon": lon, "max_guests": 4, "changed_at": T0, **more}


def link(a: tuple[str, str], b: tuple[str, str], same: bool, changed_at: str) -> dict[str, object]:
    return {"type": "link", "source": a[0], "listing_id": a[1], "other_source": b[0], "other_listing_id": b[1],
            "same": same, "changed_at": changed_at}


def post(client: httpx.Client, *events: dict[str, object]) -> dict[str, object]:
    response = client.post("/v1/events", content="\n".join(map(json.dumps, events)), headers=NDJSON)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def place_of(client: httpx.Client, source: str, listing_id: str) -> str:
    found = client.get(f"/v1/listings/{source}/{listing_id}")
    assert found.status_code == 200, found.text
    place_id: str = found.json()["place_id"]
    return place_id


def members(client: httpx.Client, place_id: str) -> dict[tuple[str, str], str]:
    """(source, listing_id) -> how it joined, checking the contract's shape on the way."""
    response = client.get(f"/v1/places/{place_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"place_id", "name", "lat", "lon", "listings"} and body["place_id"] == place_id
    assert isinstance(body["name"], str) and isinstance(body["lat"], float) and isinstance(body["lon"], float)
    for member in body["listings"]:
        assert set(member) == {"source", "listing_id", "matched", "score"}
        assert member["matched"] in {"self", "property", "link", "auto"}
        assert 0 < member["score"] <= 1
    assert [m["matched"] for m in body["listings"]].count("self") == 1
    return {(m["source"], m["listing_id"]): m["matched"] for m in body["listings"]}


# Two far-apart listings with unrelated names: only a link can join them.
FAR_A = listing("booking", "far-a", "Harbour View Suites", 1.2644, 103.8222)
FAR_B = listing("expedia", "far-b", "Orchard Budget Rooms", 1.3048, 103.8318)
# One flat on two marketplaces, 25 m apart (Airbnb blurs), the same name and street.
FLAT_AIRBNB = listing("airbnb", "flat-1", "Cosy 2BR loft by Tiong Bahru market", 1.28530, 103.83260,
                      address="58 Seng Poh Road, Singapore 160058")
FLAT_VRBO = listing("vrbo", "flat-1v", "Cosy 2BR Loft near Tiong Bahru Market", 1.28550, 103.83270,
                    address="58 Seng Poh Rd, Singapore")


def test_units_of_one_property_are_one_place(server: Server) -> None:
    with server.client() as client:
        post(client, *(listing("hotelx", f"room-{i}", f"Room type {i}", 1.30 + i * 0.001, 103.85,
                               kind="hotel_room", property_id="H1") for i in range(3)))
        place_id = place_of(client, "hotelx", "room-0")
        assert place_of(client, "hotelx", "room-2") == place_id
        assert members(client, place_id) == {("hotelx", "room-0"): "self", ("hotelx", "room-1"): "property",
                                             ("hotelx", "room-2"): "property"}


def test_links_join_and_split_last_writer_wins(server: Server) -> None:
    a, b = ("booking", "far-a"), ("expedia", "far-b")
    with server.client() as client:
        post(client, FAR_A, FAR_B)
        assert place_of(client, *a) != place_of(client, *b)
        post(client, link(a, b, True, "2026-02-01T00:00:00Z"))
        assert place_of(client, *a) == place_of(client, *b)  # read-after-ack
        assert members(client, place_of(client, *a)) == {a: "self", b: "link"}
        post(client, link(b, a, False, "2026-03-01T00:00:00Z"))  # either way round: one pair
        assert place_of(client, *a) != place_of(client, *b)
        post(client, link(a, b, True, "2026-02-15T00:00:00Z"))  # older: loses, whatever the arrival order
        assert place_of(client, *a) != place_of(client, *b)
        post(client, link(a, b, True, "2026-03-01T00:00:00Z"))  # a tie: "not same" wins
        assert place_of(client, *a) != place_of(client, *b)
        post(client, link(a, b, True, "2026-03-02T00:00:00Z"))
        assert place_of(client, *a) == place_of(client, *b)


def test_a_link_before_its_listings_is_kept(server: Server) -> None:
    a, b = ("booking", "early-a"), ("expedia", "early-b")
    with server.client() as client:
        assert post(client, link(a, b, True, T0)) == {"accepted": 1, "rejected": []}
        post(client, {**FAR_A, "listing_id": "early-a"})
        post(client, {**FAR_B, "listing_id": "early-b"})
        assert place_of(client, *a) == place_of(client, *b)


def test_the_same_flat_on_two_marketplaces_is_matched(server: Server) -> None:
    with server.client() as client:
        post(client, FLAT_AIRBNB, FLAT_VRBO, listing("airbnb", "flat-2", FLAT_AIRBNB["name"], 1.28531, 103.83261))
        place_id = place_of(client, "airbnb", "flat-1")
        assert place_of(client, "vrbo", "flat-1v") == place_id
        assert place_of(client, "airbnb", "flat-2") != place_id  # one source: never merged automatically
        body = client.get(f"/v1/places/{place_id}").json()
        auto = [m for m in body["listings"] if m["matched"] == "auto"]
        assert [(m["source"], m["listing_id"]) for m in auto] == [("vrbo", "flat-1v")]
        assert 0.6 <= auto[0]["score"] < 1
        # an operator's "not same" beats the match
        post(client, link(("airbnb", "flat-1"), ("vrbo", "flat-1v"), False, T0))
        assert place_of(client, "vrbo", "flat-1v") != place_of(client, "airbnb", "flat-1")


def test_search_groups_offers_by_place_read_after_ack(server: Server) -> None:
    day = dt.date.today() + dt.timedelta(days=20)
    a = {**FLAT_AIRBNB, "listing_id": "s-1", "lat": 1.35, "lon": 103.95}
    b = {**FLAT_VRBO, "listing_id": "s-1v", "lat": 1.35015, "lon": 103.95010}
    rate = {"type": "rate", "start": day.isoformat(), "end": (day + dt.timedelta(days=2)).isoformat(),
            "currency": "SGD", "changed_at": T0}
    with server.client() as client:
        post(client, a, b, {**rate, "source": "airbnb", "listing_id": "s-1", "price": "200"},
             {**rate, "source": "vrbo", "listing_id": "s-1v", "price": "180"})
        found = client.get("/v1/search", params={
            "lat": 1.35, "lon": 103.95, "radius_km": 1, "checkin": day.isoformat(),
            "checkout": (day + dt.timedelta(days=2)).isoformat(), "currency": "SGD"}).json()["results"]
        assert [(r["listing_id"], [o["listing_id"] for o in r["offers"]]) for r in found] == [("s-1v", ["s-1v", "s-1"])]
        assert found[0]["place_id"] == place_of(client, "airbnb", "s-1")


def test_a_delisted_listing_leaves_its_place(server: Server) -> None:
    with server.client() as client:
        post(client, {**FLAT_AIRBNB, "listing_id": "d-1", "lat": 1.40},
             {**FLAT_VRBO, "listing_id": "d-1v", "lat": 1.4001})
        assert place_of(client, "airbnb", "d-1") == place_of(client, "vrbo", "d-1v")
        post(client, {"type": "delist", "source": "airbnb", "listing_id": "d-1", "changed_at": "2026-01-02T00:00:00Z"})
        alone = place_of(client, "vrbo", "d-1v")
        assert members(client, alone) == {("vrbo", "d-1v"): "self"}


def test_bad_links_and_addresses_are_rejected_with_reasons(server: Server) -> None:
    with server.client() as client:
        answer = post(
            client,
            link(("airbnb", "x"), ("airbnb", "x"), True, T0),
            link(("airbnb", "x"), ("Not A Source!", "y"), True, T0),
            {**link(("airbnb", "x"), ("vrbo", "y"), True, T0), "same": "yes"},
            {"type": "link", "source": "airbnb", "listing_id": "x", "other_source": "vrbo", "changed_at": T0},
            {**FLAT_AIRBNB, "listing_id": "long-address", "address": "x" * 513},
        )
        errors = [r["error"] for r in answer["rejected"]]  # type: ignore[attr-defined]
        assert answer["accepted"] == 0 and len(errors) == 5
        assert errors[0].startswith("other_listing_id: 'x' of source 'airbnb' is the listing itself")
        assert errors[1].startswith("other_source: 'Not A Source!' is invalid")
        assert errors[2].startswith("same: 'yes'")
        assert errors[3].startswith("other_listing_id: missing") or errors[3].startswith("same: missing")
        assert errors[4] == "address: '" + "x" * 40 + "...' is 513 characters; expected at most 512"
        assert post(client, {**FLAT_AIRBNB, "listing_id": "ok-address", "address": "y" * 512})["accepted"] == 1
        assert client.get("/v1/listings/airbnb/ok-address").json()["address"] == "y" * 512


def test_every_listing_place_id_names_a_place_delisted_and_undescribed_too(server: Server) -> None:
    day = dt.date.today() + dt.timedelta(days=3)
    with server.client() as client:
        post(client, {**FAR_A, "listing_id": "gone", "lat": 1.20},
             {"type": "delist", "source": "booking", "listing_id": "gone", "changed_at": "2026-01-02T00:00:00Z"},
             {"type": "rate", "source": "booking", "listing_id": "rates-only", "start": day.isoformat(),
              "end": (day + dt.timedelta(days=1)).isoformat(), "price": "10", "currency": "EUR", "changed_at": T0})
        gone = client.get(f"/v1/places/{place_of(client, 'booking', 'gone')}").json()
        assert gone["name"] == FAR_A["name"] and gone["listings"] == [
            {"source": "booking", "listing_id": "gone", "matched": "self", "score": 1.0}]
        undescribed = client.get(f"/v1/places/{place_of(client, 'booking', 'rates-only')}").json()
        assert (undescribed["name"], undescribed["lat"]) == (None, None)
        assert [m["listing_id"] for m in undescribed["listings"]] == ["rates-only"]


def test_unknown_place_is_404_with_a_reason(server: Server) -> None:
    with server.client() as client:
        response = client.get("/v1/places/p0000000000000000")
        assert response.status_code == 404
        assert "p0000000000000000" in response.json()["error"]


def test_without_automatic_matching_only_properties_and_links_join(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--no-matching")
    with server.client() as client:
        post(client, FLAT_AIRBNB, FLAT_VRBO)
        assert place_of(client, "airbnb", "flat-1") != place_of(client, "vrbo", "flat-1v")
        post(client, link(("airbnb", "flat-1"), ("vrbo", "flat-1v"), True, T0))
        assert place_of(client, "airbnb", "flat-1") == place_of(client, "vrbo", "flat-1v")


def _durable_world(client: httpx.Client) -> dict[str, object]:
    post(client, FLAT_AIRBNB, FLAT_VRBO, FAR_A, FAR_B,
         listing("hotely", "r1", "Deluxe", 1.31, 103.86, kind="hotel_room", property_id="P"),
         listing("hotely", "r2", "Standard", 1.31, 103.86, kind="hotel_room", property_id="P"))
    post(client, link(("booking", "far-a"), ("expedia", "far-b"), True, T0))
    post(client, link(("booking", "far-a"), ("hotely", "r1"), True, T0))  # links a property too
    post(client, link(("expedia", "ghost"), ("vrbo", "flat-1v"), True, T0))  # a listing not yet known
    return _places(client)


def _places(client: httpx.Client) -> dict[str, object]:
    keys = [("airbnb", "flat-1"), ("vrbo", "flat-1v"), ("booking", "far-a"), ("expedia", "far-b"),
            ("hotely", "r1"), ("hotely", "r2")]
    ids = {key: place_of(client, *key) for key in keys}
    return {"ids": ids, "places": {pid: client.get(f"/v1/places/{pid}").json() for pid in set(ids.values())}}


@pytest.mark.parametrize("stop", ["sigterm", "kill -9"])
def test_places_survive_a_restart(server_factory, stop: str) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    with server.client() as client:
        before = _durable_world(client)
    ids = before["ids"]
    assert isinstance(ids, dict)
    assert ids[("booking", "far-a")] == ids[("hotely", "r2")] == ids[("expedia", "far-b")]
    assert ids[("airbnb", "flat-1")] == ids[("vrbo", "flat-1v")]
    if stop == "sigterm":
        server.stop()
    else:
        server.kill()
    again = server_factory(data_dir=server.data_dir)
    with again.client() as client:
        assert _places(client) == before
        post(client, {**FAR_B, "listing_id": "ghost"})  # the kept link applies when it arrives
        assert place_of(client, "expedia", "ghost") == place_of(client, "vrbo", "flat-1v")


def test_places_in_postgresql_bootstrap_a_new_data_dir(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    uri = create_database(postgres, "places")
    first = start_server(tmp_path / "a", "--store", uri)
    try:
        with first.client() as client:
            before = _durable_world(client)
            assert client.get("/v1/listings/airbnb/flat-1").json()["address"] == FLAT_AIRBNB["address"]
    finally:
        first.kill()
    second = start_server(tmp_path / "b", "--store", uri)  # nothing local: PostgreSQL alone
    try:
        with second.client() as client:
            assert _places(client) == before
            assert client.get("/v1/listings/airbnb/flat-1").json()["address"] == FLAT_AIRBNB["address"]
    finally:
        second.stop()


def test_an_import_sized_batch_is_matched_in_the_background(server: Server) -> None:
    """Over `INLINE_MATCHING` listings in one group: property and links at once, automatic
    matches shortly after (the write path keeps 90% of the writer)."""
    twins = []
    for i in range(150):
        name = f"Garden studio {i} at Holland Village"
        twins += [listing("airbnb", f"bulk-{i}", name, 1.45 + i * 0.002, 103.70),
                  listing("vrbo", f"bulk-{i}v", name, 1.45 + i * 0.002 + 0.0001, 103.70)]
    with server.client() as client:
        post(client, *twins)
        deadline = time.monotonic() + 30
        while True:
            matched = sum(place_of(client, "airbnb", f"bulk-{i}") == place_of(client, "vrbo", f"bulk-{i}v")
                          for i in range(0, 150, 10))
            if matched == 15:
                break
            assert time.monotonic() < deadline, f"{matched} of 15 matched after 30 s"
            time.sleep(0.2)
        metrics = client.get("/metrics").text
        assert "staystream_places_pending 0.0" in metrics


def test_places_and_links_through_the_stream(tmp_path: Path) -> None:
    """Scaled mode: links and addresses travel in the stream, the applier stores them in
    PostgreSQL, and a node started later rebuilds the same places from PostgreSQL."""
    from nats_fixtures import NatsCluster
    from test_scaled import applier_drained, eventually, node

    with Postgres() as pg, NatsCluster(3) as cluster:
        first = node(tmp_path / "all", pg, cluster, "ingest,apply,search")
        try:
            with first.client() as client:
                before = _durable_world(client)  # read-after-ack on the node that took them
                assert client.get("/v1/listings/airbnb/flat-1").json()["address"] == FLAT_AIRBNB["address"]
            written_at = time.time()
            eventually(lambda: applier_drained(first, written_at))
        finally:
            assert first.stop() == 0
        assert pg.psql("SELECT count(*) FROM staystream.links") == "3"
        second = node(tmp_path / "search", pg, cluster, "ingest,search")
        try:
            with second.client() as client:
                assert _places(client) == before
                post(client, {**FAR_B, "listing_id": "ghost"})
                assert place_of(client, "expedia", "ghost") == place_of(client, "vrbo", "flat-1v")
        finally:
            second.stop()


def _rebuilt(server: Server) -> dict[str, object]:
    """The writer's last "places rebuilt" log line."""
    lines = [json.loads(line) for line in server.log().splitlines() if '"places rebuilt"' in line]
    assert lines, server.log()
    last: dict[str, object] = lines[-1]
    return last


def test_a_restart_matches_again_only_what_changed_since_the_cache_saved(server_factory) -> None:  # type: ignore[no-untyped-def]
    """The places cache (places-cache.sqlite3): kill -9 loses only what came after its last
    save, and a restart scores those listings alone; the places are those of matching all."""
    server = server_factory()
    twins = [listing(source, f"{source}-{i}", f"{street} garden studio", 1.30 + 0.01 * i, 103.80,
                     address=f"{i} {street}")
             for i, street in enumerate(("Emerald Hill Rd", "Duxton Rd", "Keong Saik Rd", "Joo Chiat Pl"))
             for source in ("airbnb", "vrbo")]
    cache = sqlite3.connect(f"file:{server.data_dir / 'places-cache.sqlite3'}?mode=ro", uri=True)
    with server.client() as client:
        post(client, *twins)
        deadline = time.monotonic() + 10
        while cache.execute("SELECT count(*) FROM listings").fetchone()[0] < len(twins):
            assert time.monotonic() < deadline, "the places cache was not saved"
            time.sleep(0.1)
        post(client, {**twins[0], "lat": 1.35}, {**twins[1], "lat": 1.35})  # the first pair moves, together
        before = {(t["source"], t["listing_id"]): place_of(client, str(t["source"]), str(t["listing_id"]))
                  for t in twins}
    cache.close()
    assert len(set(before.values())) == 4  # each pair matched
    server.kill()
    again = server_factory(data_dir=server.data_dir)
    assert _rebuilt(again)["listings"] == len(twins) and 0 <= _rebuilt(again)["rematched"] <= 2  # type: ignore[operator]
    with again.client() as client:
        assert {key: place_of(client, *key) for key in before} == before
    again.stop()
    third = server_factory(data_dir=server.data_dir)
    assert _rebuilt(third)["rematched"] == 0  # a clean stop saved everything
    with third.client() as client:
        assert {key: place_of(client, *key) for key in before} == before
