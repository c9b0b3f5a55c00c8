"""`staystream import`: stream native source files through an adapter into a running service.

    staystream import --format insideairbnb --source airbnb --currency SGD listings.csv.gz calendar.csv.gz

Events go over HTTP, several batches in flight: rate events as columns to `POST /v1/bulk/rates`
(`events/columns.py`: no JSON per event on either side), the others as NDJSON to
`POST /v1/events` (gzip, unless the service is on this machine); to `--url` or
to a server this command starts on a loopback port against `--data-dir` for the duration of the
import, so an import gets exactly the validation and durability of any other write. Files are
read as streams (memory does not grow with their size); a batch is retried until the service
accepts it (`429`/`503` after their `Retry-After`, connection errors with backoff) and only a
permanent refusal stops the import, saying what was not stored. Re-sending a batch is harmless:
events keep their source's `changed_at`, and last-writer-wins makes a replay change nothing.

Rows the adapter or the service rejects are written to a rejects file (CSV: file, line,
last_line, outcome, reason) and do not stop the rest.

`seed_sample` is the same path for `serve --seed-sample`: the shipped sample city (Inside
Airbnb Singapore, nights shifted to start today) posted to the server that starts it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import gzip
import http.client
import ipaddress
import itertools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import IO, Any, BinaryIO

import msgspec
import numpy as np

from staystream.adapters import Input, InputError, Item, Options, RateRuns, load
from staystream.api.auth import EVERY_SOURCE, Credentials
from staystream.api.headers import BULK_HEADER
from staystream.dates import day_from_epoch, micros
from staystream.durable.lock import owner_of
from staystream.events.bounds import Rejected
from staystream.events.columns import MEDIA_TYPE, RateColumnsBuilder
from staystream.events.types import CalendarEvent, ListingEvent, RateEvent
from staystream.lifecycle import die_with_parent
from staystream.paths import REJECTS_FILE

__all__ = ["ImportFailed", "LocalServer", "Report", "Sender", "add_arguments", "main", "sample_items",
           "seed_sample", "send"]
log = logging.getLogger("staystream.import")

BATCH_EVENTS = 10_000
# A listing costs the writer an SQL upsert, a rate event a few bytes of log: a batch of 10,000
# listings held the writer (and live traffic behind it) for 70-110 ms, one of 1,000 for ~10.
LISTINGS_A_BATCH = 1_000
TOKEN_VARIABLE = "STAYSTREAM_TOKEN"  # the credential sent with every batch, when the server wants one
IN_FLIGHT = 4
GIVE_UP_SECONDS = 300.0  # a server unreachable this long stops the import (nothing is dropped)
PLACEHOLDER_EUR = Decimal(7000)  # default placeholder price: this much EUR a night, converted
SAMPLE_LISTINGS = "data/sample-singapore-listings.csv.gz"
SAMPLE_CALENDAR = "data/sample-singapore-calendar.csv.gz"
SAMPLE_OPTIONS = dict(source="airbnb", currency="SGD", city="Singapore", country="SG")
_encoder = msgspec.json.Encoder()
_reply = msgspec.json.Decoder(dict[str, Any])


class ImportFailed(RuntimeError):
    """The service refused a batch for good, or stayed unreachable: the import stopped."""


# -- the command ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="native input files (gzip or plain); insideairbnb: listings and calendar")
    parser.add_argument("--format", required=True, help="the adapter, e.g. insideairbnb")
    parser.add_argument("--source", required=True, help="the marketplace the events belong to, e.g. airbnb")
    parser.add_argument("--currency", help="ISO 4217 code of prices the files write without one (SGD)")
    parser.add_argument("--city", help="city name for listing events (optional)")
    parser.add_argument("--country", help="ISO 3166-1 alpha-2 country for listing events (optional)")
    parser.add_argument("--placeholder-price", metavar="AMOUNT",
                        help="nightly prices >= AMOUNT (file currency) are placeholders: kept as "
                             f"unavailable; 'none' to keep them bookable (default: {PLACEHOLDER_EUR} "
                             "EUR at the shipped FX table's rate)")
    parser.add_argument("--url", help="a running staystream to send to, e.g. http://127.0.0.1:8080 "
                                      "(default: start one on --data-dir for the import)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("STAYSTREAM_DATA_DIR", "var")),
                        help="the store to import into when no --url is given (default: var)")
    parser.add_argument("--rejects", type=Path,
                        help="where rejected rows go, with line and reason (default: import-rejects.csv in "
                             "--data-dir; with --url, <first file>.rejects.csv beside the first file)")
    parser.add_argument("--batch-events", type=int, default=BATCH_EVENTS,
                        help=f"events per request (default: {BATCH_EVENTS})")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT,
                        help=f"requests in flight at once (default: {IN_FLIGHT})")


def main(args: argparse.Namespace) -> int:
    """Run `staystream import`; 0 when every batch was answered, 1 when it stopped, 2 for bad input."""
    files: list[BinaryIO] = []
    server = None
    try:
        adapter = load(args.format)
        options = Options(
            source=args.source, currency=args.currency, city=args.city, country=args.country,
            placeholder_price=_placeholder(args.placeholder_price, args.currency),
        )
        if args.batch_events < 1 or args.in_flight < 1:
            raise InputError("--batch-events and --in-flight must be at least 1")
        for path in args.files:
            if not path.is_file():
                raise InputError(f"{path}: no such file")
            files.append(open(path, "rb"))  # noqa: SIM115  closed in the finally below, after the import
        # what the adapter imports on first use (pyarrow: ~0.2 s) loads while the server starts
        threading.Thread(target=getattr(adapter, "warm_up", lambda: None), name="warm-up", daemon=True).start()
        items = adapter.read([Input(path.name, f) for path, f in zip(args.files, files, strict=True)], options)
        first = next(items, None)  # headers are checked before a server is started for nothing
        url = args.url
        if url is None:
            server = LocalServer.start(args.data_dir)
            url = server.url
        rejects = args.rejects or default_rejects(args.files[0], None if args.url else args.data_dir)
        with open(rejects, "w", newline="") as rejects_file:
            report = Report(rejects_file, progress=sys.stderr.isatty())
            report.total_bytes = sum(path.stat().st_size for path in args.files)
            report.files = files
            try:
                send(itertools.chain([first] if first else [], items), url, report, args.batch_events,
                     args.in_flight)
            except (ImportFailed, KeyboardInterrupt) as exc:
                report.finish()
                print(f"\nstaystream import stopped: {exc or 'interrupted'}", file=sys.stderr)
                print(report.summary(url, args, server, rejects), file=sys.stderr)
                return 1
            report.finish()
            print(report.summary(url, args, server, rejects))
        return 0
    except InputError as exc:
        print(f"staystream import: {exc}", file=sys.stderr)
        return 2
    except ImportFailed as exc:  # the local server did not start
        print(f"staystream import: {exc}", file=sys.stderr)
        return 1
    finally:
        for f in files:
            f.close()
        if server is not None:
            server.stop()


def default_rejects(first_input: Path, data_dir: Path | None) -> Path:
    """Where rejected rows go unless `--rejects` says: in the store the import started a server on,
    else beside the input (never the current folder, which may be a source tree)."""
    if data_dir is not None:
        return data_dir / REJECTS_FILE
    stem = first_input.name.removesuffix(".gz").removesuffix(".csv")
    return first_input.with_name(f"{stem}.rejects.csv")


def _placeholder(text: str | None, currency: str | None) -> Decimal | None:
    if text is not None:
        if text.strip().lower() == "none":
            return None
        try:
            return Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise InputError(f"--placeholder-price: '{text}' is not an amount or 'none'") from None
    if currency is None:
        return None
    from staystream.events.fx import default_fx
    from staystream.events.money import CURRENCY_INDEX, EXPONENT

    fx = default_fx()
    index, eur = CURRENCY_INDEX.get(currency.strip().upper()), CURRENCY_INDEX["EUR"]
    if index is None or index not in fx.rates:
        return None  # no rate to judge by: the service's own ceiling still applies
    minor = fx.convert_minor(int(PLACEHOLDER_EUR) * 100, eur, index)
    return Decimal(minor).scaleb(-EXPONENT[index])


# -- sending -----------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Events for one request: NDJSON `lines` for /v1/events, or `rates` as columns for /v1/bulk/rates."""

    lines: list[bytes] = field(default_factory=list)
    where: list[tuple[str, int, int, int]] = field(default_factory=list)  # file, line, last_line, nights
    listings: int = 0
    rates: RateColumnsBuilder | None = None

    def __len__(self) -> int:
        return len(self.where)

    def halves(self) -> tuple[Batch, Batch]:
        half = len(self) // 2
        if self.rates is not None:
            first, second = self.rates.split(half)
            return Batch(where=self.where[:half], rates=first), Batch(where=self.where[half:], rates=second)
        return Batch(self.lines[:half], self.where[:half]), Batch(self.lines[half:], self.where[half:])


