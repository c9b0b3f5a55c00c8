"""Write credentials (`--tokens`): 401 without one, 403 for a wrong one or a source not granted."""

from __future__ import annotations

from pathlib import Path

RATE = ('{"type":"rate","source":"%s","listing_id":"auth-%s","start":"2026-12-01","end":"2026-12-03",'
        '"price":"10.00","currency":"EUR","changed_at":"2026-11-26T08:00:00Z"}')
NDJSON = {"content-type": "application/x-ndjson"}


def test_writes_need_a_credential_for_their_sources(server_factory, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# connectors\nairbnb-key airbnb,vrbo\nroot-key *\n")
    server = server_factory("--tokens", str(tokens))
    with server.client() as client:
        missing = client.post("/v1/events", content=RATE % ("airbnb", 1), headers=NDJSON)
        assert missing.status_code == 401 and "authorization: missing" in missing.json()["error"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/v1/events", content=RATE % ("airbnb", 1),
                            headers={**NDJSON, "authorization": "Bearer nope"})
        assert wrong.status_code == 403
        granted = {**NDJSON, "authorization": "Bearer airbnb-key"}
        assert client.post("/v1/events", content=RATE % ("airbnb", 1), headers=granted).json()["accepted"] == 1
        mixed = "\n".join([RATE % ("airbnb", 2), RATE % ("booking", 3)])
        refused = client.post("/v1/events", content=mixed, headers=granted)
        assert refused.status_code == 403 and "'booking'" in refused.json()["error"]
        # nothing of a refused request is stored, not even its allowed events
        assert client.get("/v1/listings/airbnb/auth-2/calendar").status_code == 404
        native = client.post("/v1/sources/booking/ota", content=b"<x/>", headers={"authorization": "Bearer airbnb-key"})
        assert native.status_code == 403
        fx = client.put("/v1/admin/fx", content=b"{}", headers={"authorization": "Bearer airbnb-key"})
        assert fx.status_code == 403
        root = {**NDJSON, "authorization": "Bearer root-key"}
        assert client.post("/v1/events", content=mixed, headers=root).json()["accepted"] == 2
        # reads need no credential
        assert client.get("/v1/listings/airbnb/auth-1/calendar").status_code == 200
