"""A fast subset of `make fuzz` (tests/fuzz.py) in `make test`: a few hundred hypothesis-drawn
event bodies, native documents and searches, and schemathesis cases of every `/openapi.json`
operation, against a real server. Property: no 5xx, no dropped connection, answers match the schema."""

from __future__ import annotations

from fuzz import Tally, fuzz_formats, fuzz_openapi


def test_hostile_bodies_documents_and_queries_never_5xx(server) -> None:
    tally = Tally()
    fuzz_formats(server.url, 150, tally)
    assert tally.bodies >= 4 * 100
    assert tally.statuses["5xx"] == 0 and tally.crashes == 0, tally.failures
    assert "unexpected error" not in server.log()


def test_every_openapi_operation_answers_by_its_schema(server) -> None:
    tally = Tally()
    fuzz_openapi(server.url, 25, tally)
    assert tally.requests >= 12 * 10
    assert tally.statuses["5xx"] == 0 and tally.crashes == 0 and tally.schema_mismatches == 0, tally.failures
