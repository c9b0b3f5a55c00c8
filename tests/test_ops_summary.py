"""`GET /v1/ops/summary` against a real server: what `/ops` shows is what the server did."""

from __future__ import annotations

import time

from conftest import Server
from wire_events import post, post_ok, rate, unique_id


def test_counts_rejections_with_an_example_and_restart_state(server: Server) -> None:
    source = "ops-" + unique_id("s")[-6:]
    listing_id = unique_id("ops")
    deadline = time.monotonic() + 30
    with server.client() as client:
        response = post(client, [rate(listing_id, 1, 2, price="-5", source=source),
                                 rate(listing_id, 2, 3, source=source)])
        assert response.status_code == 200 and len(response.json()["rejected"]) == 1
        error = response.json()["rejected"][0]["error"]
        while True:  # rates and latencies are over the last 10 s of this worker's looks: keep writing
            post_ok(client, [rate(listing_id, 3, 5, source=source)])
            body = client.get("/v1/ops/summary").json()
            row = next((row for row in body["sources"] if row["source"] == source), None)
            complete = (row is not None and (row["accepted_per_s"] or 0) > 0 and row["last_event_at"] is not None
                        and body["write"]["p99_ms"] is not None)  # the writer reports freshness once a second
            if complete or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert row is not None, body
    assert row["accepted_total"] >= 2 and row["rejected_total"] == 1
    assert row["rejections"][0]["reason"] == "price" and row["rejections"][0]["count"] == 1
    assert row["rejections"][0]["example"] == f"index 0: {error}"
    assert row["accepted_per_s"] > 0 and row["rejected_per_s"] is not None
    assert row["changed_to_searchable_s"]["p99"] is not None
    assert row["last_event_at"].endswith("Z")
    assert body["ready"] is True and body["problems"] == []
    assert body["restart"]["replayed_events"] >= 0 and body["restart"]["recovered_at"].endswith("Z")
    assert body["write"]["p99_ms"] > 0 and body["write"]["requests_per_s"] > 0
    assert body["scaled"] is None and body["snapshot"]["failures"] == 0
