"""`api.requests`: a body is read whole, gunzipped (every member), and bounded before and after."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from staystream.api.requests import gunzip, is_ndjson, read_body
from staystream.api.responses import HTTPError, json_response

from .conftest import serving

LIMIT = 1000


async def echo(request: Request) -> Response:
    try:
        ndjson = is_ndjson(request)
        body = await read_body(request, LIMIT)
    except HTTPError as exc:
        return json_response({"error": str(exc)}, exc.status)
    return Response(body, headers={"x-ndjson": str(ndjson)})


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with serving(Starlette(routes=[Route("/", echo, methods=["POST"])])) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_a_plain_body_comes_back_as_sent(client: httpx.Client) -> None:
    answer = client.post("/", content=b'{"a": 1}\n', headers={"content-type": "application/x-ndjson"})
    assert (answer.status_code, answer.content, answer.headers["x-ndjson"]) == (200, b'{"a": 1}\n', "True")


def test_every_gzip_member_is_kept(client: httpx.Client) -> None:
    two_members = gzip.compress(b"first\n") + gzip.compress(b"second\n")  # `cat a.gz b.gz`
    answer = client.post("/", content=two_members, headers={"content-encoding": "gzip"})
    assert answer.status_code == 200 and answer.content == b"first\nsecond\n"


@pytest.mark.parametrize(("body", "headers", "status", "error"), [
    (b"x" * (LIMIT + 1), {}, 413, f"body of {LIMIT + 1} bytes is over the limit of {LIMIT} bytes"),
    (gzip.compress(b"x" * (LIMIT + 1), mtime=0), {"content-encoding": "gzip"}, 413,
     f"body is over the limit of {LIMIT} bytes once decompressed"),
    (gzip.compress(b"x" * 10, mtime=0)[:-6], {"content-encoding": "gzip"}, 400,
     "body is not valid gzip: the stream is truncated"),
    (b"not gzip at all", {"content-encoding": "gzip"}, 400, "body is not valid gzip: "),
    (b"{}", {"content-encoding": "br"}, 415, "content-encoding: 'br' is not supported; expected gzip or none"),
    (b"a=1", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "content-type: 'application/x-www-form-urlencoded' is not supported; expected application/x-ndjson"),
])
def test_a_body_out_of_bounds_or_of_another_kind_is_refused_by_name(
        client: httpx.Client, body: bytes, headers: dict[str, str], status: int, error: str) -> None:
    answer = client.post("/", content=body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"].startswith(error)


def test_a_body_without_length_is_bounded_while_it_streams(client: httpx.Client) -> None:
    chunks = iter([b"x" * 600, b"x" * 600])  # chunked: no content-length to refuse up front
    answer = client.post("/", content=chunks)
    assert answer.status_code == 413 and answer.json()["error"] == f"body is over the limit of {LIMIT} bytes"


def test_gunzip_stops_inflating_at_the_limit() -> None:
    bomb = zlib.compress(b"\0" * 10_000_000)  # not gzip framing: refused, not inflated
    with pytest.raises(HTTPError) as refused:
        gunzip(bomb, LIMIT)
    assert refused.value.status == 400
    with pytest.raises(HTTPError) as refused:
        gunzip(gzip.compress(b"\0" * 10_000_000), LIMIT)
    assert refused.value.status == 413
