"""`GET /v1/ops/summary`: what the operator's dashboard (`/ops`) shows, in one JSON answer.

Every figure comes from what the processes already share: the Prometheus samples all of them
write (merged as `/metrics` merges them), the writer's status file (restart and snapshot state)
and the workers' latest rejection examples (one small file each, since a rejection is seen by
the worker that served it only). Rates and write latencies are over the last `WINDOW_SECONDS`,
from the samples this worker saw on earlier calls; a first call answers totals and null rates.
The exact shape is `web.routes.OPS_SUMMARY_SHAPE`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from starlette.requests import Request
from starlette.responses import Response

from staystream.api.observed import Samples
from staystream.api.operations import problems_of
from staystream.api.responses import json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.paths import REJECTIONS_DIR, WRITER_STATUS_FILE

TOP_REJECTIONS = 5

async def summary(request: Request, worker: Worker) -> Response:
    now = time.time()
    samples = _collect()
    baseline = worker.samples_seen.baseline(now, samples)
    previous, elapsed = (baseline[1], now - baseline[0]) if baseline else ({}, None)
    status = _read_json(worker.shm_path / WRITER_STATUS_FILE)
    problems = problems_of(worker)
    body: dict[str, object] = {
        "at": _instant(now),
        "ready": not problems,
        "problems": problems,
        "started_at": _instant(status.get("started_at")),
        "backlog_events": worker.store.backlog,
        "sources": _sources(samples, previous, elapsed, _examples(worker.shm_path), now),
        "write": _write(samples, previous, elapsed),
        "snapshot": _snapshot(samples, status),
        "restart": _restart(status),
        "scaled": _scaled(worker),
    }
    return json_response(body)


def _collect() -> Samples:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        collector = multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        families: Iterable[object] = collector.collect()  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        families = REGISTRY.collect()
    samples: Samples = {}
    for family in families:
        for sample in family.samples:  # type: ignore[attr-defined]  # prometheus_client ships no types for Metric
            samples[sample.name, frozenset(sample.labels.items())] = float(sample.value)
    return samples


def _by_name(samples: Samples, name: str) -> Iterable[tuple[dict[str, str], float]]:
    for (sample_name, labels), value in samples.items():
        if sample_name == name:
            yield dict(labels), value


def _sources(samples: Samples, previous: Samples, elapsed: float | None, examples: dict[tuple[str, str], str],
             now: float) -> list[dict[str, object]]:
    accepted: dict[str, float] = {}
    rejected: dict[str, float] = {}
    reasons: dict[str, dict[str, float]] = {}
    for labels, value in _by_name(samples, "staystream_events_accepted_total"):
        accepted[labels["source"]] = accepted.get(labels["source"], 0.0) + value
    for labels, value in _by_name(samples, "staystream_events_rejected_total"):
        rejected[labels["source"]] = rejected.get(labels["source"], 0.0) + value
        reasons.setdefault(labels["source"], {})[labels["reason"]] = value
    before_accepted = _sum_by_source(previous, "staystream_events_accepted_total")
    before_rejected = _sum_by_source(previous, "staystream_events_rejected_total")
    newest = {labels["source"]: now - value for labels, value in _by_name(samples, "staystream_freshness_lag_seconds")}
    answer = []
    for source in sorted(set(accepted) | set(rejected)):
        top = sorted(reasons.get(source, {}).items(), key=lambda item: (-item[1], item[0]))[:TOP_REJECTIONS]
        delays = _buckets(samples, "staystream_source_delay_seconds_bucket", "source", source)
        answer.append({
            "source": source,
            "accepted_total": int(accepted.get(source, 0)),
            "rejected_total": int(rejected.get(source, 0)),
            "accepted_per_s": _rate(accepted.get(source, 0.0), before_accepted.get(source), elapsed),
            "rejected_per_s": _rate(rejected.get(source, 0.0), before_rejected.get(source), elapsed),
            "rejections": [{"reason": reason, "count": int(count), "example": examples.get((source, reason))}
                           for reason, count in top],
            # the 200 goes out only once the write is applied to what search reads (read-after-ack)
            "ack_to_searchable_s": {"p50": 0.0, "p99": 0.0} if source in accepted else None,
            "changed_to_searchable_s": {"p50": _quantile(0.5, delays), "p99": _quantile(0.99, delays)},
            "last_event_at": _instant(newest.get(source)),
        })
    return answer


def _sum_by_source(samples: Samples, name: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for labels, value in _by_name(samples, name):
        totals[labels["source"]] = totals.get(labels["source"], 0.0) + value
    return totals


def _rate(now: float, before: float | None, elapsed: float | None) -> float | None:
    if elapsed is None:
        return None
    return round(max(0.0, now - (before or 0.0)) / elapsed, 2)


def _buckets(samples: Samples, name: str, label: str, value: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of one histogram series, ascending."""
    return sorted((float(labels["le"]), count) for labels, count in _by_name(samples, name)
                  if labels.get(label) == value)


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """As PromQL's histogram_quantile: linear inside the bucket the rank falls in."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            fraction = (rank - lower_count) / inside if inside else 1.0
            return round(lower_bound + (bound - lower_bound) * fraction, 4)
        lower_bound, lower_count = bound, count
    return None


def _write(samples: Samples, previous: Samples, elapsed: float | None) -> dict[str, object]:
    now = _buckets(samples, "staystream_http_request_seconds_bucket", "route", "events")
    before = dict(_buckets(previous, "staystream_http_request_seconds_bucket", "route", "events"))
    window = [(bound, count - before.get(bound, 0.0)) for bound, count in now] if elapsed else now
    p50, p99 = _quantile(0.5, window), _quantile(0.99, window)
    requests = now[-1][1] if now else 0.0
    return {
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "requests_per_s": _rate(requests, before.get(math.inf), elapsed),
    }


def _snapshot(samples: Samples, status: dict[str, object]) -> dict[str, object]:
    last = status.get("snapshot")
    last = last if isinstance(last, dict) else {}
    failures = sum(value for _, value in _by_name(samples, "staystream_snapshot_failures_total"))
    return {"last_at": _instant(last.get("last_at")), "last_seconds": last.get("last_seconds"),
            "failures": int(failures), "events_since": status.get("night_updates_since_snapshot")}


def _restart(status: dict[str, object]) -> dict[str, object] | None:
    restart = status.get("restart")
    if not isinstance(restart, dict):
        return None
    return {**restart, "recovered_at": _instant(restart.get("recovered_at"))}


def _scaled(worker: Worker) -> dict[str, object] | None:
    if not worker.config.stream:
        return None
    from staystream.scaled.stream import read_lag

    lag, _ = read_lag(worker.shm_path)
    follow: dict[str, object] = lag.get("follow") or {}
    apply: dict[str, object] = lag.get("apply") or {}
    return {"role": worker.config.role, "follow_lag_s": follow.get("seconds"),
            "follow_lag_messages": follow.get("messages"), "apply_lag_s": apply.get("seconds"),
            "apply_lag_messages": apply.get("messages")}


def _examples(shm_path: Path) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for path in sorted((shm_path / REJECTIONS_DIR).glob("*.json")):
        for label, example in _read_json(path).items():
            source, _, reason = label.partition("\x00")
            found[source, reason] = str(example)
    return found


def _read_json(path: Path) -> dict[str, object]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _instant(seconds: object) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ROUTES = [route("/v1/ops/summary", "ops_summary", ["GET"], summary)]
