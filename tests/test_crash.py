"""Durability: kill -9 under concurrent load, restart on the same data dir, nothing acknowledged lost.

The load (tests/acked.py) remembers, per night, the newest value a 200 acknowledged; after the
restart every such night must hold that value or a newer one. Snapshots and log truncation run
under load too, and a clean SIGTERM stop must keep everything through the snapshot path.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from acked import AckedLoad
from staystream.paths import SNAPSHOT_DIR, database_path
from wire_events import calendar, delist, listing, night, nights, post_ok, rate, unique_id


def children(pid: int) -> dict[int, str]:
    """Live (non-zombie) processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int, cmdline: str) -> bool:
    """Whether `pid` still runs the same program (not a zombie, not a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and now == cmdline


def kill_everything(server) -> None:
    """kill -9 of the supervisor; its writer and workers must die with it."""
    family = children(server.process.pid)
    assert len(family) >= 3, f"expected a writer and two workers, found {family}"
    server.kill()
    deadline = time.monotonic() + 5
    while (survivors := {pid: cmd for pid, cmd in family.items() if alive(pid, cmd)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not survivors, f"children outlived the supervisor: {survivors}"


def started_at(pid: int) -> int:
    """Clock ticks after boot when `pid` started (field 22 of /proc/<pid>/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def writer_and_workers(server) -> tuple[int, list[int]]:
    """The writer starts first (the workers wait for its recovery): the oldest child."""
    family = sorted(children(server.process.pid), key=started_at)
    assert len(family) >= 3, family
    return family[0], family[1:]


def describe_units(server, prefix: str, count: int) -> list[str]:
    """Acknowledged listing events, to check the listings table survives too."""
    listing_ids = [f"{prefix}-unit-{i}" for i in range(count)]
    with server.client() as client:
        post_ok(client, [listing(listing_id, lat=10 + i / 100, lon=20, source="faulttest", name=f"Unit {i}")
                         for i, listing_id in enumerate(listing_ids)])
    return listing_ids


def assert_units_described(server, listing_ids: list[str]) -> None:
    with server.client() as client:
        for i, listing_id in enumerate(listing_ids):
            response = client.get(f"/v1/listings/faulttest/{listing_id}")
            assert response.status_code == 200, response.text
            assert response.json()["name"] == f"Unit {i}"


def run_load_then_kill(server, prefix: str, delay: float, threads: int = 4) -> AckedLoad:
    load = AckedLoad(url=lambda: server.url, prefix=prefix, threads=threads).start()
    try:
        load.wait_for_acks(3)
        time.sleep(delay)
        kill_everything(server)
    finally:
        load.stop()
    assert load.requests_acked >= 3
    return load


@pytest.mark.parametrize("delay", [0.0, 0.4, 1.5])
def test_kill_9_under_load_loses_nothing_acknowledged(server_factory, delay: float) -> None:
    server = server_factory()
    prefix = unique_id("kill")
    units = describe_units(server, prefix, 5)
    load = run_load_then_kill(server, prefix, delay)
    restarted = server_factory(data_dir=server.data_dir)
    assert load.lost(restarted.url) == []
    assert_units_described(restarted, units)


def test_snapshots_and_log_truncation_under_load_then_two_kills(server_factory) -> None:
    """A snapshot every ~500 night updates while writes go on; recovery = snapshot + the log after it."""
    server = server_factory("--snapshot-log-nights", "500")
    data_dir = server.data_dir
    first = run_load_then_kill(server, unique_id("snap1"), 1.0)
    slots = sorted(p.parent.name for p in (data_dir / SNAPSHOT_DIR).glob("*/complete"))
    assert slots, "no snapshot was written under load"
    with sqlite3.connect(f"file:{database_path(data_dir)}?mode=ro", uri=True) as database:
        oldest, logged = database.execute("SELECT min(seq), count(*) FROM rate_log").fetchone()
    assert oldest is None or oldest > 1, "the log was never truncated"
    assert logged < first.requests_acked, (logged, first.requests_acked)

    again = server_factory("--snapshot-log-nights", "500", data_dir=data_dir)
    assert first.lost(again.url) == []
    second = run_load_then_kill(again, unique_id("snap2"), 0.5)
    last = server_factory("--snapshot-log-nights", "500", data_dir=data_dir)
    assert first.lost(last.url) == []
    assert second.lost(last.url) == []


def test_sigterm_under_load_drains_snapshots_and_restarts_whole(server_factory) -> None:
    server = server_factory()
    prefix = unique_id("term")
    units = describe_units(server, prefix, 3)
    load = AckedLoad(url=lambda: server.url, prefix=prefix).start()
    try:
        load.wait_for_acks(10)
        assert server.stop() == 0, server.log()[-2000:]
    finally:
        load.stop()
    with sqlite3.connect(f"file:{database_path(server.data_dir)}?mode=ro", uri=True) as database:
        assert database.execute("SELECT count(*) FROM rate_log").fetchone() == (0,), "stop left log rows"
    assert list((server.data_dir / SNAPSHOT_DIR).glob("*/complete")), "stop wrote no snapshot"
    restarted = server_factory(data_dir=server.data_dir)
    assert load.lost(restarted.url) == []
    assert_units_described(restarted, units)
    with httpx.Client(base_url=restarted.url) as client:
        assert client.get("/readyz").status_code == 200


def test_sigterm_right_after_start_stops_promptly(server_factory) -> None:
    """A stop that arrives while the workers still start must not wait out their join timeout."""
    server = server_factory()
    family = children(server.process.pid)
    started = time.monotonic()
    assert server.stop() == 0
    # a worker that ignored SIGTERM would hold the stop for its 10 s join timeout, each in turn
    assert time.monotonic() - started < 15, "a starting worker ignored SIGTERM (it waits 10 s)"
    assert not {pid: cmd for pid, cmd in family.items() if alive(pid, cmd)}


def test_a_stopped_writer_makes_the_service_not_ready(server_factory) -> None:
    """A writer that stops running (SIGSTOP here; a blocked loop alike) takes no writes, so the
    workers' /readyz must say so; it is ready again once the writer runs."""
    server = server_factory()
    writer, _ = writer_and_workers(server)

    def status() -> tuple[int, list[str]]:
        response = httpx.get(server.url + "/readyz", timeout=5)
        return response.status_code, response.json()["problems"]

    assert status() == (200, [])
    os.kill(writer, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while status()[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        code, problems = status()
        assert code == 503 and problems[0].startswith("the writer has not run for"), problems
    finally:
        os.kill(writer, signal.SIGCONT)
    deadline = time.monotonic() + 15
    while status()[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status() == (200, [])


def test_kill_9_of_the_writer_stops_the_service_and_loses_nothing(server_factory) -> None:
    server = server_factory()
    prefix = unique_id("writer")
    load = AckedLoad(url=lambda: server.url, prefix=prefix).start()
    try:
        load.wait_for_acks(5)
        writer, workers = writer_and_workers(server)
        os.kill(writer, signal.SIGKILL)
        assert server.process.wait(30) == 1, "the supervisor must stop when its writer dies"
        time.sleep(0.3)
    finally:
        load.stop()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    restarted = server_factory(data_dir=server.data_dir)
    assert load.lost(restarted.url) == []


def test_kill_9_of_a_worker_is_replaced_and_loses_nothing(server_factory) -> None:
    server = server_factory()
    prefix = unique_id("worker")
    load = AckedLoad(url=lambda: server.url, prefix=prefix).start()
    try:
        load.wait_for_acks(5)
        _, workers = writer_and_workers(server)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while workers[0] in children(server.process.pid) or len(children(server.process.pid)) < 3:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.05)
        load.wait_for_acks(20)  # the service goes on with the replacement
    finally:
        load.stop()
    assert load.lost(server.url) == []
    kill_everything(server)
    restarted = server_factory(data_dir=server.data_dir)
    assert load.lost(restarted.url) == []


def test_growth_and_changed_settings_survive_snapshot_and_kill(server_factory) -> None:
    """Past the initial 1024 rows, and a restart with an earlier --earliest-night, which widens
    the snapshot's calendar to the left."""
    server = server_factory("--earliest-night", "2020-01-01")
    prefix = unique_id("grow")
    listing_ids = [f"{prefix}-{i}" for i in range(2500)]
    expected = {listing_id: (night(i % 300), f"{i}.00") for i, listing_id in enumerate(listing_ids)}
    old = f"{prefix}-history"
    with server.client() as client:
        post_ok(client, [rate(listing_id, i % 300, i % 300 + 2, f"{i}.00") for i, listing_id in enumerate(listing_ids)])
        post_ok(client, [rate(old, 0, 1) | {"start": "2020-01-05", "end": "2020-01-06"}])
    assert server.stop() == 0  # snapshot with base page at 2020
    widened = server_factory("--earliest-night", "2015-01-01", data_dir=server.data_dir)
    with widened.client() as client:
        post_ok(client, [rate(old, 0, 1) | {"start": "2016-03-01", "end": "2016-03-02"}])
    kill_everything(widened)
    restarted = server_factory(data_dir=server.data_dir)
    with restarted.client() as client:
        assert [n["night"] for n in calendar(client, old).json()["nights"]] == ["2016-03-01", "2020-01-05"]
        for listing_id in listing_ids[::7] + listing_ids[1020:1030] + listing_ids[-5:]:
            day, price = expected[listing_id]
            assert nights(client, listing_id)[day]["price"] == price, listing_id


def test_search_visibility_survives_kill_and_clean_restart(server_factory) -> None:
    """Which listings search shows is rebuilt from the store: descriptions, delists, their order."""
    server = server_factory()
    lat, lon = -62.5, 101.25
    shown, delisted, undescribed, relisted = (unique_id(name) for name in ("shown", "delisted", "bare", "relisted"))
    events = [rate(listing_id, 10, 14, "50.00", source="faulttest")
              for listing_id in (shown, delisted, undescribed, relisted)]
    events += [listing(shown, lat=lat, lon=lon, source="faulttest", changed=1),
               listing(delisted, lat=lat, lon=lon, source="faulttest", changed=1),
               delist(delisted, source="faulttest", changed=2),
               delist(relisted, source="faulttest", changed=1),
               listing(relisted, lat=lat, lon=lon, source="faulttest", changed=2)]

    def found(running) -> set[str]:
        with running.client() as client:
            response = client.get("/v1/search", params={"lat": lat, "lon": lon, "radius_km": 1,
                                                        "checkin": night(10), "checkout": night(13)})
        assert response.status_code == 200, response.text
        return {result["listing_id"] for result in response.json()["results"]}

    with server.client() as client:
        post_ok(client, events)
    assert found(server) == {shown, relisted}
    kill_everything(server)
    after_kill = server_factory(data_dir=server.data_dir)
    assert found(after_kill) == {shown, relisted}
    assert after_kill.stop() == 0
    after_stop = server_factory(data_dir=server.data_dir)
    assert found(after_stop) == {shown, relisted}


def test_a_failed_snapshot_is_retried_without_another_threshold_of_writes(server_factory) -> None:
    """A snapshot that fails (here: a file where its directory goes) stays due: once the disk
    takes it again, the retry writes it after a few seconds and a few writes, not after
    another `--snapshot-log-nights` of them; and what was acknowledged meanwhile survives."""
    server = server_factory("--snapshot-log-nights", "1000")
    blocker = server.data_dir / "snapshot"
    blocker.write_text("in the way")
    prefix = unique_id("retry")
    with server.client() as client:
        post_ok(client, [rate(f"{prefix}-{i}", 0, 50) for i in range(30)])  # 1,500 nights: due
        deadline = time.monotonic() + 10
        while "snapshot failed" not in server.log() and time.monotonic() < deadline:
            post_ok(client, [rate(f"{prefix}-0", 60, 61)])
            time.sleep(0.2)
        assert "snapshot failed" in server.log()
        blocker.unlink()
        nights_after, deadline = 0, time.monotonic() + 30
        while not list(blocker.glob("*/complete")) and time.monotonic() < deadline:
            post_ok(client, [rate(f"{prefix}-1", 70, 71, changed=nights_after)])
            nights_after += 1
            time.sleep(0.2)
    assert list(blocker.glob("*/complete")), "the failed snapshot was never retried"
    assert nights_after < 1000
    kill_everything(server)
    restarted = server_factory(data_dir=server.data_dir)
    with restarted.client() as client:
        assert set(nights(client, f"{prefix}-29")) == {night(i) for i in range(50)}
