// The operator's dashboard: polls GET /v1/ops/summary every second (its shape is
// OPS_SUMMARY_SHAPE in staystream/web/routes.py). A server without that route is read from
// /metrics (Prometheus text) and /readyz instead: rates are then this page's own differences
// between polls, write p50/p99 come from the histogram of POST /v1/events over the last 10 s,
// and what the metrics do not hold (rejection examples, ack → searchable, restart) shows a dash.

const POLL_MS = 1000;
const WINDOW_MS = 10000;
const $ = (id) => document.getElementById(id);
const samplesSeen = []; // [{at, metrics}] of the last WINDOW_MS, fallback mode only
const throughput = []; // accepted events per second, the last 120 polls
let summaryMissing = false;

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

const dash = "–";
function num(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}
function seconds(value) {
  if (value === null || value === undefined) return dash;
  if (value < 1) return `${num(value * 1000, 1)} ms`;
  if (value < 120) return `${num(value, 1)} s`;
  return `${num(value / 60, 1)} min`;
}
function tiles(id, entries) {
  $(id).replaceChildren(...entries.map(([label, value]) => h("div", { class: "tile" }, h("dt", {}, label), h("dd", {}, value))));
}

// ---- /metrics fallback ---------------------------------------------------------------------

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

const pick = (samples, name, filter = () => true) => samples.filter((s) => s.name === name && filter(s.labels));
const total = (samples, name, filter) => pick(samples, name, filter).reduce((sum, s) => sum + s.value, 0);
const gauge = (samples, name) => { const found = pick(samples, name); return found.length ? Math.max(...found.map((s) => s.value)) : null; };

function quantile(bucketsNow, bucketsThen, q) {
  // buckets: [{le, count}] cumulative; interpolated inside its bucket, as Prometheus's
  // histogram_quantile does (a quantile in the +Inf bucket is the last finite bound).
  const counts = bucketsNow.map((b, i) => ({ le: b.le, count: b.count - (bucketsThen[i]?.count || 0) }));
  const all = counts.at(-1)?.count || 0;
  if (!all) return null;
  const rank = q * all;
  const index = counts.findIndex((b) => b.count >= rank);
  const bucket = counts[index];
  if (!Number.isFinite(bucket.le)) return counts[index - 1]?.le ?? null;
  const lower = index ? counts[index - 1] : { le: 0, count: 0 };
  const inside = bucket.count - lower.count;
  return inside ? lower.le + (bucket.le - lower.le) * ((rank - lower.count) / inside) : bucket.le;
}

function buckets(samples, name, route) {
  return pick(samples, `${name}_bucket`, (l) => l.route === route)
    .map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), count: s.value }))
    .sort((a, b) => a.le - b.le);
}

async function summaryFromMetrics() {
  const [metricsResponse, readyResponse] = await Promise.all([fetch("/metrics"), fetch("/readyz")]);
  const samples = parseMetrics(await metricsResponse.text());
  const ready = await readyResponse.json().catch(() => ({}));
  const at = Date.now();
  samplesSeen.push({ at, samples });
  while (samplesSeen.length > 2 && at - samplesSeen[0].at > WINDOW_MS) samplesSeen.shift();
  const then = samplesSeen[0];
  const span = (at - then.at) / 1000;
  const sources = new Set([...pick(samples, "staystream_events_accepted_total"), ...pick(samples, "staystream_events_rejected_total"),
    ...pick(samples, "staystream_freshness_lag_seconds")].map((s) => s.labels.source));
  const rate = (name, source) => (span > 0 ? (total(samples, name, (l) => l.source === source) - total(then.samples, name, (l) => l.source === source)) / span : null);
  const eventsNow = buckets(samples, "staystream_http_request_seconds", "events");
  const eventsThen = buckets(then.samples, "staystream_http_request_seconds", "events");
  const windowed = (eventsNow.at(-1)?.count || 0) > (eventsThen.at(-1)?.count || 0);
  const since = windowed ? eventsThen : [];
  const snapshotCount = gauge(samples, "staystream_snapshot_seconds_count");
  const followLag = gauge(samples, "staystream_follow_lag_seconds");
  const applyLag = gauge(samples, "staystream_apply_lag_seconds");
  return {
    at: new Date(at).toISOString(), ready: ready.status === "ready", problems: ready.problems || [],
    started_at: null, backlog_events: gauge(samples, "staystream_backlog_events") ?? ready.backlog_events ?? null,
    sources: [...sources].sort().map((source) => ({
      source,
      accepted_total: total(samples, "staystream_events_accepted_total", (l) => l.source === source),
      rejected_total: total(samples, "staystream_events_rejected_total", (l) => l.source === source),
      accepted_per_s: rate("staystream_events_accepted_total", source),
      rejected_per_s: rate("staystream_events_rejected_total", source),
      rejections: pick(samples, "staystream_events_rejected_total", (l) => l.source === source)
        .sort((a, b) => b.value - a.value).slice(0, 5).map((s) => ({ reason: s.labels.reason, count: s.value, example: null })),
      ack_to_searchable_s: null,
      changed_to_searchable_s: null,
      changed_lag_s: pick(samples, "staystream_freshness_lag_seconds", (l) => l.source === source)[0]?.value ?? null,
    })),
    write: {
      p50_ms: (quantile(eventsNow, since, 0.5) ?? NaN) * 1000, p99_ms: (quantile(eventsNow, since, 0.99) ?? NaN) * 1000,
      requests_per_s: span > 0 ? ((eventsNow.at(-1)?.count || 0) - (eventsThen.at(-1)?.count || 0)) / span : null,
      window: windowed ? "last 10 s" : "since start",
    },
    snapshot: {
      last_at: null, count: snapshotCount,
      last_seconds: snapshotCount ? gauge(samples, "staystream_snapshot_seconds_sum") / snapshotCount : null,
      failures: gauge(samples, "staystream_snapshot_failures_total"), events_since: null,
    },
    restart: null,
    scaled: followLag === null && applyLag === null ? null : {
      role: null, follow_lag_s: followLag, follow_lag_messages: gauge(samples, "staystream_follow_lag_messages"),
      apply_lag_s: applyLag, apply_lag_messages: gauge(samples, "staystream_apply_lag_messages"),
    },
  };
}

