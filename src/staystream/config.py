"""Settings, declared once: each `Config` field is a CLI flag and a `STAYSTREAM_*` variable.

Precedence: command-line flag, then environment variable, then the default. A value that does not
parse is refused loudly, naming the setting and the value.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from staystream.paths import database_path


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(text)
    return value


def _flag(text: str) -> bool:
    return text.lower() in {"1", "true", "yes", "on"}


def _store(text: str) -> str:
    if text == "embedded" or text.startswith(("postgresql://", "postgres://")):
        return text
    raise ValueError(text)


def _stream(text: str) -> str:
    if text and not all(part.strip().startswith(("nats://", "tls://")) for part in text.split(",")):
        raise ValueError(text)
    return text


def _log_level(text: str) -> str:
    if text.lower() not in {"debug", "info", "warning", "error"}:
        raise ValueError(text)
    return text


def _roles(text: str) -> str:
    parts = {part.strip() for part in text.split(",")}
    if not parts or not parts <= {"ingest", "apply", "search"}:
        raise ValueError(text)
    return text


def _setting(default: Any, help: str, cast: Callable[[str], Any]) -> Any:
    return field(default=default, metadata={"help": help, "cast": cast})


@dataclass(frozen=True)
class Config:
    host: str = _setting("127.0.0.1", "address to listen on", str)
    port: int = _setting(8080, "TCP port to listen on (0: any free port)", int)
    data_dir: Path = _setting(Path("var"), "where the embedded store lives", Path)
    workers: int = _setting(os.cpu_count() or 1, "HTTP worker processes", _positive_int)
    max_body_bytes: int = _setting(
        16 * 1024 * 1024, "largest request body in bytes, before and after gzip", _positive_int
    )
    max_events_per_request: int = _setting(
        100_000, "most events one request may carry", _positive_int
    )
    header_timeout: float = _setting(
        10.0, "seconds a connection has to send a request's line and headers, from connecting or from the "
        "request's first byte; else 408 and closed", _positive_float
    )
    body_timeout: float = _setting(
        10.0, "seconds a request body may stall between two parts; else 408", _positive_float
    )
    body_total_timeout: float = _setting(
        120.0, "seconds a whole request body may take (16 MB at 1 Mbit/s); else 408", _positive_float
    )
    keep_alive_timeout: float = _setting(
        5.0, "seconds an idle keep-alive connection stays open between requests", _positive_float
    )
    max_connections_per_client: int = _setting(
        256, "open connections one client address may hold to each worker; the next gets 429", _positive_int
    )
    max_connections: int = _setting(
        2048, "open connections each worker serves at once; the next gets 503 with Retry-After", _positive_int
    )
    max_client_body_bytes: int = _setting(
        32 * 1024 * 1024, "bytes of request bodies one client (address, credential) may have in progress "
        "on a worker; past it 429 (a worker holds 8 x max-body-bytes in all, past that 503)", _positive_int
    )
    max_backlog_events: int = _setting(
        1_000_000, "events waiting for the writer above which writes get 503", _positive_int
    )
    max_night_price_eur: int = _setting(
        100_000, "ceiling on one night's price, in EUR at the FX table's rates", _positive_int
    )
    earliest_night: dt.date = _setting(
        dt.date(2015, 1, 1), "oldest night accepted (historical imports)", dt.date.fromisoformat
    )
    horizon_days: int = _setting(730, "how many days past today a night may be", _positive_int)
    snapshot_log_nights: int = _setting(
        50_000_000, "night updates logged since the last snapshot that trigger a new one "
        "(bounds restart time: replay runs at ~10 M night updates/s)", _positive_int
    )
    snapshot_write_mb_s: int = _setting(
        256, "most MB/s a snapshot writes to disk (embedded store): faster starves the fsync "
        "every acknowledgment waits for", _positive_int
    )
    no_matching: bool = _setting(
        False, "places from property_id and link events only: no automatic matching of listings "
        "of different sources (it costs the write path CPU per listing event)", _flag
    )
    history_days: int = _setting(
        400, "days a night's price history is kept (GET .../history), counted from the change", _positive_int
    )
    fx_table: Path | None = _setting(None, "JSON FX table to use instead of the shipped one", Path)
    tokens: Path | None = _setting(
        None, "file of write credentials, '<token> <source>[,<source>...]' or '<token> *' a line "
        "(none: writes need no credential)", Path
    )
    sources_file: Path | None = _setting(
        None, "TOML file of per-source settings for the native-format endpoints (time zone, currency, "
        "occupancy; docs/adapters.md); re-read when it changes", Path
    )
    tile_url: str | None = _setting(
        None, "map tiles for the web pages, a {z}/{x}/{y} URL template (none: offline country outlines)", str
    )
    seed_sample: bool = _setting(False, "import the shipped sample city into an empty store", _flag)
    log_level: str = _setting("info", "debug, info, warning or error", _log_level)
    store: str = _setting(
        "embedded", "durable store: 'embedded' (SQLite in --data-dir) or a postgresql:// URI", _store
    )
    pg_pool_size: int = _setting(4, "PostgreSQL connections of the writer (with --store postgresql://)", _positive_int)
    stream: str = _setting(
        "", "scaled mode: NATS JetStream servers, nats://host:port[,nats://...] (empty: no stream)", _stream
    )
    role: str = _setting("ingest,apply,search", "scaled mode: this node's roles, any of ingest, apply, search", _roles)
    stream_partitions: int = _setting(
        8, "scaled mode: stream partitions (by listing); the same on every node", _positive_int
    )
    stream_replicas: int = _setting(
        3, "scaled mode: JetStream replicas of the stream when this node creates it", _positive_int
    )
    apply_partitions: str = _setting("all", "scaled mode: partitions this applier consumes, 'all' or like '0-3,6'", str)
    watches_per_address: int = _setting(
        1_000, "watches one client address may hold (watches need no write credential)", _positive_int)
    watches_total: int = _setting(200_000, "watches the service holds at most", _positive_int)
    watchers: int = _setting(
        1, "watcher processes; each evaluates the watches whose number modulo this is its own "
        "(more cores for many watches under heavy writes)", _positive_int)

    @property
    def database_path(self) -> Path:
        return database_path(self.data_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per setting; values stay strings until `from_arguments` casts them."""
    for setting in fields(Config):
        flag = "--" + setting.name.replace("_", "-")
        if setting.metadata["cast"] is _flag:
            parser.add_argument(flag, action="store_const", const="true", help=setting.metadata["help"])
        else:
            parser.add_argument(flag, help=f"{setting.metadata['help']} (default: {setting.default})")


def from_arguments(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    for setting in fields(Config):
        text = getattr(args, setting.name, None) or environ.get("STAYSTREAM_" + setting.name.upper())
        if text is None:
            continue
        try:
            values[setting.name] = setting.metadata["cast"](text)
        except (TypeError, ValueError):
            raise SystemExit(
                f"Setting '{setting.name}' has value '{text}'. Not a valid {setting.type}."
            ) from None
    return Config(**values)
