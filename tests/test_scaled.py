"""Scaled mode with real servers and real faults: a 3-node JetStream cluster (sync_interval
always, stream R3), PostgreSQL, two ingest nodes (`--role ingest,search`) and an applier
(`--role apply`). Under load: kill -9 the stream leader's NATS node, kill -9 the applier and
restart it, crash PostgreSQL and restart it. After each: every acknowledged event reads back
from the node that acknowledged it and from the other one, and, once the applier drained the
stream, from PostgreSQL itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from acked import AckedLoad
from conftest import Server, start_server
from nats_fixtures import NatsCluster
from pg_fixtures import Postgres
from test_crash import children, started_at

PARTITIONS = "4"


def node(data_dir: Path, postgres: Postgres, cluster: NatsCluster, role: str) -> Server:
    return start_server(data_dir, "--store", postgres.uri, "--stream", cluster.url, "--role", role,
                        "--stream-partitions", PARTITIONS, workers=1)


def eventually(check: Callable[[], list[str]], timeout: float = 30) -> None:
    """`check` returns problems; wait until there are none."""
    deadline = time.monotonic() + timeout
    while True:
        problems = check()
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(problems)} problems, first: {problems[:5]}")
        time.sleep(0.3)


def applier_drained(applier: Server, since: float) -> list[str]:
    """Problems unless JetStream confirmed, after wall time `since`, that nothing waits for
    PostgreSQL (a confirmation from before is no proof: the applier may have stopped since)."""
    try:
        lag = httpx.get(applier.url + "/readyz", timeout=5).json().get("log", {}).get("apply", {})
    except httpx.HTTPError as exc:
        return [f"applier unreachable: {exc}"]
    if lag.get("messages", 1) != 0 or not lag.get("postgres_reachable", False) or lag["confirmed_at"] <= since:
        return [f"applier lag {lag}"]
    return []


def stream_leader(cluster: NatsCluster) -> int:
    import nats

    async def ask() -> str:
        connection = await nats.connect(cluster.urls, connect_timeout=2)
        try:
            info = await connection.jetstream(timeout=5).stream_info("STAYSTREAM")
            assert info.cluster is not None
            return str(info.cluster.leader)
        finally:
            await connection.close()

    return int(asyncio.run(ask()).removeprefix("n"))


def test_faults_under_load_lose_nothing_acknowledged(tmp_path: Path) -> None:
    with Postgres() as postgres, NatsCluster(3) as cluster:
        first = node(tmp_path / "ingest1", postgres, cluster, "ingest,search")
        second = node(tmp_path / "ingest2", postgres, cluster, "ingest,search")
        applier = node(tmp_path / "apply", postgres, cluster, "apply")
        loads = [AckedLoad(lambda: first.url, "one", threads=2).start(),
                 AckedLoad(lambda: second.url, "two", threads=2, seed=6).start()]
        servers = [first, second, applier]
        try:

            def verify(phase: str) -> None:
                for load in loads:
                    load.pause()
                paused_at = time.time()
                for load, own in zip(loads, (first, second), strict=False):
                    assert load.requests_acked > 0, phase
                    assert load.lost(own.url) == [], f"{phase}: read-after-ack on the acknowledging node"
                for load, other in zip(loads, (second, first), strict=False):
                    eventually(lambda load=load, other=other: load.lost(other.url))
                eventually(lambda: applier_drained(applier, paused_at), timeout=60)
                for load in loads:
                    assert load.lost_in_postgres(postgres.uri) == [], f"{phase}: in PostgreSQL"
                for load in loads:
                    load.resume()

            def acks(requests: int = 15) -> None:
                for load in loads:
                    load.wait_for_acks(requests, timeout=60)

            acks()
            leader = stream_leader(cluster)
            cluster.kill_node(leader)  # the stream's leader, kill -9: the other two elect one
            acks()
            verify("a NATS node killed")
            cluster.start_node(leader)

            acks()
            applier.kill()  # kill -9 of the applier's process group in the middle of its batches
            acks()
            applier = servers[2] = node(tmp_path / "apply", postgres, cluster, "apply")
            acks()
            verify("the applier killed and restarted")

            acks()
            postgres.restart(crash=True)  # kill -9 of every PostgreSQL process; ingest goes on
            acks()
            verify("PostgreSQL crashed and restarted")
            assert sum(load.statuses.get(200, 0) for load in loads) > 100
        finally:
            for load in loads:
                load.stop()
            for server in servers:
                server.stop()


def test_all_roles_in_one_node_then_bootstrap_from_postgres(tmp_path: Path) -> None:
    """The small deployment: every role in one process group. A second node started later
    bootstraps from PostgreSQL (a snapshot written at the first one's clean stop) plus the stream."""
    body = (
        '{"type":"listing","source":"vrbo","listing_id":"all-1","name":"Chalet","kind":"house",'
        '"lat":45.92,"lon":6.87,"max_guests":6,"changed_at":"2026-11-26T08:00:00Z"}\n'
        '{"type":"rate","source":"vrbo","listing_id":"all-1","start":"2027-01-10","end":"2027-01-13",'
        '"price":"410.5","currency":"EUR","changed_at":"2026-11-26T08:00:00Z"}\n'
    )
    later = (
        '{"type":"rate","source":"vrbo","listing_id":"all-1","start":"2027-01-12","end":"2027-01-14",'
        '"price":"390","currency":"EUR","changed_at":"2026-11-26T09:00:00Z"}\n'
    )
    with Postgres() as postgres, NatsCluster(3) as cluster:
        first = node(tmp_path / "all", postgres, cluster, "ingest,apply,search")
        try:
            with first.client() as client:
                response = client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
                assert response.status_code == 200, response.text
                nights = client.get("/v1/listings/vrbo/all-1/calendar").json()["nights"]
                assert [n["price"] for n in nights] == ["410.50"] * 3  # read-after-ack
                ready = client.get("/readyz").json()
                assert set(ready["log"]) >= {"follow", "apply"}, ready
                assert "staystream_apply_lag_messages" in client.get("/metrics").text
            written_at = time.time()
            eventually(lambda: applier_drained(first, written_at))
            lags = httpx.get(first.url + "/v1/ops/summary", timeout=5).json()["scaled"]  # what /ops shows
            assert lags["role"] == "ingest,apply,search" and lags["apply_lag_messages"] == 0, lags
            assert lags["follow_lag_messages"] >= 0 and lags["follow_lag_s"] >= 0 and lags["apply_lag_s"] >= 0, lags
        finally:
            assert first.stop() == 0  # a clean stop writes a snapshot into PostgreSQL
        assert postgres.psql("SELECT count(*) FROM staystream.snapshots") == "1"
        second = node(tmp_path / "search", postgres, cluster, "ingest,search")
        try:
            with second.client() as client:
                response = client.post("/v1/events", content=later, headers={"content-type": "application/x-ndjson"})
                assert response.status_code == 200, response.text
                nights = client.get("/v1/listings/vrbo/all-1/calendar").json()["nights"]
                assert [n["price"] for n in nights] == ["410.50", "410.50", "390.00", "390.00"]
                found = client.get("/v1/search", params={"lat": 45.92, "lon": 6.87, "radius_km": 2,
                                                         "checkin": "2027-01-10", "checkout": "2027-01-12"})
                assert [r["listing_id"] for r in found.json()["results"]] == ["all-1"], found.text
        finally:
            stopped = second.stop()
        assert stopped == 0


def test_a_node_that_cannot_see_the_stream_is_not_ready(tmp_path: Path) -> None:
    """With every NATS server killed, the follow and apply lags are unknown, not the last value:
    a node that cannot see the stream must not tell its load balancer, or a test, that it is
    caught up. Once the servers are back it is ready again. Likewise while its writer process,
    which follows the stream and reports the lags, is stopped."""
    with Postgres() as postgres, NatsCluster(3) as cluster:
        whole = node(tmp_path / "all", postgres, cluster, "ingest,apply,search")

        def readiness() -> tuple[int, dict]:
            response = httpx.get(whole.url + "/readyz", timeout=5)
            return response.status_code, response.json()

        def blind() -> list[str]:
            status, body = readiness()
            both = body["log"]["follow"]["messages"] == body["log"]["apply"]["messages"] == -1
            return [] if status == 503 and both else [str(body)]

        try:
            eventually(lambda: [] if readiness()[0] == 200 else [str(readiness())])
            for i in range(3):
                cluster.kill_node(i)
            eventually(blind, timeout=15)
            status, body = readiness()
            assert any(p.startswith("apply lag unknown: no word from JetStream") for p in body["problems"]), body
            assert any(p.startswith("follow lag unknown") for p in body["problems"]), body
            cluster.start()
            eventually(lambda: [] if readiness()[0] == 200 else [str(readiness())], timeout=60)

            writer = min(children(whole.process.pid), key=started_at)  # the oldest child
            os.kill(writer, signal.SIGSTOP)  # a stuck writer: it follows the stream and reports
            try:
                eventually(lambda: [] if any("lag report is" in p for p in readiness()[1]["problems"])
                           else [str(readiness())], timeout=15)
            finally:
                os.kill(writer, signal.SIGCONT)
            eventually(lambda: [] if readiness()[0] == 200 else [str(readiness())], timeout=30)
        finally:
            whole.stop()


def test_facts_through_the_stream_and_a_message_from_before_facts(tmp_path: Path) -> None:
    """One-fact events go through JetStream and PostgreSQL like rates; a message as main 49ffa0b
    published it (a `WriteRequest` without `rate_format`, rows of `RATE_DTYPE_V1`) still applies."""
    import msgspec
    import nats
    import numpy as np

    from staystream.events.money import CURRENCY_INDEX
    from staystream.events.types import RATE_DTYPE_V1, listing_key
    from staystream.scaled.stream import partition_of, subject
    from test_facts import random_changes, send_all
    from test_ordering import model
    from wire_events import nights

    old = np.zeros(1, RATE_DTYPE_V1)
    old[0] = (0, 20_828, 2, 1_764_144_000_000_000, 1000, CURRENCY_INDEX["EUR"], 2, 1)  # 2027-01-10, 2 nights
    key = listing_key("airbnb", "stream-old")
    message = msgspec.msgpack.encode([0, [key], old.tobytes(), [], [], {}, None, False])

    async def publish(urls: list[str]) -> None:
        connection = await nats.connect(urls, connect_timeout=2)
        try:
            await connection.jetstream(timeout=5).publish(subject(partition_of(key, int(PARTITIONS))), message)
        finally:
            await connection.close()

    changes = random_changes(13, 50)
    listing_ids = ["stream-facts-a", "stream-facts-b"]
    old_nights = {day: {"night": day, "price": "10.00", "currency": "EUR", "available": True, "min_nights": 2,
                        "changed_at": "2025-11-26T08:00:00.000Z"} for day in ("2027-01-10", "2027-01-11")}

    def check(server: Server) -> list[str]:
        with server.client() as client:
            got = [nights(client, i) for i in listing_ids]
            response = client.get("/v1/listings/airbnb/stream-old/calendar")
        problems = [] if got == model(changes, 2) else [f"facts differ: {got}"]
        if response.status_code != 200 or response.json()["nights"] != list(old_nights.values()):
            problems.append(f"old message: {response.status_code} {response.text}")
        return problems

    with Postgres() as postgres, NatsCluster(3) as cluster:
        first = node(tmp_path / "all", postgres, cluster, "ingest,apply,search")
        try:
            asyncio.run(publish(cluster.urls))
            with first.client() as client:
                send_all(client, changes, listing_ids)
            eventually(lambda: check(first))
            written_at = time.time()
            eventually(lambda: applier_drained(first, written_at))
        finally:
            first.kill()  # no snapshot: the next node reads the applier's log rows from PostgreSQL
        second = node(tmp_path / "search", postgres, cluster, "ingest,search")
        try:
            eventually(lambda: check(second))
        finally:
            stopped = second.stop()
        assert stopped == 0  # it wrote nothing after its bootstrap: nothing to wait for at the stop
