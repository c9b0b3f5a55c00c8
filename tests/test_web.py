"""The web pages in a real browser (Debian's chromium through Playwright) on the sample city.

The pages are served by `web_harness` (the web routes, the API forwarded to a real
`staystream serve --seed-sample`), so every request the page makes reaches the real server.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from conftest import Server, start_server
from web_harness import Harness

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CHECKIN = dt.date.today() + dt.timedelta(days=7)
CHECKOUT = CHECKIN + dt.timedelta(days=3)
SHARED = f"/?where=Singapore&checkin={CHECKIN}&checkout={CHECKOUT}&guests=2&currency=SGD"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("web") / "var", "--seed-sample", workers=1)
    deadline = time.monotonic() + 60
    with server.client() as client:
        while time.monotonic() < deadline:
            found = client.get("/v1/search", params={"lat": 1.29, "lon": 103.85, "radius_km": 20,
                                                    "checkin": str(CHECKIN), "checkout": str(CHECKOUT)})
            if found.status_code == 200 and found.json()["matches"] > 100:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the sample city was not seeded")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(api: Server) -> Iterator[str]:
    harness = Harness(api.url)
    yield harness.url
    harness.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def totals(page: Page) -> list[float]:
    texts = page.locator("li.card .total").all_inner_texts()
    return [float(re.sub(r"[^\d.]", "", text)) for text in texts]


def serious_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_shared_url_shows_priced_cards_within_a_second(site: str, page: Page) -> None:
    started = time.monotonic()
    page.goto(site + SHARED)
    page.locator("li.card .total").first.wait_for()
    elapsed = time.monotonic() - started
    print(f"first results {elapsed:.3f} s after goto")
    assert elapsed < 1.0, f"first results after {elapsed:.2f} s"
    cards = page.locator("li.card")
    assert cards.count() == 20
    assert all(cards.nth(i).get_attribute("data-place-id") for i in range(cards.count()))
    prices = totals(page)
    assert prices == sorted(prices) and prices[0] > 0
    expect(page.locator("li.card .per-night").first).to_contain_text("/ night")
    expect(page.locator("li.card .fresh").first).to_contain_text(re.compile(r"price changed \d+ (s|min|h) ago"))
    expect(page.locator("#summary")).to_contain_text("places in Singapore")
    assert page.locator(".leaflet-marker-icon.pin").count() == 20  # a price pin per card
    assert page.input_value("#where") == "Singapore"
    assert page.input_value("#checkin") == str(CHECKIN)


def test_the_form_searches_and_puts_its_state_in_the_url(site: str, page: Page) -> None:
    page.goto(site + "/")
    expect(page.locator("#summary")).to_contain_text("Where would you like to stay")
    page.fill("#where", "Sing")
    expect(page.locator("#where-suggestions option[value='Singapore']")).to_have_count(1)
    page.fill("#where", "Singapore")
    page.fill("#checkin", str(CHECKIN))
    page.fill("#checkout", str(CHECKIN + dt.timedelta(days=2)))
    page.fill("#guests", "1")
    page.press("#guests", "Enter")  # keyboard submit
    page.locator("li.card").first.wait_for()
    assert f"checkin={CHECKIN}" in page.url and "guests=1" in page.url and "where=Singapore" in page.url
    expect(page.locator("#summary")).to_contain_text("2 nights")

    cards = page.locator("#cards")
    expect(cards).to_have_attribute("aria-busy", "false")
    page.select_option("#kind", "private_room")
    expect(page).to_have_url(re.compile("kind=private_room"))
    expect(cards).to_have_attribute("aria-busy", "false")
    metas = page.locator("li.card .meta").all_inner_texts()
    assert metas and all(m.startswith("Private room") for m in metas)

    page.select_option("#sort", "distance")
    expect(page).to_have_url(re.compile("sort=distance"))
    expect(cards).to_have_attribute("aria-busy", "false")
    distances = [float(re.search(r"([\d.]+) km", m).group(1))  # type: ignore[union-attr]
                 for m in page.locator("li.card .meta").all_inner_texts()]
    assert distances == sorted(distances)

    page.locator("#next").click()
    expect(page).to_have_url(re.compile("cursor="))
    expect(page.locator("#page")).to_have_text("Page 2")
    page.go_back()
    expect(page.locator("#prev")).to_be_hidden()


def test_empty_and_unknown_places_say_so(site: str, page: Page) -> None:
    page.goto(site + f"/?where=Paris&checkin={CHECKIN}&checkout={CHECKOUT}")
    expect(page.locator("#summary")).to_have_text(
        f"Nothing free in Paris for {CHECKIN} to {CHECKOUT}. Try other dates.")
    page.goto(site + f"/?where=Singapore&checkin={CHECKIN}&checkout={CHECKOUT}&deals=only&max_price=1")
    expect(page.locator("#summary")).to_contain_text("No place in Singapore matches these filters")
    page.goto(site + "/?where=Qqxzzv")
    expect(page.locator("#summary")).to_contain_text("No place called “Qqxzzv” is known")
    assert page.locator("li.card").count() == 0


def test_a_listing_shows_its_calendar_and_a_nights_history(site: str, page: Page) -> None:
    page.goto(site + SHARED)
    first = page.locator("li.card h3 a").first
    name = first.inner_text()
    first.click()
    dialog = page.locator("dialog#listing")
    expect(dialog).to_be_visible()
    expect(page.locator("#listing-title")).to_have_text(name)
    assert "listing=airbnb" in page.url
    nights = page.locator("#calendar button.night")
    expect(nights).to_have_count(90)
    priced = page.locator("#calendar button.night:not(.closed)")
    assert priced.count() > 0
    label = priced.first.get_attribute("aria-label") or ""
    assert re.search(r"\d", label) and "not available" not in label
    priced.first.click()
    expect(page.locator("#history-title")).to_contain_text("Price history of")
    expect(page.locator("#history")).not_to_contain_text("Choose a night")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page).not_to_have_url(re.compile("listing="))


def test_a_nights_history_as_the_contract_shapes_it(site: str, page: Page) -> None:
    """GET .../history?night= (v1.1): the server of this branch has none yet, so its answer is
    given to the page here; the listing and calendar come from the real server."""
    changes = [
        {"type": "rate", "price": "120.00", "currency": "SGD", "available": True, "min_nights": 1,
         "changed_at": "2026-11-01T08:00:00Z"},
        {"type": "price", "price": "99.00", "currency": "SGD", "available": None, "min_nights": None,
         "changed_at": "2026-11-20T08:00:00Z"},
        {"type": "availability", "price": None, "currency": None, "available": False,
         "min_nights": None, "changed_at": "2026-11-25T08:00:00Z"},
    ]
    asked: list[str] = []

    def history(route: Route) -> None:
        asked.append(route.request.url)
        route.fulfill(json={"night": "2026-12-20", "changes": changes})

    page.route(re.compile(r".*/history\?night=.*"), history)
    page.goto(site + SHARED + "&listing=airbnb/43407835")
    page.locator("#calendar button.night:not(.closed)").first.click()
    rows = page.locator("#history tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("SGD 99.00")
    expect(rows.nth(2)).to_contain_text("no")
    expect(page.locator("#history svg.spark")).to_be_visible()
    assert re.search(r"/v1/listings/airbnb/43407835/history\?night=\d{4}-\d\d-\d\d$", asked[0])


def test_the_listing_view_works_from_the_keyboard(site: str, page: Page) -> None:
    page.goto(site + SHARED)
    page.locator("li.card h3 a").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("dialog#listing")).to_be_visible()
    expect(page.locator("#calendar button.night")).to_have_count(90)
    page.locator("#calendar button.night:not(.closed)").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#history-title")).to_contain_text("Price history of")
    page.keyboard.press("Escape")
    expect(page.locator("dialog#listing")).to_be_hidden()
    page.keyboard.press("Tab")  # focus is back in the page, on to the next control
    assert page.evaluate("() => document.activeElement !== document.body")


def test_a_price_change_shows_on_the_open_page(site: str, api: Server, page: Page) -> None:
    page.goto(site + SHARED)
    third = page.locator("li.card").nth(2)
    third.wait_for()
    place = third.get_attribute("data-place-id")
    source, listing_id = third.get_attribute("data-source"), third.get_attribute("data-listing-id")
    before = totals(page)[2]
    page.wait_for_timeout(300)  # the page has asked for its watch (or started polling)
    event = {"type": "rate", "source": source, "listing_id": listing_id, "start": str(CHECKIN),
             "end": str(CHECKOUT), "price": "1.00", "currency": "SGD",
             "changed_at": dt.datetime.now(dt.UTC).isoformat()}
    answer = httpx.post(f"{api.url}/v1/events", json=[event], timeout=30)
    acked = time.monotonic()
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    card = page.locator(f"li.card[data-place-id='{place}']")
    expect(card.locator(".total")).to_contain_text("3.00", timeout=5000)
    seen = time.monotonic() - acked
    print(f"card updated {seen:.3f} s after the 200")  # through the page's watch: POST /v1/watches, SSE
    assert seen < 1.0, f"the card changed {seen:.2f} s after the write's 200"
    assert "flash" in (card.get_attribute("class") or "")
    assert totals(page)[2] < before
    assert page.locator("li.card").nth(2).get_attribute("data-place-id") == place  # nothing moved


def test_ops_shows_the_write_just_made(site: str, api: Server, page: Page) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    events = [
        {"type": "listing", "source": "opsprobe", "listing_id": "p1", "name": "Probe", "kind": "house",
         "lat": 1.3, "lon": 103.8, "max_guests": 2, "changed_at": now},
        {"type": "listing", "source": "opsprobe", "listing_id": "p2", "name": "Probe", "kind": "house",
         "lat": 123, "lon": 103.8, "max_guests": 2, "changed_at": now},
    ]
    answer = httpx.post(f"{api.url}/v1/events", json=events, timeout=30)
    assert answer.json()["accepted"] == 1 and len(answer.json()["rejected"]) == 1
    page.goto(site + "/ops")
    row = page.locator("tr[data-source='opsprobe']")
    expect(row.locator(".accepted")).to_have_text("1")
    expect(row.locator(".rejected")).to_have_text("1")
    expect(page.locator("#rejections")).to_contain_text("opsprobe")
    expect(page.locator("#status")).to_contain_text("Ready")
    expect(page.locator("#tiles")).to_contain_text("Write p99")
    assert re.search(r"\d+(\.\d+)? ms", page.locator("#tiles").inner_text())


def test_places_offers_fees_and_deals_as_the_contract_shapes_them(site: str, page: Page) -> None:
    """Search v1.1 (places, offers, fees, deals, dates) as contract.md pins it: the server of
    this branch does not answer it yet, so these two answers are given to the page here."""
    deal = {"kind": "less_than_similar", "percent_below": "31.5", "reference_total": "438.00"}
    result = {
        "source": "airbnb", "listing_id": "a1", "place_id": "pl-1", "name": "Harbour flat",
        "kind": "apartment", "lat": 1.29, "lon": 103.85, "max_guests": 4, "url": None,
        "total": "300.00", "currency": "SGD", "nightly_average": "100.00", "nights_total": "270.00",
        "distance_km": 0.5, "price_changed_at": dt.datetime.now(dt.UTC).isoformat(), "deal": deal,
        "fees": [{"fee_id": "clean", "label": "Cleaning", "amount": "30.00", "mandatory": True},
                 {"fee_id": "bf", "label": "Breakfast", "amount": "45.00", "mandatory": False}],
        "offers": [{"source": "airbnb", "listing_id": "a1", "total": "300.00", "currency": "SGD",
                    "url": "https://example.invalid/a1", "deal": deal},
                   {"source": "vrbo", "listing_id": "v9", "total": "320.00", "currency": "SGD",
                    "url": None, "deal": None}],
    }
    days = [CHECKIN + dt.timedelta(days=i) for i in range(-3, 11)]
    dates = {"dates": [{"checkin": str(d), "checkout": str(d + dt.timedelta(days=3)), "matches": 1,
                        "cheapest": {"total": f"{300 + i}.00", "currency": "SGD", "source": "airbnb",
                                     "listing_id": "a1", "place_id": "pl-1"}}
                       for i, d in enumerate(days)]}
    search = {"results": [result], "matches": 1, "next_cursor": None}
    page.route(re.compile(r".*/v1/search\?.*"), lambda route: route.fulfill(json=search))
    page.route(re.compile(r".*/v1/search/dates\?.*"), lambda route: route.fulfill(json=dates))
    page.goto(site + SHARED)
    card = page.locator("li.card[data-place-id='pl-1']")
    expect(card.locator(".offers li")).to_have_count(2)
    expect(card.locator(".offers li").first).to_contain_text("airbnb")
    expect(card.locator(".offers li").nth(1)).to_contain_text("320.00")
    expect(card.locator(".deal")).to_contain_text("31.5% less than similar places nearby")
    card.locator(".fees summary").click()
    expect(card.locator(".fees")).to_contain_text("Cleaning: SGD 30.00")
    expect(card.locator(".fees")).to_contain_text("Breakfast: SGD 45.00 (optional, not included)")
    expect(card.locator(".per-night")).to_contain_text("SGD 100.00 / night")
    strip = page.locator("#dates button")
    expect(strip).to_have_count(14)
    expect(page.locator("#dates button[aria-current='date']")).to_contain_text("303")
    page.locator("#dates button").nth(5).click()
    expect(page).to_have_url(re.compile(f"checkin={days[5]}"))


def test_ops_draws_the_summary_shape_it_defines(site: str, page: Page) -> None:
    """GET /v1/ops/summary, as OPS_SUMMARY_SHAPE (routes.py) defines it for the server to
    answer; this branch's server has no such route yet, so the answer is given here."""
    summary = {
        "at": "2026-12-04T16:00:00.000Z", "ready": False, "problems": ["backlog 120000 events"],
        "started_at": "2026-12-04T15:00:00.000Z", "backlog_events": 120000,
        "sources": [{
            "source": "vrbo", "accepted_total": 5400, "rejected_total": 7, "accepted_per_s": 120.5,
            "rejected_per_s": 0.2,
            "rejections": [{"reason": "price", "count": 7,
                            "example": "index 4: price: '-1' is negative; expected >= 0"}],
            "ack_to_searchable_s": {"p50": 0.002, "p99": 0.009},
            "changed_to_searchable_s": {"p50": 0.8, "p99": 3.1},
            "last_event_at": "2026-12-04T15:59:59.000Z",
        }],
        "write": {"p50_ms": 2.1, "p99_ms": 8.4, "requests_per_s": 12.0},
        "snapshot": {"last_at": "2026-12-04T15:58:00.000Z", "last_seconds": 0.4, "failures": 0,
                     "events_since": 1200},
        "restart": {"recovered_at": "2026-12-04T15:00:01.000Z", "snapshot_seq": 12,
                    "replayed_events": 3400, "seconds": 0.25},
        "scaled": {"role": "search", "follow_lag_s": 0.01, "follow_lag_messages": 0,
                   "apply_lag_s": 0.2, "apply_lag_messages": 3},
    }
    page.route(re.compile(r".*/v1/ops/summary$"), lambda route: route.fulfill(json=summary))
    page.goto(site + "/ops")
    row = page.locator("tr[data-source='vrbo']")
    expect(row).to_contain_text("120.5")
    expect(row).to_contain_text("2 ms / 9 ms")
    expect(row).to_contain_text("800 ms / 3.1 s")
    expect(page.locator("#rejections")).to_contain_text("index 4: price: '-1' is negative; expected >= 0")
    expect(page.locator("#status")).to_contain_text("Not ready: backlog 120000 events")
    tiles = page.locator("#tiles")
    expect(tiles).to_contain_text("120,000")
    expect(tiles).to_contain_text("8.4 ms")
    expect(page.locator("#durability")).to_contain_text("3,400")
    expect(page.locator("#scaled")).to_contain_text("search")
    expect(page.locator("#scaled")).to_contain_text("200 ms")


