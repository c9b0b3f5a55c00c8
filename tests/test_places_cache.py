"""The places cache: a graph restored from the cache saved at any point, whatever came after
and was never saved (a crash), ends with the places of matching from scratch, and scores again
only the listings that changed since the last save."""

from __future__ import annotations

import random
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from staystream.places import Link, PlaceEvent, PlaceGraph, PlaceListing, matching
from staystream.places.cache import PlacesCache
from test_places_graph import delists, final_state, hotel, link_parts, listings, snapshot


def _events(raw: list[object]) -> list[PlaceEvent]:
    evs: list[PlaceEvent] = []
    for item in raw:
        if isinstance(item, tuple):
            a, b, same, when = item
            if a != b:
                evs.append(Link(a[0], a[1], b[0], b[1], same, when))
        else:
            evs.append(item)  # type: ignore[arg-type]
    return evs


def _restored(path: Path, evs: list[PlaceEvent]) -> tuple[PlaceGraph, int]:
    """A new writer's graph: the final listings and links, the cache; returns it and how many
    listings it had to score again."""
    graph = PlaceGraph()
    cache = PlacesCache(path)
    state = final_state(evs)
    graph.restore([x.row for x in state if isinstance(x, PlaceListing)], [x for x in state if isinstance(x, Link)],
                  cache.load())
    rematched = graph.pending
    graph.match_pending(rematched)
    cache.save(graph.unsaved())
    cache.close()
    return graph, rematched


events = st.lists(st.one_of(listings, listings, delists, link_parts), max_size=15)


@settings(max_examples=150, deadline=None)
@given(events, events, st.randoms(use_true_random=False))
def test_restored_from_any_save_equals_from_scratch(raw_saved: list[object], raw_lost: list[object],
                                                    rnd: random.Random) -> None:
    """Events, saves now and then, a save, more events never saved (then a crash)."""
    saved, lost = _events(raw_saved), _events(raw_lost)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "places-cache.sqlite3"
        cache = PlacesCache(path)
        cache.load()
        graph = PlaceGraph()
        for stage in (saved, lost):
            for event in stage:
                graph.apply([event], match=rnd.random() < 0.5)  # some deferred, as an import's
                if rnd.random() < 0.3:
                    graph.match_pending(rnd.randint(1, 3))
                if stage is saved and rnd.random() < 0.3:
                    cache.save(graph.unsaved())
            if stage is saved:
                cache.save(graph.unsaved())
                pending_at_save = graph.pending
        cache.close()
        evs = saved + lost
        from_scratch = PlaceGraph()
        from_scratch.apply(final_state(evs))
        restored, rematched = _restored(path, evs)
        assert snapshot(restored) == snapshot(from_scratch)
        # scored again: at most the listings described since the save and those pending at it
        assert rematched <= len({e.key for e in lost if isinstance(e, PlaceListing)}) + pending_at_save
        # a second restart, right after a full save: nothing to score
        again, rematched = _restored(path, evs)
        assert rematched == 0 and snapshot(again) == snapshot(from_scratch)


def test_only_the_listings_changed_since_the_save_are_scored_again(tmp_path: Path) -> None:
    path = tmp_path / "places-cache.sqlite3"
    twins = [hotel(source, str(i), north=100.0 * i, name=f"Maison {name}", address=f"{i} Rue X")
             for i, name in enumerate(("Rose", "Bleue", "Verte", "Jaune", "Grise")) for source in ("a", "b")]
    graph = PlaceGraph()
    graph.apply(twins)
    cache = PlacesCache(path)
    cache.load()
    cache.save(graph.unsaved())
    moved = hotel("a", "0", north=30.0, name="Maison Rose", address="0 Rue X")  # after the save
    graph.apply([moved])
    cache.close()
    evs: list[PlaceEvent] = [*twins, moved]
    restored, rematched = _restored(path, evs)
    assert rematched == 1
    assert snapshot(restored) == snapshot(graph)
    assert len(graph.places()) == 5


def test_other_matching_code_or_a_damaged_file_means_matching_everything(tmp_path: Path) -> None:
    path = tmp_path / "places-cache.sqlite3"
    twins = [hotel("a", "1"), hotel("b", "1", north=40.0)]
    graph = PlaceGraph()
    graph.apply(twins)
    cache = PlacesCache(path)
    cache.load()
    cache.save(graph.unsaved())
    cache.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'made by other code'")
    restored, rematched = _restored(path, list(twins))
    assert rematched == 2 and snapshot(restored) == snapshot(graph)
    assert _restored(path, list(twins))[1] == 0
    path.write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    restored, rematched = _restored(path, list(twins))
    assert rematched == 2 and snapshot(restored) == snapshot(graph)


def test_the_fingerprint_changes_with_what_matching_reads() -> None:
    base = hotel("a", "1")
    assert matching.fingerprint(base) == matching.fingerprint(hotel("a", "1"))
    for other in (hotel("b", "1"), hotel("a", "1", north=1.0), hotel("a", "1", name="Lutetia"),
                  hotel("a", "1", address=None), hotel("a", "1", kind="apartment"), hotel("a", "1", guests=3)):
        assert matching.fingerprint(other) != matching.fingerprint(base)
    assert matching.fingerprint(hotel("a", "1", property_id="P")) == matching.fingerprint(base)  # not read
