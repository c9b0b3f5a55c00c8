"""`python -m benchmarks.web_bench`: what a user of the web pages waits for, and what they cost.

Bars (issue 14): first results visible within 1 s of opening a shared URL on the sample city; an
open page's card updated within 1 s of a write's 200; JavaScript kept small.

1. `start`: `staystream serve --workers 2` on an empty store, CPU seconds (user + system) of the
   supervisor and all its children from exec until the tree is idle after start, and the time to
   the listening line; then, the tree idle, the first "where" suggestion of the server
   (`/v1/where?q=sing`: a worker's first reads the world's cities) and the next ones on the same
   connection (the same worker). `--compare SRC` runs the same with another source tree (e.g. an
   older commit's `src`), alternating, so both are measured under the same load.
2. `first_results`: the scene of the browser tests (tests/web_scene.py: a real server with the
   sample city); a fresh browser context (no cache: a shared link opened) loads the shared URL;
   the page marks `staystream:results` when its first cards are drawn: milliseconds since the
   navigation started, beside the HTML's and the API calls' own times from Resource Timing.
3. `live`: the page open on the shared URL with its watch stream open; a price drop posted for
   one of its cards, then a rise of the same card (told by the watch's `changes` opt-in); from
   each write's 200 (the client's clock) to the card's new total in the DOM (a MutationObserver,
   the same clock).
4. `size`: bytes of the pages' own JavaScript and CSS, plain and gzipped, and of vendored Leaflet.

Figures are medians with min-max; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_web import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  # after the sys.path line above: tests/ is not a package
from web_scene import CHECKIN, CHECKOUT, SHARED, instant, post, start_scene  # noqa: E402  # likewise

STATIC = ROOT / "src" / "staystream" / "web" / "static"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- 1. start CPU ------------------------------------------------------------------------------


def _tree_cpu(root: int) -> float:
    """CPU seconds of `root` and its live descendants (user + system, as /proc/<pid>/stat)."""
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        pending.extend(int(child) for child in children)
    return total


def start_cpu(src: Path, workdir: Path) -> tuple[float, float, float, float]:
    """(CPU seconds until idle after start, seconds to the listening line, milliseconds of the
    first suggestion, median milliseconds of the next five) of one serve."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir))
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "staystream", "serve", "--port", "0", "--data-dir", str(data_dir), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    try:
        line = process.stdout.readline().decode()
        assert "listening on" in line, line
        listening = time.monotonic() - started
        url = line.split("listening on ", 1)[1].split()[0]
        cpu = _tree_cpu(process.pid)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # idle: under 20 ms of CPU in half a second
            time.sleep(0.5)
            now = _tree_cpu(process.pid)
            if now - cpu < 0.02:
                break
            cpu = now
        with httpx.Client(base_url=url, timeout=30) as client:  # one connection: one worker
            suggestions = []
            for _ in range(6):
                asked = time.perf_counter()
                client.get("/v1/where", params={"q": "sing"}).raise_for_status()
                suggestions.append((time.perf_counter() - asked) * 1000)
        return cpu, listening, suggestions[0], statistics.median(suggestions[1:])
    finally:
        process.terminate()
        process.wait(60)
        process.stdout.close()


def bench_start(sources: dict[str, Path], repeat: int, workdir: Path) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in sources}
    for _ in range(repeat):
        for name, src in sources.items():  # alternated: the same load for both
            runs[name].append(start_cpu(src, workdir))
    result = {name: {"cpu_s": [r[0] for r in found], "listening_s": [r[1] for r in found],
                     "first_where_ms": [r[2] for r in found], "next_where_ms": [r[3] for r in found]}
              for name, found in runs.items()}
    for name, figures in result.items():
        print(f"  start ({name}): CPU {spread(figures['cpu_s'], 2)} s, listening after "
              f"{spread(figures['listening_s'], 2)} s; first suggestion "
              f"{spread(figures['first_where_ms'])} ms, next {spread(figures['next_where_ms'])} ms")
    if len(sources) == 2:
        this, other = (statistics.median(result[name]["cpu_s"]) for name in sources)
        print(f"  start CPU ratio this / compared: {this / other:.2f}")
    return result


# -- 2. first results, 3. live update -----------------------------------------------------------