@pytest.mark.parametrize("path", [SHARED, SHARED + "&listing=airbnb/43407835", "/ops"])
def test_no_serious_accessibility_violation(site: str, page: Page, path: str) -> None:
    page.goto(site + path)
    page.locator("li.card, #sources tr").first.wait_for()
    if "listing=" in path:
        expect(page.locator("#calendar button.night")).to_have_count(90)
    page.wait_for_timeout(300)
    assert serious_violations(page) == []


@pytest.mark.parametrize("path", [SHARED, "/ops"])
def test_readable_on_a_phone(site: str, browser: Browser, path: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(site + path)
    phone.locator("li.card, #sources tr").first.wait_for()
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    violations = serious_violations(phone)
    context.close()
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    assert violations == []


def test_a_configured_tile_server_replaces_the_outlines(api: Server, page: Page) -> None:
    tiles = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"  # nothing listens: the tiles just fail
    harness = Harness(api.url, tile_url=tiles)
    try:
        page.goto(harness.url + SHARED)
        page.locator("li.card").first.wait_for()
        tile = page.locator("img.leaflet-tile").first
        tile.wait_for(state="attached")
        assert (tile.get_attribute("src") or "").startswith("http://127.0.0.1:9/tiles/")
        expect(page.locator("#tile-credit")).to_contain_text("OpenStreetMap")
        assert "offline" not in (page.locator("#map").get_attribute("class") or "")
    finally:
        harness.stop()


def test_where_api(site: str) -> None:
    with httpx.Client(base_url=site, timeout=30) as client:
        found = client.get("/v1/where", params={"q": "sing"}).json()
        assert found["place"]["name"] == "Singapore" and found["place"]["source"] == "listings"
        assert found["suggestions"][0]["listings"] == 821
        paris = client.get("/v1/where", params={"q": "Paris"}).json()["place"]
        assert paris["country"] == "FR" and 48 < paris["lat"] < 49 and paris["listings"] is None
        assert client.get("/v1/where", params={"q": "zzzxqj"}).json() == {
            "query": "zzzxqj", "place": None, "suggestions": []}
        missing = client.get("/v1/where")
        assert missing.status_code == 400 and "q: missing" in missing.json()["error"]
        too_long = client.get("/v1/where", params={"q": "x" * 101})
        assert too_long.status_code == 400 and "101 characters" in too_long.json()["error"]


def test_static_files_are_cached(site: str) -> None:
    with httpx.Client(base_url=site, timeout=30) as client:
        vendored = client.get("/static/vendor/leaflet/leaflet.js")
        assert vendored.status_code == 200 and "max-age=604800" in vendored.headers["cache-control"]
        own = client.get("/static/search.js")
        assert own.headers["cache-control"] == "no-cache"
        again = client.get("/static/search.js", headers={"if-none-match": own.headers["etag"]})
        assert again.status_code == 304
        page = client.get("/")
        assert page.status_code == 200 and 'name="staystream-tile-url" content=""' in page.text
