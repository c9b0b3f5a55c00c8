"""Price history (`GET /v1/listings/{source}/{id}/history?night=`) in the running service: every
accepted event of a night in changed_at order with the facts it set, read-after-ack, across a
restart, a kill -9 and log truncation by snapshots; pruning of the history file."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import Server
from staystream.durable import history
from staystream.events.types import ALL_FACTS, RATE_DTYPE

NDJSON = {"content-type": "application/x-ndjson"}
DAY = dt.date.today() + dt.timedelta(days=30)


def iso(offset: int) -> str:
    return (DAY + dt.timedelta(days=offset)).isoformat()


def at(minute: int) -> str:
    return (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


def shown_at(minute: int) -> str:
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def post(client: httpx.Client, events: list[dict[str, object]]) -> None:
    response = client.post("/v1/events", content="\n".join(map(json.dumps, events)), headers=NDJSON)
    assert response.status_code == 200 and response.json()["rejected"] == [], response.text


def changes(client: httpx.Client, listing_id: str, night: str) -> list[dict[str, object]]:
    response = client.get(f"/v1/listings/airbnb/{listing_id}/history", params={"night": night})
    assert response.status_code == 200, response.text
    assert response.json()["night"] == night
    found: list[dict[str, object]] = response.json()["changes"]
    return found


def world(listing_id: str, seed: int) -> tuple[list[dict[str, object]], dict[str, list[dict[str, object]]]]:
    """Events of every type over nights 0..9, in a random arrival order, and per night the
    changes the contract expects (by changed_at; each change's minute is unique)."""
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    expected: dict[str, list[tuple[int, dict[str, object]]]] = {iso(n): [] for n in range(10)}
    minutes = rng.sample(range(10_000), 40)
    for minute in minutes:
        start = rng.randrange(0, 9)
        end = rng.randrange(start + 1, 11)
        kind = rng.choice(["rate", "price", "availability", "stay_rule", "rate-closed"])
        base = {"source": "airbnb", "listing_id": listing_id, "start": iso(start), "end": iso(end),
                "changed_at": at(minute)}
        change: dict[str, object] = {"price": None, "currency": None, "available": None, "min_nights": None,
                                     "changed_at": shown_at(minute)}
        price = rng.randrange(5000, 30000)
        if kind == "rate":
            events.append({**base, "type": "rate", "price": f"{price / 100:.2f}", "currency": "EUR", "min_nights": 2})
            change.update(type="rate", price=f"{price / 100:.2f}", currency="EUR", available=True, min_nights=2)
        elif kind == "rate-closed":
            events.append({**base, "type": "rate", "available": False, "currency": "EUR"})
            change.update(type="rate", available=False, min_nights=1)
        elif kind == "price":
            events.append({**base, "type": "price", "price": str(price), "currency": "JPY"})
            change.update(type="price", price=str(price), currency="JPY")
        elif kind == "availability":
            events.append({**base, "type": "availability", "available": rng.random() < 0.5})
            change.update(type="availability", available=events[-1]["available"])
        else:
            events.append({**base, "type": "stay_rule", "min_nights": rng.randrange(1, 8)})
            change.update(type="stay_rule", min_nights=events[-1]["min_nights"])
        for night in range(start, end):
            expected[iso(night)].append((minute, change))
    return events, {night: [c for _, c in sorted(found, key=lambda x: x[0])] for night, found in expected.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_history_lists_every_change_of_the_night_in_changed_at_order(server: Server, seed: int) -> None:
    events, expected = world(f"hist-{seed}", seed)
    with server.client() as client:
        # in several requests, some after others that are newer: arrival order must not matter
        for first in range(0, len(events), 7):
            post(client, events[first : first + 7])
        post(client, [{**events[0], "listing_id": f"other-{seed}"}])  # another listing: not in this one's history
        for night, wanted in expected.items():  # read-after-ack: no waiting
            assert changes(client, f"hist-{seed}", night) == wanted, night
        assert changes(client, f"hist-{seed}", iso(-1)) == []  # `end` is exclusive, `start` inclusive
        assert changes(client, f"hist-{seed}", iso(10)) == []


def test_history_refuses_bad_requests(server: Server) -> None:
    with server.client() as client:
        post(client, [{"type": "rate", "source": "airbnb", "listing_id": "hist-bad", "start": iso(0), "end": iso(1),
                       "price": "10", "currency": "EUR", "changed_at": at(0)}])
        missing = client.get("/v1/listings/airbnb/hist-bad/history")
        assert missing.status_code == 400 and missing.json()["error"].startswith("night: missing")
        wrong = client.get("/v1/listings/airbnb/hist-bad/history", params={"night": "tomorrow"})
        assert wrong.status_code == 400 and "night: 'tomorrow'" in wrong.json()["error"]
        unknown = client.get("/v1/listings/airbnb/never-seen/history", params={"night": iso(0)})
        assert unknown.status_code == 404


@pytest.mark.parametrize("stop", ["sigterm", "kill -9"])
def test_history_survives_restarts_and_log_truncation(server_factory, stop: str) -> None:  # type: ignore[no-untyped-def]
    # Snapshots every few hundred night updates: the log they cover is deleted, so the history
    # must have copied it first.
    server = server_factory("--snapshot-log-nights", "20")
    events, expected = world("hist-restart", 3)
    with server.client() as client:
        post(client, events[:20])
        deadline = time.monotonic() + 10
        while "snapshot written" not in server.log():  # so log rows it covers are deleted
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        post(client, events[20:])
    if stop == "sigterm":
        server.stop()
    else:
        server.kill()  # right after the last 200: the history may not have copied it yet
    again = server_factory("--snapshot-log-nights", "20", data_dir=server.data_dir)
    with again.client() as client:
        for night, wanted in expected.items():
            assert changes(client, "hist-restart", night) == wanted, night


def test_a_history_left_from_another_store_is_emptied(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    events, _ = world("hist-stale", 4)
    with server.client() as client:
        post(client, events)
    server.stop()
    for name in ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"):  # the store goes, history stays
        (server.data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(server.data_dir / "snapshot", ignore_errors=True)
    again = server_factory(data_dir=server.data_dir)
    fresh, expected = world("hist-stale", 5)
    with again.client() as client:
        post(client, fresh)
        for night, wanted in expected.items():
            assert changes(client, "hist-stale", night) == wanted, night
    assert "holds groups this store never had" in again.log()


def test_prune_drops_groups_older_than_the_kept_days(tmp_path: Path) -> None:
    connection = history.connect(tmp_path / history.HISTORY_FILE)
    events = np.zeros(3, RATE_DTYPE)
    events["key"], events["start"], events["nights"], events["facts"] = [7, 7, 8], 20_000, 5, ALL_FACTS
    events["changed_at"] = [1, 2, 3]
    history.add_batch(connection, 1, events, day=100)
    assert history.compact(connection) == 3
    history.add_batch(connection, 2, events, day=500)
    assert history.compact(connection) == 3
    assert history.taken(connection) == 2
    assert len(history.changes(connection, 7, 20_002)) == 4
    assert history.prune(connection, oldest_day=101) == 2  # the day-100 group's rows: listings 7 and 8
    assert [e[2] for e in history.changes(connection, 7, 20_002)] == [1, 2]
    assert history.changes(connection, 7, 20_005) == []


def test_events_of_one_group_far_apart_are_all_found(tmp_path: Path) -> None:
    connection = history.connect(tmp_path / history.HISTORY_FILE)
    events = np.zeros(3, RATE_DTYPE)
    events["key"], events["start"], events["facts"] = 7, [20_000, 21_000, 20_990], ALL_FACTS
    events["nights"] = [3, 1, 30]
    events["changed_at"] = [1, 2, 3]
    history.add_batch(connection, 1, events, day=100)
    for moved in (False, True):  # read from the recent batch, then from the compacted rows
        assert [e[2] for e in history.changes(connection, 7, 20_001)] == [1], moved
        assert sorted(e[2] for e in history.changes(connection, 7, 21_000)) == [2, 3], moved
        assert history.changes(connection, 7, 21_100) == [], moved
        history.compact(connection)


def test_a_night_is_read_from_compacted_rows_then_recent_batches_in_arrival_order(tmp_path: Path) -> None:
    connection = history.connect(tmp_path / history.HISTORY_FILE)
    reader = history.connect(tmp_path / history.HISTORY_FILE, readonly=True)

    def batch(seq: int, rows: list[int], changed_at: list[int]) -> None:
        events = np.zeros(len(rows), RATE_DTYPE)
        events["key"], events["start"], events["nights"], events["facts"] = rows, 20_000, 3, ALL_FACTS
        events["changed_at"] = changed_at
        history.add_batch(connection, seq, events, day=100)

    batch(1, [9, 7, 3, 7], [50, 40, 50, 30])
    history.compact(connection)
    batch(2, [7, 9], [20, 60])
    batch(3, [3, 7, 7], [70, 10, 5])  # one batch's events of a row keep their arrival order
    assert [e[2] for e in history.changes(reader, 7, 20_001)] == [40, 30, 20, 10, 5]
    assert [e[2] for e in history.changes(reader, 9, 20_002)] == [50, 60]
    assert history.changes(reader, 8, 20_001) == [] and history.changes(reader, 7, 20_003) == []
    assert history.compact(connection) == 5
    assert [e[2] for e in history.changes(reader, 7, 20_001)] == [40, 30, 20, 10, 5]
    assert connection.execute("SELECT count(*) FROM recent").fetchone()[0] == 0


def test_groups_queued_together_are_copied_in_one_batch_in_arrival_order(tmp_path: Path) -> None:
    """The history thread takes every group queued behind the next one into one transaction,
    and `taken` is the last group's sequence; closing moves the recent batches into `history`,
    where a listing's events of several groups share a row, in arrival order."""
    published: list[int] = []
    keeper = history.HistoryKeeper(tmp_path, 400, published.append)
    for seq in range(1, 51):  # queued before the thread starts: one batch
        events = np.zeros(2, RATE_DTYPE)
        events["key"], events["start"], events["nights"], events["facts"] = [7, 8 + seq], 20_000, 5, ALL_FACTS
        events["changed_at"] = [seq, seq]
        keeper.add(seq, events)
    keeper.start()
    keeper.close()
    connection = history.connect(tmp_path / history.HISTORY_FILE)
    assert history.taken(connection) == 50 and published == [50]
    assert [e[2] for e in history.changes(connection, 7, 20_002)] == list(range(1, 51))
    assert connection.execute("SELECT count(*) FROM history WHERE row = 7").fetchone()[0] == 1
    assert connection.execute("SELECT count(*) FROM recent").fetchone()[0] == 0
    assert all(history.changes(connection, 8 + seq, 20_004) for seq in range(1, 51))


def test_a_compaction_cut_short_is_resumed_and_no_event_is_read_twice_or_lost(tmp_path: Path) -> None:
    """A compaction moves a range of listing rows a transaction; a read in between, or after a
    crash between two of them, finds every event once, and the next compaction finishes it."""
    connection = history.connect(tmp_path / history.HISTORY_FILE)
    reader = history.connect(tmp_path / history.HISTORY_FILE, readonly=True)
    for seq in range(1, 4):
        events = np.zeros(40, RATE_DTYPE)
        events["key"], events["start"], events["nights"], events["facts"] = np.arange(40) % 20, 20_000, 2, ALL_FACTS
        events["changed_at"] = seq * 100 + np.arange(40)
        history.add_batch(connection, seq, events, day=100)
    expected = {row: [seq * 100 + i for seq in range(1, 4) for i in (row, row + 20)] for row in range(20)}

    class Crash(Exception):
        pass

    def crash() -> None:
        assert {row: [e[2] for e in history.changes(reader, row, 20_001)] for row in range(20)} == expected
        raise Crash

    with pytest.raises(Crash):
        history.compact(connection, crash, step_events=30)  # moved the first rows, then "crashed"
    moved = connection.execute("SELECT count(DISTINCT row) FROM history").fetchone()[0]
    assert 0 < moved < 20
    assert {row: [e[2] for e in history.changes(reader, row, 20_001)] for row in range(20)} == expected
    assert history.compact(connection, step_events=30) == 120 - moved * 6
    assert {row: [e[2] for e in history.changes(reader, row, 20_001)] for row in range(20)} == expected
    assert connection.execute("SELECT count(*) FROM recent").fetchone()[0] == 0
    assert connection.execute("SELECT count(*) FROM compacting").fetchone()[0] == 0