def send(items: Iterable[Item], url: str, report: Report, batch_events: int = BATCH_EVENTS,
         in_flight: int = IN_FLIGHT) -> None:
    """Every item's event posted to `url` (rejections reported); returns once all are answered."""
    sender = Sender(url, in_flight, report.answered)
    batch, rates = Batch(), Batch(rates=RateColumnsBuilder())
    try:
        for count, item in enumerate(items):
            report.read(item)
            event = item.event
            if isinstance(event, RateRuns):
                rates = _add_runs(event, item.file, rates, sender, batch_events)
            elif isinstance(event, RateEvent):
                assert rates.rates is not None
                rates.rates.add(event.source, str(event.listing_id), event.start, event.end, event.currency,
                                event.changed_at, None if event.price is None else str(event.price),
                                event.available, event.min_nights)
                rates.where.append((item.file, item.line, item.last_line, (event.end - event.start).days))
                if len(rates) >= batch_events:
                    sender.submit(rates)
                    rates = Batch(rates=RateColumnsBuilder())
            elif not isinstance(event, Rejected):
                nights = (event.end - event.start).days if isinstance(event, CalendarEvent) else 0
                batch.lines.append(_encoder.encode(event))
                batch.where.append((item.file, item.line, item.last_line, nights))
                batch.listings += isinstance(event, ListingEvent)
                if len(batch) >= batch_events or batch.listings >= LISTINGS_A_BATCH:
                    sender.submit(batch)
                    batch = Batch()
            if count % 2048 == 0:
                report.show()
        for last in (batch, rates):
            if len(last):
                sender.submit(last)
    except BaseException:
        sender.abort()
        raise
    sender.close()


