"""Screenshots of the search page, a listing and the ops dashboard, desktop (1280 px) and phone
(390 px): six pictures in docs/screenshots/, shown in the README.

Starts the browser tests' scene (tests/web_scene.py: a real `staystream serve --seed-sample` and
a few writes through its API), sends a little traffic (price changes, a rejected event) so the
dashboard has something to show, and drives Debian's chromium against that server.

Usage: PYTHONPATH=src python scripts/screenshots.py   (writes docs/screenshots/*.png)
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

import httpx
from playwright.sync_api import Page, ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_web import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  # after the sys.path line above: tests/ is not a package
from web_scene import CHECKIN, CHECKOUT, HISTORY_NIGHT, SCENE_LISTING, SHARED, instant, start_scene  # noqa: E402  # likewise

OUT = ROOT / "docs" / "screenshots"


def traffic(api: str, stop: threading.Event) -> None:
    """A few writes a second, one of them rejected, while the dashboard is shot."""
    with httpx.Client(base_url=api, timeout=30) as client:
        price = 90
        while not stop.is_set():
            now = instant()
            price = 80 + (price + 7) % 40
            client.post("/v1/events", json=[
                {"type": "rate", "source": "airbnb", "listing_id": "43407835", "start": str(CHECKIN),
                 "end": str(CHECKOUT), "price": str(price), "currency": "SGD", "changed_at": now},
                {"type": "rate", "source": "airbnb", "listing_id": "43407835", "start": str(CHECKIN),
                 "end": str(CHECKOUT), "price": "-5", "currency": "SGD", "changed_at": now},
            ])
            stop.wait(0.2)


def shoot(page: Page, path: str, name: str, ready: str, then: str | None = None) -> None:
    page.goto(path)
    page.locator(ready).first.wait_for()
    if then:  # e.g. a night of the listing, so its price history shows
        page.locator(then).click()
        page.locator("#history table").scroll_into_view_if_needed()  # the chart and the table in view
    page.wait_for_timeout(6000 if path == "/ops" else 1500)  # the map settles; the dashboard's curve grows
    page.screenshot(path=OUT / name)
    print(OUT / name)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_scene(Path(tmp) / "var")
        stop = threading.Event()
        try:
            writer = threading.Thread(target=traffic, args=(server.url, stop), daemon=True)
            writer.start()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                sizes = (("desktop", ViewportSize(width=1280, height=860)),
                         ("phone", ViewportSize(width=390, height=844)))
                for label, viewport in sizes:
                    context = browser.new_context(viewport=viewport, base_url=server.url,
                                                  device_scale_factor=1, is_mobile=label == "phone")
                    page = context.new_page()
                    shoot(page, SHARED, f"search-{label}.png", "li.card")
                    shoot(page, f"{SHARED}&listing={SCENE_LISTING}", f"listing-{label}.png", "#calendar button",
                          then=f"#calendar button[data-night='{HISTORY_NIGHT}']")
                    shoot(page, "/ops", f"ops-{label}.png", "#sources tr[data-source]")
                    context.close()
                browser.close()
        finally:
            stop.set()
            server.stop()


if __name__ == "__main__":
    main()
