"""Screenshots of the search page and the ops dashboard, desktop (1280 px) and phone (390 px).

Starts `staystream serve --seed-sample` (the Singapore sample city) and the web routes in front
of it (tests/web_harness.py), sends a little traffic (a price change, a rejected event) so the
dashboard has something to show, and drives Debian's chromium.

Usage: PYTHONPATH=src python scripts/screenshots.py   (writes docs/screenshots/*.png)
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_server  # noqa: E402  # after the sys.path line above: tests/ is not a package
from test_web import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  # after the sys.path line above: tests/ is not a package
from web_harness import Harness  # noqa: E402  # after the sys.path line above: tests/ is not a package

OUT = ROOT / "docs" / "screenshots"
CHECKIN = dt.date.today() + dt.timedelta(days=7)
CHECKOUT = CHECKIN + dt.timedelta(days=3)
SEARCH = f"/?where=Singapore&checkin={CHECKIN}&checkout={CHECKOUT}&guests=2&currency=SGD"


def traffic(api: str, stop: threading.Event) -> None:
    """A few writes a second, one of them rejected, while the dashboard is shot."""
    with httpx.Client(base_url=api, timeout=30) as client:
        price = 90
        while not stop.is_set():
            now = dt.datetime.now(dt.UTC).isoformat()
            price = 80 + (price + 7) % 40
            client.post("/v1/events", json=[
                {"type": "rate", "source": "airbnb", "listing_id": "43407835", "start": str(CHECKIN),
                 "end": str(CHECKOUT), "price": str(price), "currency": "SGD", "changed_at": now},
                {"type": "rate", "source": "airbnb", "listing_id": "43407835", "start": str(CHECKIN),
                 "end": str(CHECKOUT), "price": "-5", "currency": "SGD", "changed_at": now},
            ])
            stop.wait(0.2)


def shoot(page: Page, path: str, name: str, ready: str) -> None:
    page.goto(path)
    page.locator(ready).first.wait_for()
    page.wait_for_timeout(1500)  # map outlines and live counters settle
    page.screenshot(path=OUT / name)
    print(OUT / name)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "var", "--seed-sample", workers=1)
        harness = Harness(server.url)
        stop = threading.Event()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the sample city is seeded after start
                found = httpx.get(f"{harness.url}/v1/search?lat=1.29&lon=103.85&radius_km=20"
                                  f"&checkin={CHECKIN}&checkout={CHECKOUT}").json()
                if found.get("matches", 0) > 100:
                    break
                time.sleep(0.2)
            writer = threading.Thread(target=traffic, args=(server.url, stop), daemon=True)
            writer.start()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                sizes = (("desktop", ViewportSize(width=1280, height=860)),
                         ("phone", ViewportSize(width=390, height=844)))
                for label, viewport in sizes:
                    context = browser.new_context(viewport=viewport, base_url=harness.url,
                                                  device_scale_factor=1, is_mobile=label == "phone")
                    page = context.new_page()
                    shoot(page, SEARCH, f"search-{label}.png", "li.card")
                    shoot(page, SEARCH + "&listing=airbnb/43407835", f"listing-{label}.png", "#calendar button")
                    shoot(page, "/ops", f"ops-{label}.png", "#sources tr[data-source]")
                    context.close()
                browser.close()
        finally:
            stop.set()
            harness.stop()
            server.stop()


if __name__ == "__main__":
    main()
