"""The service starts, ingests and answers: the newcomer's first five minutes."""

from __future__ import annotations


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
        calendar = client.get("/v1/listings/airbnb/smoke-1/calendar", params={"start": "2026-12-01", "end": "2026-12-05"})
        assert calendar.json()["nights"] == [
            {"night": "2026-12-01", "price": "129.00", "currency": "EUR", "available": True,
             "min_nights": 2, "changed_at": "2026-11-26T08:00:00.123Z"},
            {"night": "2026-12-02", "price": "129.00", "currency": "EUR", "available": True,
             "min_nights": 2, "changed_at": "2026-11-26T08:00:00.123Z"},
        ]
