"""The service starts, ingests and answers: the newcomer's first five minutes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx


def test_post_then_read_calendar(server) -> None:
    with server.client() as client:
        body = (
            '{"type":"rate","source":"airbnb","listing_id":"smoke-1","start":"2026-12-01",'
            '"end":"2026-12-03","price":"129.00","currency":"EUR","min_nights":2,'
            '"changed_at":"2026-11-26T08:00:00.123Z"}\n'
        )
        response = client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 1, "rejected": []}
        calendar = client.get(
            "/v1/listings/airbnb/smoke-1/calendar", params={"start": "2026-12-01", "end": "2026-12-05"}
        )
        assert calendar.json()["nights"] == [
            {"night": "2026-12-01", "price": "129.00", "currency": "EUR", "available": True,
             "min_nights": 2, "changed_at": "2026-11-26T08:00:00.123Z"},
            {"night": "2026-12-02", "price": "129.00", "currency": "EUR", "available": True,
             "min_nights": 2, "changed_at": "2026-11-26T08:00:00.123Z"},
        ]


def test_ctrl_c_stops_everything_cleanly(tmp_path) -> None:
    """A terminal's Ctrl-C sends SIGINT to the whole process group, writer and workers included:
    the service drains, exits 0 and logs no error (it used to report its writer's exit as one)."""
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "serve", "--port", "0", "--data-dir", str(tmp_path / "var")],
            stdout=subprocess.PIPE, stderr=log_file, start_new_session=True,  # its own process group
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert "listening on" in line, log_path.read_text()
    url = line.strip().rsplit(" ", 1)[-1]
    body = ('{"type":"rate","source":"airbnb","listing_id":"ctrl-c","start":"2026-12-01","end":"2026-12-03",'
            '"price":"129.00","currency":"EUR","changed_at":"2026-11-26T08:00:00Z"}\n')
    assert (
        httpx.post(url + "/v1/events", content=body, headers={"content-type": "application/x-ndjson"}).status_code
        == 200
    )
    time.sleep(0.3)  # the supervisor is in its watch loop
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(60) == 0
    process.stdout.close()
    records = [json.loads(text) for text in log_path.read_text().splitlines() if text.startswith("{")]
    assert [r for r in records if r["level"] in ("error", "critical")] == []
    assert records[-1]["msg"] == "stopped"
