"""The scene the browser tests and screenshots look at: a real `staystream serve --seed-sample`
(the Singapore sample city) and a few writes through its own API that the pages' features need.

Every request a page makes reaches that server: nothing is faked. The writes add one place on
two marketplaces (airbnb `scene-1`, linked to vrbo `scene-v1`) priced far below the city, so
it is the first card, a deal, with a mandatory and an optional fee and two offers; and three
changes of one night (`HISTORY_NIGHT`) of `scene-1`, so that night has a price history; its
Fridays and Saturdays after that night cost more, so its calendar has some heat.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx

from conftest import Server, start_server

CHECKIN = dt.date.today() + dt.timedelta(days=7)
CHECKOUT = CHECKIN + dt.timedelta(days=3)
SHARED = f"/?where=Singapore&checkin={CHECKIN}&checkout={CHECKOUT}&guests=2&currency=SGD"
SCENE_LISTING = "airbnb/scene-1"
HISTORY_NIGHT = CHECKIN + dt.timedelta(days=20)
HISTORY_PRICES = ("120.00", "99.00")  # the night's rate, then a price change; then it closes
SAMPLE_LISTINGS = 821  # listings of the shipped Singapore sample


def instant(seconds_ago: float = 0.0) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)).isoformat()


def post(server: Server, events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST /v1/events; every event must be accepted."""
    answer = httpx.post(f"{server.url}/v1/events", json=events, timeout=30)
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text
    return dict(answer.json())


def start_scene(data_dir: Path, *args: str) -> Server:
    """The seeded server with the scene's writes made; stop it with `server.stop()`."""
    server = start_server(data_dir, "--seed-sample", *args, workers=1)
    try:
        _wait_for_sample(server)
        post(server, _scene_events())
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_sample(server: Server) -> None:
    """The seed posts the listings last, in one batch: once search finds them, all is there."""
    deadline = time.monotonic() + 90
    with server.client() as client:
        while time.monotonic() < deadline:
            found = client.get("/v1/search", params={"lat": 1.29, "lon": 103.85, "radius_km": 20,
                                                    "checkin": str(CHECKIN), "checkout": str(CHECKOUT)})
            if found.status_code == 200 and found.json()["matches"] > 100:
                return
            time.sleep(0.2)
    raise RuntimeError(f"the sample city was not seeded; log:\n{server.log()}")


def _scene_events() -> list[dict[str, Any]]:
    start, end = str(dt.date.today()), str(dt.date.today() + dt.timedelta(days=90))
    night, after = str(HISTORY_NIGHT), str(HISTORY_NIGHT + dt.timedelta(days=1))
    place = {"name": "Harbour flat", "kind": "apartment", "lat": 1.2905, "lon": 103.8505, "max_guests": 4}
    first, second = HISTORY_PRICES
    return [
        {"type": "listing", "source": "airbnb", "listing_id": "scene-1", **place, "changed_at": instant(60)},
        {"type": "listing", "source": "vrbo", "listing_id": "scene-v1", **place, "changed_at": instant(60)},
        {"type": "link", "source": "airbnb", "listing_id": "scene-1", "other_source": "vrbo",
         "other_listing_id": "scene-v1", "same": True, "changed_at": instant(60)},
        {"type": "rate", "source": "airbnb", "listing_id": "scene-1", "start": start, "end": end,
         "price": "20.00", "currency": "SGD", "min_nights": 1, "changed_at": instant(60)},
        {"type": "rate", "source": "vrbo", "listing_id": "scene-v1", "start": start, "end": end,
         "price": "35.00", "currency": "SGD", "min_nights": 1, "changed_at": instant(60)},
        {"type": "fee", "source": "airbnb", "listing_id": "scene-1", "fee_id": "cleaning",
         "label": "Cleaning", "basis": "per_stay", "amount": "30", "currency": "SGD",
         "mandatory": True, "changed_at": instant(60)},
        {"type": "fee", "source": "airbnb", "listing_id": "scene-1", "fee_id": "breakfast",
         "label": "Breakfast", "basis": "per_stay", "amount": "45", "currency": "SGD",
         "mandatory": False, "changed_at": instant(60)},
        {"type": "rate", "source": "airbnb", "listing_id": "scene-1", "start": night, "end": after,
         "price": first, "currency": "SGD", "min_nights": 1, "changed_at": instant(40)},
        {"type": "price", "source": "airbnb", "listing_id": "scene-1", "start": night, "end": after,
         "price": second, "currency": "SGD", "changed_at": instant(20)},
        {"type": "availability", "source": "airbnb", "listing_id": "scene-1", "start": night,
         "end": after, "available": False, "changed_at": instant(10)},
        *_weekends("scene-1", HISTORY_NIGHT + dt.timedelta(days=1), dt.date.today() + dt.timedelta(days=90)),
    ]


def _weekends(listing_id: str, first: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Dearer Friday and Saturday nights from `first` to `end` (none in the tests' stays and strip)."""
    nights = (first + dt.timedelta(days=i) for i in range((end - first).days))
    return [{"type": "price", "source": "airbnb", "listing_id": listing_id, "start": str(night),
             "end": str(night + dt.timedelta(days=1)), "price": "28.00", "currency": "SGD",
             "changed_at": instant(50)} for night in nights if night.weekday() in (4, 5)]
