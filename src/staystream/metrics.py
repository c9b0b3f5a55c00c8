"""Prometheus metrics, shared by all processes of one server (prometheus-client multiprocess mode).

`serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before any process imports this
module; every process then writes its samples there and any worker's `/metrics` merges them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

events_accepted = Counter("staystream_events_accepted_total", "Events accepted", ["source", "type"])
events_rejected = Counter(
    "staystream_events_rejected_total", "Events rejected, by source and the field at fault", ["source", "reason"]
)
requests = Counter("staystream_http_requests_total", "HTTP requests", ["route", "status"])
request_seconds = Histogram(
    "staystream_http_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS
)
shed = Counter("staystream_shed_requests_total", "Writes refused with 503 because of backlog")
shed_connections = Counter(
    "staystream_shed_connections_total",
    "Connections closed before a request ran: header_timeout, header_size, per_client (api/connections.py)",
    ["reason"],
)
limited = Counter(
    "staystream_limited_requests_total",
    "Requests refused to protect others: body_timeout (408), client_share, rate (429)",
    ["reason"],
)
commit_seconds = Histogram(
    "staystream_commit_seconds", "Durable commit of one group (SQLite, fsync)", buckets=LATENCY_BUCKETS
)
apply_seconds = Histogram(
    "staystream_apply_seconds", "Applying one committed group to memory", buckets=LATENCY_BUCKETS
)
places_seconds = Histogram(
    "staystream_places_seconds", "Re-deciding the places one committed group touched (part of apply)",
    buckets=LATENCY_BUCKETS,
)
places_pending = Gauge(
    "staystream_places_pending", "Listings of imports whose automatic matching is still to run",
    multiprocess_mode="max",
)
group_requests = Histogram(
    "staystream_commit_group_requests", "Requests sharing one commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
group_events = Histogram(
    "staystream_commit_group_events", "Events in one commit",
    buckets=(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
)
nights_applied = Counter("staystream_nights_applied_total", "Night values that won last-writer-wins")
events_unchanged = Counter(
    "staystream_events_unchanged_total", "Rate events that won no night (resent or older than what is held)"
)
backlog_events = Gauge(
    "staystream_backlog_events", "Events handed to the writer, not yet committed", multiprocess_mode="max"
)
freshness_lag = Gauge(
    "staystream_freshness_lag_seconds",
    "Now minus changed_at of the newest applied event, per source",
    ["source"],
    multiprocess_mode="max",
)
source_delay = Histogram(
    "staystream_source_delay_seconds",
    "Applied time minus the newest changed_at of a source in one commit group",
    ["source"], buckets=(1, 5, 30, 60, 300, 900, 3600, 21600),
)
writer_heartbeat = Gauge(
    "staystream_writer_heartbeat_timestamp_seconds", "Unix time of the writer's last heartbeat",
    multiprocess_mode="max",
)
data_dir_free = Gauge(
    "staystream_data_dir_free_bytes", "Bytes free for unprivileged users on the data directory's filesystem",
    multiprocess_mode="mostrecent",
)
data_dir_capacity = Gauge(
    "staystream_data_dir_capacity_bytes", "Size of the data directory's filesystem", multiprocess_mode="mostrecent"
)
snapshot_seconds = Histogram(
    "staystream_snapshot_seconds", "Writing one calendar snapshot", buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60)
)
snapshot_failures = Counter(
    "staystream_snapshot_failures_total", "Calendar snapshots that failed (retried; the log grows meanwhile)"
)

watch_poll_seconds = Histogram(
    "staystream_watch_poll_seconds", "One watcher poll that had work: changes read, watches evaluated, events stored",
    buckets=LATENCY_BUCKETS,
)
watch_events = Counter("staystream_watch_events_total", "Watch events recorded (entered, left, price_drop)")
webhook_backlog = Gauge(
    "staystream_webhook_backlog", "Webhook deliveries in the outbox not yet answered 2xx (retries included)",
    multiprocess_mode="max",
)
webhook_deliveries = Counter("staystream_webhook_deliveries_total", "Webhook POSTs answered 2xx")
webhook_failures = Counter(
    "staystream_webhook_failures_total", "Webhook POST attempts that failed (each retry counts)", ["reason"]
)
for _reason in ("connect", "timeout", "http_4xx", "http_5xx"):
    webhook_failures.labels(_reason)  # exported at 0 from the start: the failure ratio needs them


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
