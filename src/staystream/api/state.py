"""What one worker process holds while it serves, made once at startup and handed to every handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from staystream.adapters.source_settings import SourcesFile
from staystream.api.admission import BodyBudget
from staystream.api.auth import Credentials
from staystream.api.observed import History, RejectionExamples
from staystream.api.offload import Offload
from staystream.api.ratelimit import RateLimits
from staystream.config import Config
from staystream.events.fx import Fx
from staystream.events.ingest import Validator
from staystream.paths import REJECTIONS_DIR, writer_socket
from staystream.search.view import Store
from staystream.watches.backend import WatchStore
from staystream.writer.wire import WriterClient

INFLIGHT_BODIES = 8  # request bodies (at the size limit) one worker holds at most


@dataclass
class Worker:
    config: Config
    shm_path: Path
    credentials: Credentials | None  # None: writes need no credential
    store: Store
    client: WriterClient
    validator: Validator
    fx_label: dict[str, str]  # the FX table `validator` judges prices with
    budget: BodyBudget  # request bodies being read or parsed, in all and per client (api/admission.py)
    rejections: RejectionExamples  # for the operator's summary (api/summary.py)
    sources: SourcesFile  # per-source settings of the native-format routes (sources.py)
    samples_seen: History = field(default_factory=History)  # likewise: rates over the last window
    rate_limits: RateLimits = field(default_factory=RateLimits)  # per credential (api/ratelimit.py)
    offload: Offload = field(default_factory=Offload)  # large native documents (api/offload.py)
    watches: WatchStore | None = None  # the watch store, opened on the first watch request
    outbox_signal: Any = None  # api.watches.OutboxSignal, made with `watches`
    watch_creations: Any = None  # api.watches.Creations (group commit of new watches), made with `watches`

    @classmethod
    async def start(cls, config: Config, shm_path: Path, fx: Fx, credentials: Credentials | None) -> Worker:
        """Map the shared store and connect to the writer (in scaled mode, to the stream too)."""
        store = Store(config.database_path, shm_path, fx)
        client: WriterClient
        if config.stream:  # scaled mode: JetStream acknowledges, the local writer applies (scaled/stream.py)
            from staystream.scaled.stream import PublishingClient

            client = PublishingClient(str(writer_socket(shm_path)), config.stream, config.stream_partitions,
                                      "search" in config.role)
        else:
            client = WriterClient(str(writer_socket(shm_path)))
        await client.connect()
        validator = Validator(store.fx, config.earliest_night, config.horizon_days, config.max_night_price_eur)
        budget = BodyBudget(INFLIGHT_BODIES * config.max_body_bytes, config.max_client_body_bytes)
        return cls(config, shm_path, credentials, store, client, validator, store.fx.label, budget,
                   RejectionExamples(shm_path / REJECTIONS_DIR), SourcesFile(config.sources_file))

    def refresh(self) -> None:
        """At the start of every request: see grown arrays and judge prices by the current FX table."""
        self.store.refresh()
        if self.store.fx.label != self.fx_label:
            self.validator.set_fx(self.store.fx, self.config.max_night_price_eur)
            self.fx_label = self.store.fx.label
