"""The importer's `Sender` against a real HTTP server in this process: it retries what the service
sheds, splits a batch the service finds too large, and stops on a refusal, naming the lines."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from staystream.api.headers import BULK_HEADER
from staystream.events import columns
from staystream.events.columns import MEDIA_TYPE, RateColumnsBuilder
from staystream.importer.command import Batch, ImportFailed, Sender

from .conftest import serving

Answer = Callable[[int, list[bytes]], Response]


class Service:
    """Records every batch it receives (decompressed lines) and answers with `answer(n, lines)`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.received: list[list[bytes]] = []
        self.bulk: list[str | None] = []
        self.encodings: list[str | None] = []
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/events", self.events, methods=["POST"]),
                                     Route("/v1/bulk/rates", self.events, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        """NDJSON lines as they are; rate columns as one line per event (its listing id and start)."""
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.encodings.append(request.headers.get("content-encoding"))
        if request.url.path.endswith("/bulk/rates"):
            assert request.headers["content-type"] == MEDIA_TYPE
            table, arrays = columns.decode(body, 100)
            lines = [f"{table.listings[listing][1]} {start}".encode()
                     for listing, start in zip(arrays["listing"].tolist(), arrays["start"].tolist(), strict=True)]
        else:
            lines = body.splitlines()
        with self.lock:
            self.received.append(lines)
            self.bulk.append(request.headers.get(BULK_HEADER))
            number = len(self.received)
        return self.answer(number, lines)


def accepted(lines: list[bytes]) -> Response:
    return JSONResponse({"accepted": len(lines), "rejected": []})


def batch(count: int) -> Batch:
    return Batch([json.dumps({"n": i}).encode() for i in range(count)],
                 [("rates.csv", i + 2, i + 2, 1) for i in range(count)])


def send(service: Service, *batches: Batch) -> list[int]:
    """Post the batches; the sizes of the batches answered 200, in order of answer."""
    answered: list[int] = []
    with serving(service.app) as url:
        sender = Sender(url, 2, lambda sent, reply: answered.append(reply["accepted"]))
        for one in batches:
            sender.submit(one)
        sender.close()
    return answered


def test_a_shed_batch_is_sent_again_after_retry_after() -> None:
    service = Service(lambda n, lines: JSONResponse({"error": "busy"}, 503, {"Retry-After": "0.05"})
                      if n <= 2 else accepted(lines))
    assert send(service, batch(3)) == [3]
    assert [len(lines) for lines in service.received] == [3, 3, 3]
    assert service.bulk == ["1", "1", "1"]  # an import yields to live traffic
    assert service.encodings == [None, None, None]  # a service on this machine: no gzip


@pytest.mark.parametrize("url, compressed", [
    ("http://127.0.0.1:8080", False), ("http://localhost:8080", False), ("http://[::1]:8080", False),
    ("http://127.3.2.1", False), ("http://10.1.2.3:8080", True), ("https://api.example.com", True),
])
def test_bodies_are_compressed_for_another_machine_only(url: str, compressed: bool) -> None:
    assert Sender(url, 1, lambda sent, reply: None).gzip is compressed


def test_a_batch_refused_as_too_large_is_split_until_it_fits() -> None:
    service = Service(lambda n, lines: JSONResponse({"error": "too many events"}, 413)
                      if len(lines) > 2 else accepted(lines))
    assert sorted(send(service, batch(5))) == [1, 2, 2]
    sizes = [len(lines) for lines in service.received]
    assert sizes[0] == 5 and sorted(sizes) == [1, 2, 2, 3, 5]
    delivered = [line for lines in service.received if len(lines) <= 2 for line in lines]
    assert sorted(delivered) == sorted(batch(5).lines)  # every line once, none lost


def test_a_batch_of_rate_columns_refused_as_too_large_is_halved_until_it_fits() -> None:
    rates = RateColumnsBuilder()
    for i in range(5):
        rates.add("airbnb", f"L{i % 2}", dt.date(2026, 1, 1 + i), dt.date(2026, 1, 2 + i), "SGD",
                  dt.datetime(2025, 12, 1, tzinfo=dt.UTC), None if i == 3 else f"{100 + i}.00", i != 3, 1)
    service = Service(lambda n, lines: JSONResponse({"error": "too many events"}, 413)
                      if len(lines) > 2 else accepted(lines))
    assert sorted(send(service, Batch(where=[("c.csv", i + 2, i + 2, 1) for i in range(5)], rates=rates))) == [1, 2, 2]
    delivered = sorted(line for lines in service.received if len(lines) <= 2 for line in lines)
    first = (dt.date(2026, 1, 1) - dt.date(1970, 1, 1)).days
    assert delivered == sorted(f"L{i % 2} {first + i}".encode() for i in range(5))  # every event once


def test_a_refusal_stops_the_import_naming_the_lines_not_stored() -> None:
    service = Service(lambda n, lines: JSONResponse({"error": "authorization: missing"}, 401))
    with pytest.raises(ImportFailed, match=r"refused a batch \(.*authorization: missing.*\); "
                                           r"rates.csv lines 2 to 4 are not stored"):
        send(service, batch(3))
    assert len(service.received) == 1  # not retried


def test_a_url_that_is_not_http_is_refused_before_sending() -> None:
    with pytest.raises(Exception, match="--url: 'ftp://x' is not an http"):
        Sender("ftp://x", 1, lambda sent, reply: None)