def _add_runs(runs: RateRuns, file: str, rates: Batch, sender: Sender, batch_events: int) -> Batch:
    """`runs` added to the batch of rate columns, each full batch sent; the batch being filled."""
    first = 0
    while first < len(runs):
        part = runs.part(first, min(len(runs), first + batch_events - len(rates)))
        assert rates.rates is not None
        rates.rates.extend(part.source, part.listing_ids, part.listing, part.start, part.start + part.nights,
                           part.currency, part.changed_at, part.prices, part.price, part.available, part.min_nights)
        rates.where += zip(itertools.repeat(file), part.line.tolist(), part.last_line.tolist(), part.nights.tolist())
        first += len(part)
        if len(rates) >= batch_events:
            sender.submit(rates)
            rates = Batch(rates=RateColumnsBuilder())
    return rates


class Sender:
    """Posts batches from a few threads, each with its own keep-alive connection.

    At most `in_flight` batches are posted at once and as many wait, so memory stays bounded
    whatever the input size; `submit` blocks until a slot frees. The first permanent failure
    is raised by the next `submit` or by `close`.
    """

    def __init__(self, url: str, in_flight: int, answered: Callable[[Batch, dict[str, Any]], None]) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--url: '{url}' is not an http(s) URL like http://127.0.0.1:8080")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.gzip = not _loopback(parts.hostname)
        self.path = parts.path.rstrip("/")
        self.url = url
        self.answered = answered
        self.pool = ThreadPoolExecutor(in_flight, thread_name_prefix="post")
        self.slots = threading.BoundedSemaphore(in_flight * 2)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.connections: list[http.client.HTTPConnection] = []  # every thread's, closed at the end
        self.failure: BaseException | None = None
        self.stopping = threading.Event()
        self.columns = True  # whether the service takes rate columns (a server before them answers 404)

    def submit(self, batch: Batch) -> None:
        while not self.slots.acquire(timeout=0.5):
            self._raise_failure()
        self._raise_failure()
        self.pool.submit(self._run, batch)

    def close(self) -> None:
        """Wait for every batch to be answered; raises the first permanent failure."""
        self.pool.shutdown(wait=True)
        self._close_connections()
        self._raise_failure()

    def abort(self) -> None:
        """The caller is failing: stop retrying behind its back, wait for the threads."""
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._close_connections()

    def _close_connections(self) -> None:
        for connection in self.connections:
            connection.close()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            self.stopping.set()
            raise ImportFailed(str(self.failure)) from self.failure

    def _run(self, batch: Batch) -> None:
        try:
            if self.failure is None:
                self._deliver(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
            if self.failure is None:
                self.failure = exc
        finally:
            self.slots.release()

    def _deliver(self, batch: Batch) -> None:
        if batch.rates is not None and not self.columns:
            batch = Batch([_encoder.encode(event) for event in batch.rates.events()], batch.where)
        if batch.rates is not None:
            path, content_type = f"{self.path}/v1/bulk/rates", MEDIA_TYPE
            body = batch.rates.encode()
        else:
            path, content_type = f"{self.path}/v1/events", "application/x-ndjson"
            body = b"\n".join(batch.lines) + b"\n"
        if self.gzip:
            body = gzip.compress(body, compresslevel=1)
        unreachable_since: float | None = None
        backoff = 0.2
        while True:
            if self.stopping.is_set():
                raise ImportFailed("stopped")
            try:
                status, headers, data = self._post(path, content_type, body)
            except (OSError, http.client.HTTPException) as exc:
                self._disconnect()
                status, headers, data = 0, {}, str(exc).encode()
            if status == 200:
                self.answered(batch, _reply.decode(data))
                return
            if status == 404 and batch.rates is not None:
                self._without_columns()
                self._deliver(batch)
                return
            if status in (429, 503):
                unreachable_since = None
                time.sleep(_retry_after(headers.get("retry-after")))
                continue
            if status == 413 and len(batch) > 1:
                first_half, second_half = batch.halves()
                self._deliver(first_half)
                self._deliver(second_half)
                return
            first = batch.where[0]
            what = f"{first[0]} lines {first[1]} to {batch.where[-1][2]}"
            if status == 0 or status >= 500:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > GIVE_UP_SECONDS:
                    raise ImportFailed(f"{self.url} kept failing for {GIVE_UP_SECONDS:.0f} s "
                                       f"({_error_text(status, data)}); {what} may not be stored")
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            raise ImportFailed(f"{self.url} refused a batch ({_error_text(status, data)}); "
                               f"{what} are not stored")

    def _without_columns(self) -> None:
        """The service has no `POST /v1/bulk/rates` (it predates it): rate events go as NDJSON."""
        with self.lock:
            if self.columns:
                self.columns = False
                log.warning("%s has no /v1/bulk/rates (404, a service before it): sending rate events "
                            "as NDJSON to /v1/events instead (the same answers, more work on both sides)",
                            self.url)

    def _post(self, path: str, content_type: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            connection = self.local.connection = kind(self.host, self.port, timeout=600)
            self.connections.append(connection)
        headers = {
            "content-type": content_type, "user-agent": "staystream-import",
            BULK_HEADER: "1",  # an import yields to live traffic in the writer's groups
        }
        if self.gzip:
            headers["content-encoding"] = "gzip"
        if os.environ.get(TOKEN_VARIABLE):
            headers["authorization"] = f"Bearer {os.environ[TOKEN_VARIABLE]}"
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        data = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        if headers.get("connection", "").lower() == "close":
            self._disconnect()
        return response.status, headers, data

    def _disconnect(self) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
            self.local.connection = None


def _loopback(host: str) -> bool:
    """Whether `host` is this machine. Bodies to it go uncompressed: gzip would cost both sides
    CPU for no transfer saved, and a worker charges a gzip body's inflated copy at the largest
    body size to its client's share (`api/requests.py`), so a second one in progress got 429."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.05), 60.0)
    except ValueError:  # an HTTP date: rare for a load-shedding service; wait a second
        return 1.0


def _error_text(status: int, data: bytes) -> str:
    if status == 0:
        return data.decode(errors="replace")
    try:
        return f"{status}: {_reply.decode(data).get('error')}"
    except msgspec.DecodeError:
        return f"{status}: {data[:200].decode(errors='replace')}"


# -- reporting ---------------------------------------------------------------------------------------


class Report:
    """Counts, the rejects file, the progress line on a terminal and the closing summary."""

    def __init__(self, rejects: IO[str] | None, progress: bool) -> None:
        self.rejects = csv.writer(rejects) if rejects is not None else None
        if self.rejects is not None:
            self.rejects.writerow(["file", "line", "last_line", "outcome", "reason"])
        self.progress = progress
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.rows: dict[str, int] = {}
        self.nights_read = 0
        self.events_sent = 0
        self.accepted = 0
        self.nights_accepted = 0
        self.rejected = 0
        self.adjusted = 0
        self.examples: list[str] = []
        self.total_bytes = 0
        self.files: list[BinaryIO] = []
        self._shown = 0.0

    def read(self, item: Item) -> None:
        self.rows[item.file] = self.rows.get(item.file, 0) + item.rows
        runs = item.event
        if isinstance(runs, RateRuns):
            self.events_sent += len(runs)
            self.nights_read += item.rows
            for i, note in runs.notes.items():
                self.note(item.file, int(runs.line[i]), int(runs.last_line[i]), int(runs.nights[i]), note)
            return
        if isinstance(item.event, Rejected):
            self.reject(item.file, item.line, item.last_line, str(item.event))
        else:
            self.events_sent += 1
            if isinstance(item.event, CalendarEvent):
                self.nights_read += item.rows
        if item.note is not None:
            self.note(item.file, item.line, item.last_line, item.rows, item.note)

    def note(self, file: str, line: int, last_line: int, rows: int, note: str) -> None:
        """Rows the adapter changed on purpose (a placeholder price kept as unavailable)."""
        with self.lock:
            self.adjusted += rows
            if self.rejects is not None:
                self.rejects.writerow([file, line, last_line, "adjusted", note])

    def reject(self, file: str, line: int, last_line: int, reason: str) -> None:
        with self.lock:
            self.rejected += 1
            if len(self.examples) < 3:
                lines = f"{line}" if line == last_line else f"{line}-{last_line}"
                self.examples.append(f"{file}:{lines}: {reason}")
            if self.rejects is not None:
                self.rejects.writerow([file, line, last_line, "rejected", reason])
            else:
                log.warning("rejected", extra={"file": file, "line": line, "reason": reason})

    def answered(self, batch: Batch, reply: dict[str, Any]) -> None:
        """A 200 for `batch`: count what was stored, report what was not, by source line."""
        rejected = reply.get("rejected") or []
        refused_nights = 0
        for rejection in rejected:
            file, line, last_line, nights = batch.where[int(rejection["index"])]
            refused_nights += nights
            self.reject(file, line, last_line, str(rejection["error"]))
        with self.lock:
            self.accepted += int(reply.get("accepted", 0))
            self.nights_accepted += sum(where[3] for where in batch.where) - refused_nights

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.progress or (now - self._shown < 0.25 and not force):
            return
        self._shown = now
        elapsed = max(now - self.started, 1e-6)
        done = sum(_position(f) for f in self.files)
        fraction = min(done / self.total_bytes, 1.0) if self.total_bytes else 0.0
        eta = f"ETA {elapsed / fraction - elapsed:4.0f} s" if fraction > 0.01 else "ETA    ?  "
        width = 24
        bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
        rows = sum(self.rows.values())
        sys.stderr.write(
            f"\r[{bar}] {fraction:4.0%} {rows:>11,} rows {rows / elapsed:>9,.0f} rows/s "
            f"{self.nights_read / elapsed:>9,.0f} nights/s  {eta}  rejected {self.rejected:,} "
        )
        sys.stderr.flush()

    def finish(self) -> None:
        self.elapsed = time.monotonic() - self.started
        if self.progress:
            self.show(force=True)
            sys.stderr.write("\n")

    def nights_per_second(self) -> float:
        return self.nights_accepted / self.elapsed if self.elapsed else 0.0

    def summary(self, url: str, args: argparse.Namespace, server: LocalServer | None,
                rejects_path: Path | None) -> str:
        where = f"local store {args.data_dir}" if server is not None else url
        rows = ", ".join(f"{name} {count:,}" for name, count in self.rows.items())
        lines = [
            f"imported {args.format} (source {args.source}) into {where}",
            f"  rows read:       {sum(self.rows.values()):,} ({rows})",
            f"  events accepted: {self.accepted:,} of {self.events_sent:,} sent "
            f"({self.nights_accepted:,} nights)",
            f"  rejected:        {self.rejected:,}" + (f" (see {rejects_path})" if self.rejected else ""),
        ]
        lines += [f"    {example}" for example in self.examples]
        if self.adjusted:
            lines.append(f"  adjusted:        {self.adjusted:,} nights at or above the placeholder "
                         f"price kept as unavailable (see {rejects_path})")
        lines.append(f"  elapsed:         {self.elapsed:.1f} s, {self.nights_per_second():,.0f} nights/s, "
                     f"{sum(self.rows.values()) / max(self.elapsed, 1e-6):,.0f} rows/s")
        return "\n".join(lines)


def _position(f: BinaryIO) -> int:
    try:
        return f.tell()
    except (OSError, ValueError):
        return 0


# -- a server of our own ---------------------------------------------------------------------------


class LocalServer:
    """`staystream serve` on a free loopback port against a data dir, for one import."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_file: IO[bytes]) -> None:
        self.process, self.url, self.log_file = process, url, log_file

    @classmethod
    def start(cls, data_dir: Path, timeout: float = 600.0) -> LocalServer:
        data_dir.mkdir(parents=True, exist_ok=True)
        owner = owner_of(data_dir)
        if owner is not None:
            raise ImportFailed(
                f"a staystream server (pid {owner}) is running on data dir '{data_dir}'; import into "
                "it with --url http://HOST:PORT (its address), or stop it first")
        env = {k: v for k, v in os.environ.items()
               if k not in ("STAYSTREAM_SEED_SAMPLE", "STAYSTREAM_HOST", "STAYSTREAM_PORT")}
        log_file = tempfile.TemporaryFile()  # noqa: SIM115  lives as long as the server; closed by stop()
        process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "serve", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=log_file, env=env,
        )
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode(errors="replace")
            if "listening on" in line:
                process.stdout.close()
                return cls(process, line.strip().rsplit(" ", 1)[-1], log_file)
            if not line and process.poll() is not None:
                break
        process.kill()
        process.wait()
        log_file.seek(0)
        tail = log_file.read().decode(errors="replace")[-2000:]
        raise ImportFailed(f"could not start a server on data dir '{data_dir}'; its log:\n{tail}")

    def stop(self) -> None:
        """Clean shutdown: the writer drains and writes a snapshot before the server exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(300)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


# -- the sample city ---------------------------------------------------------------------------------


def sample_items(today: dt.date, now: dt.datetime) -> Iterator[Item]:
    """The shipped sample (Inside Airbnb Singapore), nights shifted so the first one is `today`.

    The scrape's nights start at its scrape date; every night moves by the same number of days
    and every event is dated `now`, so the sample is always bookable from today on.
    """
    adapter = load("insideairbnb")
    base = resources.files("staystream")
    with base.joinpath(SAMPLE_LISTINGS).open("rb") as listings, \
            base.joinpath(SAMPLE_CALENDAR).open("rb") as calendar:
        options = Options(**SAMPLE_OPTIONS, placeholder_price=_placeholder(None, "SGD"))
        shift: dt.timedelta | None = None
        inputs = [Input("listings", listings), Input("calendar", calendar)]  # type: ignore[arg-type]  # IO[bytes]
        for item in adapter.read(inputs, options):
            event = item.event
            if isinstance(event, RateRuns):
                shift = shift if shift is not None else today - day_from_epoch(int(event.start[0]))
                event = dataclasses.replace(event, start=event.start + shift.days,
                                            changed_at=np.full(len(event), micros(now), np.int64))
            elif isinstance(event, RateEvent):
                shift = shift if shift is not None else today - event.start
                event = msgspec.structs.replace(event, start=event.start + shift, end=event.end + shift,
                                                changed_at=now)
            elif isinstance(event, ListingEvent):
                event = msgspec.structs.replace(event, changed_at=now)
            yield item._replace(event=event)


def seed_sample(config: Any, host: str, port: int, supervisor: int) -> None:
    """In a child of `serve`: post the sample city to the server when its store is empty."""
    from staystream.durable import sqlite

    die_with_parent(supervisor)
    try:
        connection = sqlite.connect_reader(config.database_path)
        empty = connection.execute("SELECT NOT EXISTS (SELECT 1 FROM listings)").fetchone()[0]
        connection.close()
    except Exception as exc:  # noqa: BLE001 - a store we cannot read is not an empty one
        log.warning("not seeding the sample city: the store cannot be read", extra={"error": str(exc)})
        return
    if not empty:
        log.info("not seeding the sample city: the store already holds listings")
        return
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://[{loopback}]:{port}" if ":" in loopback else f"http://{loopback}:{port}"
    credentials = Credentials.load(config.tokens)
    if credentials is not None:  # seed with a credential that may write every source
        os.environ[TOKEN_VARIABLE] = next(
            (token for token, sources in credentials.grants.items() if EVERY_SOURCE in sources), "")
    today = dt.date.today()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    report = Report(None, progress=False)
    log.info("seeding the sample city (Inside Airbnb Singapore, nights shifted to start today)")
    held: list[Item] = []

    def rates_first() -> Iterator[Item]:
        for item in sample_items(today, now):
            if isinstance(item.event, ListingEvent):
                held.append(item)
            else:
                yield item

    try:
        # Listings last, in one batch: a store holding them holds the whole sample, so a server
        # stopped mid-seed seeds again at its next start instead of keeping half a city.
        send(rates_first(), url, report)
        send(held, url, report, batch_events=len(held) + 1)
    except ImportFailed as exc:
        log.error("seeding the sample city failed", extra={"error": str(exc)})
        return
    report.finish()
    checkin, checkout = today + dt.timedelta(days=7), today + dt.timedelta(days=10)
    log.info(
        "sample city seeded", extra={
            "events": report.accepted, "nights": report.nights_accepted,
            "rejected": report.rejected, "seconds": round(report.elapsed, 2),
            "try": f"{url}/v1/search?lat=1.29&lon=103.85&radius_km=5&checkin={checkin}"
                   f"&checkout={checkout}&guests=2",
        })