def first_results(browser: Browser, url: str, repeat: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"results_ms": [], "html_ms": [], "where_ms": [], "search_ms": []}
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(url + SHARED)
        page.wait_for_function("() => performance.getEntriesByName('staystream:results').length")
        timing = page.evaluate("""() => {
            const took = (part) => performance.getEntriesByType('resource').find((e) => e.name.includes(part));
            return {
                results_ms: performance.getEntriesByName('staystream:results')[0].startTime,
                html_ms: performance.getEntriesByType('navigation')[0].responseEnd,
                where_ms: took('/v1/where').duration, search_ms: took('/v1/search?').duration,
            };
        }""")
        for name, value in timing.items():
            figures[name].append(value)
        context.close()
    print(f"  first results: {spread(figures['results_ms'])} ms after the navigation started (HTML "
          f"{spread(figures['html_ms'])}, /v1/where {spread(figures['where_ms'])}, "
          f"/v1/search {spread(figures['search_ms'])} ms)")
    return figures


def live_updates(browser: Browser, server: Any, repeat: int) -> dict[str, list[float]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + SHARED)
    page.wait_for_function("() => document.querySelector('#cards').dataset.live === 'watch'")
    seen_ms: dict[str, list[float]] = {"drop": [], "rise": []}
    for i in range(repeat):
        card = page.locator("li.card").nth(i + 1)
        place, listing = card.get_attribute("data-place-id"), card.get_attribute("data-listing-id")
        # below every sample place, and lower each time: a price drop; then a rise, still the cheapest
        for kind, price in (("drop", f"{30 - i}.00"), ("rise", f"{32 - i}.00")):
            before = page.locator(f"li.card[data-place-id='{place}'] .total").inner_text()
            page.evaluate("""([place, before]) => {
                window.seenAt = null;
                const observer = new MutationObserver(() => {
                  const total = document.querySelector(`li.card[data-place-id="${place}"] .total`);
                  if (total && total.textContent !== before) { window.seenAt = Date.now(); observer.disconnect(); }
                });
                const cards = document.querySelector('#cards');
                observer.observe(cards, {subtree: true, childList: true, characterData: true});
            }""", [place, before])
            post(server, [{"type": "rate", "source": "airbnb", "listing_id": listing, "start": str(CHECKIN),
                           "end": str(CHECKOUT), "price": price, "currency": "SGD", "changed_at": instant()}])
            acked_ms = time.time() * 1000
            page.wait_for_function("() => window.seenAt !== null", timeout=10_000)
            seen_ms[kind].append(page.evaluate("() => window.seenAt") - acked_ms)
    page.close()
    for kind, found in seen_ms.items():
        print(f"  live card update, a price {kind}: {spread(found)} ms after the write's 200")
    return seen_ms


# -- 4. size ------------------------------------------------------------------------------------


def sizes() -> dict[str, tuple[int, int]]:
    files = {"search.js": STATIC / "search.js", "ops.js": STATIC / "ops.js", "style.css": STATIC / "style.css",
             "leaflet.js (vendored)": STATIC / "vendor" / "leaflet" / "leaflet.js"}
    found = {name: (len(path.read_bytes()), len(gzip.compress(path.read_bytes(), 9))) for name, path in files.items()}
    for name, (plain, packed) in found.items():
        print(f"  {name}: {plain:,} bytes, {packed:,} gzipped")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each measurement (default 7)")
    parser.add_argument("--compare", type=Path, help="another source tree to compare start CPU with")
    parser.add_argument("--only-start", action="store_true", help="measure the start alone (no browser)")
    args = parser.parse_args(argv)
    print(f"web benchmarks; load average {load()} at the start")
    sizes()
    with tempfile.TemporaryDirectory(prefix="staystream-web-bench-") as tmp:
        sources = {"this": ROOT / "src", **({"compared": args.compare.resolve()} if args.compare else {})}
        bench_start(sources, args.repeat if args.only_start else max(3, args.repeat // 2), Path(tmp))
        if args.only_start:
            return 0
        server = start_scene(Path(tmp) / "scene")
        try:
            httpx.get(f"{server.url}/v1/where", params={"q": "sing"}, timeout=30)  # the listings' cities read
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                first_results(browser, server.url, args.repeat)
                live_updates(browser, server, args.repeat)
                browser.close()
        finally:
            server.stop()
    print(f"load average {load()} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
