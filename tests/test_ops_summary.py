"""`GET /v1/ops/summary` against a real server: what `/ops` shows is what the server did."""

from __future__ import annotations

import time

from conftest import Server
from wire_events import post, post_ok, rate, unique_id


def summary_of(server: Server, source: str, until: object = None) -> dict[str, object]:
    """The source's row of the summary, once `until(row)` holds (rates need two looks)."""
    deadline = time.monotonic() + 10
    with server.client() as client:
        while True:
            body = client.get("/v1/ops/summary").json()
            rows = [row for row in body["sources"] if row["source"] == source]
            if rows and (until is None or until(rows[0])) or time.monotonic() > deadline:
                return {"body": body, "row": rows[0] if rows else None}
            time.sleep(0.3)


def test_counts_rejections_with_an_example_and_restart_state(server: Server) -> None:
    source = "ops-" + unique_id("s")[-6:]
    listing_id = unique_id("ops")
    with server.client() as client:
        for _ in range(4):  # every worker's first look: rates and latencies are over what follows
            client.get("/v1/ops/summary")
        time.sleep(0.6)
        post_ok(client, [rate(listing_id, 1, 3, source=source), rate(listing_id, 3, 5, source=source)])
        response = post(client, [rate(listing_id, 1, 2, price="-5", source=source),
                                 rate(listing_id, 2, 3, source=source)])
        assert response.status_code == 200 and len(response.json()["rejected"]) == 1
        error = response.json()["rejected"][0]["error"]
    found = summary_of(server, source, until=lambda row: (row["accepted_per_s"] or 0) > 0)
    body, row = found["body"], found["row"]
    assert row is not None, body
    assert row["accepted_total"] == 3 and row["rejected_total"] == 1
    assert row["rejections"][0]["reason"] == "price" and row["rejections"][0]["count"] == 1
    assert row["rejections"][0]["example"] == f"index 0: {error}"
    assert row["changed_to_searchable_s"]["p99"] is not None
    assert row["last_event_at"].endswith("Z")
    assert body["ready"] is True and body["problems"] == []
    assert body["restart"]["replayed_events"] >= 0 and body["restart"]["recovered_at"].endswith("Z")
    assert body["write"]["p99_ms"] is not None and body["scaled"] is None
    assert body["snapshot"]["failures"] == 0
