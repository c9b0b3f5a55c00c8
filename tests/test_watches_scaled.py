"""Watches in scaled mode, with real servers: PostgreSQL, JetStream, three staystream nodes.

A watch created on one node is served by every other (its stream read on a node that evaluates
nothing itself), written to through a third; one made with `changes` hears a rise there, the
plain one does not; limits count every node's watches, and kill -9 of
the node producing the events in the middle of a webhook outage loses nothing: the standby on
the other node takes the shard over, the stream resumes with `Last-Event-ID` on another node.
Then kill -9 of PostgreSQL with a write acknowledged while it is down: its event comes once
PostgreSQL is back. The receiver, back up, gets every event owed, signed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from conftest import Server, start_server
from nats_fixtures import NatsCluster
from pg_fixtures import Postgres
from staystream.watches.postgres import SHARD_LOCK
from test_watches import LAT, LON, WAIT, Receiver, Stream, free_port, search_total, verify, watch_body
from wire_events import listing, post_ok, rate, unique_id


def node(data_dir: Path, postgres: Postgres | None, cluster: NatsCluster, role: str) -> Server:
    store = ["--store", postgres.uri] if postgres is not None else []
    return start_server(data_dir, *store, "--stream", cluster.url, "--role", role, "--stream-partitions", "2",
                        "--stream-replicas", "1", "--watches-per-address", "3", workers=1)


def producer(postgres: Postgres, nodes: list[Server], timeout: float = 30) -> Server:
    """The node whose watcher holds shard 0's lock (its session's name carries the watcher's pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name = postgres.psql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
            f"l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = {SHARD_LOCK}")
        if name:
            pid = int(name.rsplit(" ", 1)[1])
            parent = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if line.startswith("PPid:")).split()[1])
            return next(server for server in nodes if server.process.pid == parent)
        time.sleep(0.1)
    raise AssertionError("no node holds the watch shard")


def test_any_node_serves_a_watch_and_a_kill_9_mid_outage_loses_nothing(tmp_path: Path) -> None:
    with Postgres() as postgres, NatsCluster(3) as cluster:
        first = node(tmp_path / "a", postgres, cluster, "ingest,apply,search")
        second = node(tmp_path / "b", postgres, cluster, "ingest,search")
        reader = node(tmp_path / "c", postgres, cluster, "ingest")  # evaluates nothing: serves from PostgreSQL
        servers = [first, second, reader]
        port = free_port()
        receiver = Receiver(port)
        flat = unique_id("scaled")
        try:
            with second.client() as client:
                post_ok(client, [listing(flat, lat=LAT, lon=LON), rate(flat, 10, 13, "100.00")])
            with first.client() as client:
                created = client.post("/v1/watches", json=watch_body(webhook=receiver.url))
                assert created.status_code == 201, created.text
            watch_id, secret = created.json()["watch_id"], created.json()["secret"]
            stream = Stream(f"{reader.url}/v1/watches/{watch_id}/events")
            try:
                entered = stream.next(timeout=30)
                assert (entered.event, entered.data["listing_id"], entered.data["total"]) == ("entered", flat, "300.00")
                headers, body = receiver.next()
                verify(secret, headers, body)
                assert json.loads(body) == entered.data

                with second.client() as client:  # `changes` is stored in PostgreSQL: any node's watcher honours it
                    told_id = client.post("/v1/watches", json=watch_body(changes=True)).json()["watch_id"]
                told = Stream(f"{reader.url}/v1/watches/{told_id}/events")
                try:
                    assert told.next(timeout=30).event == "entered"
                    with second.client() as client:
                        post_ok(client, [rate(flat, 10, 13, "110.00", changed=0.5)])  # a rise: 330
                    rise = told.next()
                    assert (rise.event, rise.data["total"], rise.data["previous_total"]) == (
                        "price_change", "330.00", "300.00")
                    stream.none_within(0.5)  # the plain watch: nothing
                finally:
                    told.close()
                assert httpx.delete(f"{first.url}/v1/watches/{told_id}").status_code == 204

                receiver.close()  # the outage starts
                with reader.client() as client:  # written through the node without a watcher
                    post_ok(client, [rate(flat, 10, 13, "90.00", changed=1)])
                    acknowledged = time.monotonic()
                drop = stream.next()
                assert drop.at - acknowledged < 1.0, drop.at - acknowledged
                assert (drop.event, drop.data["total"]) == ("price_drop", "270.00")
            finally:
                stream.close()

            with httpx.Client(base_url=reader.url, timeout=10) as client:  # limits count every node's watches
                for server in (first, second):
                    assert httpx.post(server.url + "/v1/watches", json=watch_body()).status_code == 201
                refused = client.post("/v1/watches", json=watch_body())
                assert refused.status_code == 429, refused.text
                assert "holds 3 watches" in refused.json()["error"]

            dead = producer(postgres, [first, second])
            survivor = second if dead is first else first
            dead.kill()  # kill -9 of the producing node, mid-outage, with a delivery owed
            with survivor.client() as client:
                post_ok(client, [rate(flat, 10, 13, "80.00", changed=2)])
            assert producer(postgres, [survivor]) is survivor  # the standby took the shard over
            resumed = Stream(f"{survivor.url}/v1/watches/{watch_id}/events", last_event_id=drop.id)
            try:
                second_drop = resumed.next(timeout=30)
                assert (second_drop.event, second_drop.data["previous_total"], second_drop.data["total"]) == (
                    "price_drop", "270.00", "240.00")
                with survivor.client() as client:
                    assert second_drop.data["total"] == search_total(client, flat)
                resumed.none_within(0.5)  # once, though two nodes' watchers saw the write
            finally:
                resumed.close()

            postgres.kill()  # kill -9 of every PostgreSQL process: the producer's session goes with it
            with survivor.client() as client:  # acknowledged by JetStream alone
                post_ok(client, [rate(flat, 10, 13, "70.00", changed=3)])
            postgres.start()
            after_crash = Stream(f"{reader.url}/v1/watches/{watch_id}/events", last_event_id=second_drop.id)
            try:
                third_drop = after_crash.next(timeout=60)  # a new watcher, once it holds the shard again
                assert (third_drop.event, third_drop.data["total"]) == ("price_drop", "210.00")
            finally:
                after_crash.close()

            receiver = Receiver(port)  # the outage ends: every event owed arrives, signed
            delivered: dict[int, dict[str, object]] = {}
            owed = {drop.id: drop.data, second_drop.id: second_drop.data, third_drop.id: third_drop.data}
            deadline = time.monotonic() + 60
            while set(owed) - set(delivered) and time.monotonic() < deadline:
                headers, body = receiver.next(timeout=WAIT)
                verify(secret, headers, body)
                delivered[int(headers["x-staystream-event-id"])] = json.loads(body)
            assert {event_id: delivered.get(event_id) for event_id in owed} == owed
        finally:
            receiver.close()
            for server in servers:
                server.stop()


def test_a_scaled_node_without_postgresql_keeps_no_watches(tmp_path: Path) -> None:
    with NatsCluster(3) as cluster:
        alone = node(tmp_path / "ingest", None, cluster, "ingest")
        try:
            with alone.client() as client:
                refused = client.post("/v1/watches", json=watch_body())
                assert refused.status_code == 503, refused.text
                assert "--store postgresql://" in refused.json()["error"]
                assert client.get("/v1/watches/any/events").status_code == 503
        finally:
            alone.stop()