// ---- drawing -------------------------------------------------------------------------------

function pair(stats) {
  return stats ? `${seconds(stats.p50)} / ${seconds(stats.p99)}` : dash;
}

function draw(s) {
  $("status").textContent = `${s.ready ? "Ready" : `Not ready: ${s.problems.join("; ")}`} · updated ${new Date(s.at).toLocaleTimeString()}`;
  $("status").className = `ops-status ${s.ready ? "status-ok" : "status-bad"}`;
  const accepted = s.sources.reduce((sum, x) => sum + (x.accepted_per_s || 0), 0);
  const rejected = s.sources.reduce((sum, x) => sum + (x.rejected_per_s || 0), 0);
  throughput.push(accepted);
  if (throughput.length > 120) throughput.shift();
  tiles("tiles", [
    ["Accepted events/s", num(accepted)], ["Rejected events/s", num(rejected)],
    ["Backlog (events)", num(s.backlog_events, 0)],
    [`Write p50${s.write?.window ? ` (${s.write.window})` : ""}`, s.write?.p50_ms >= 0 ? `${num(s.write.p50_ms)} ms` : dash],
    [`Write p99${s.write?.window ? ` (${s.write.window})` : ""}`, s.write?.p99_ms >= 0 ? `${num(s.write.p99_ms)} ms` : dash],
    ["Writes/s", num(s.write?.requests_per_s)],
  ]);
  $("spark").replaceChildren(spark(throughput));
  $("sources").replaceChildren(...(s.sources.length ? s.sources.map((x) => h("tr", { "data-source": x.source },
    h("th", { scope: "row" }, x.source), h("td", { class: "num" }, num(x.accepted_per_s)), h("td", { class: "num" }, num(x.rejected_per_s)),
    h("td", { class: "num accepted" }, num(x.accepted_total, 0)), h("td", { class: "num rejected" }, num(x.rejected_total, 0)),
    h("td", { class: "num" }, pair(x.ack_to_searchable_s)),
    h("td", { class: "num" }, x.changed_to_searchable_s ? pair(x.changed_to_searchable_s) : x.changed_lag_s !== undefined && x.changed_lag_s !== null ? `newest ${seconds(x.changed_lag_s)} old` : dash),
  )) : [h("tr", {}, h("td", { colspan: "7" }, "No events yet."))]));
  const reasons = s.sources.flatMap((x) => (x.rejections || []).map((r) => ({ ...r, source: x.source })));
  $("rejections").replaceChildren(...(reasons.length ? reasons.map((r) => h("tr", {},
    h("td", {}, r.source), h("td", {}, r.reason), h("td", { class: "num" }, num(r.count, 0)),
    h("td", { class: "example" }, r.example || dash))) : [h("tr", {}, h("td", { colspan: "4" }, "No rejections."))]));
  const snap = s.snapshot || {};
  const restart = s.restart || {};
  tiles("durability", [
    ["Last snapshot", snap.last_at ? new Date(snap.last_at).toLocaleTimeString() : snap.count ? `${num(snap.count, 0)} taken` : dash],
    ["Snapshot takes", seconds(snap.last_seconds)], ["Snapshot failures", num(snap.failures, 0)],
    ["Events since snapshot", num(snap.events_since, 0)],
    ["Recovered at", restart.recovered_at ? new Date(restart.recovered_at).toLocaleTimeString() : dash],
    ["Replayed on start", num(restart.replayed_events, 0)], ["Recovery took", seconds(restart.seconds)],
  ]);
  const scaled = s.scaled;
  tiles("scaled", scaled ? [
    ["Role", scaled.role || dash], ["Follow lag", seconds(scaled.follow_lag_s)], ["Follow lag (msgs)", num(scaled.follow_lag_messages, 0)],
    ["Apply lag", seconds(scaled.apply_lag_s)], ["Apply lag (msgs)", num(scaled.apply_lag_messages, 0)],
  ] : [["Mode", "single node"]]);
}

function spark(values) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 120 40");
  svg.setAttribute("preserveAspectRatio", "none");
  const high = Math.max(1, ...values);
  const path = values.map((v, i) => `${i ? "L" : "M"}${i + 120 - values.length},${38 - (v / high) * 36}`).join(" ");
  svg.innerHTML = values.length > 1 ? `<path d="${path}" fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke"/>` : "";
  return svg;
}

async function poll() {
  try {
    let summary = null;
    if (!summaryMissing) {
      const response = await fetch("/v1/ops/summary");
      if (response.status === 404) summaryMissing = true;
      else if (response.ok) summary = await response.json();
    }
    draw(summary || await summaryFromMetrics());
  } catch (error) {
    $("status").textContent = `Cannot reach the server: ${error.message}`;
    $("status").className = "ops-status status-bad";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
