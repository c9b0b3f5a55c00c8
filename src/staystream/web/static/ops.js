// The operator's dashboard: polls GET /v1/ops/summary every second (its shape is
// OPS_SUMMARY_SHAPE in staystream/web/routes.py) and draws it; a number the server does not know
// (null) shows as a dash.

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const throughput = []; // accepted events per second, the last 120 polls

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
function milliseconds(value) {
  return value === null || value === undefined ? dash : `${num(value)} ms`;
}
function tiles(id, entries) {
  $(id).replaceChildren(...entries.map(([label, value]) => h("div", { class: "tile" }, h("dt", {}, label), h("dd", {}, value))));
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
    ["Write p50 (10 s)", milliseconds(s.write?.p50_ms)], ["Write p99 (10 s)", milliseconds(s.write?.p99_ms)],
    ["Writes/s", num(s.write?.requests_per_s)],
  ]);
  $("spark").replaceChildren(spark(throughput));
  $("sources").replaceChildren(...(s.sources.length ? s.sources.map((x) => h("tr", { "data-source": x.source },
    h("th", { scope: "row" }, x.source), h("td", { class: "num" }, num(x.accepted_per_s)), h("td", { class: "num" }, num(x.rejected_per_s)),
    h("td", { class: "num accepted" }, num(x.accepted_total, 0)), h("td", { class: "num rejected" }, num(x.rejected_total, 0)),
    h("td", { class: "num" }, pair(x.ack_to_searchable_s)),
    h("td", { class: "num" }, pair(x.changed_to_searchable_s)),
  )) : [h("tr", {}, h("td", { colspan: "7" }, "No events yet."))]));
  const reasons = s.sources.flatMap((x) => (x.rejections || []).map((r) => ({ ...r, source: x.source })));
  $("rejections").replaceChildren(...(reasons.length ? reasons.map((r) => h("tr", {},
    h("td", {}, r.source), h("td", {}, r.reason), h("td", { class: "num" }, num(r.count, 0)),
    h("td", { class: "example" }, r.example || dash))) : [h("tr", {}, h("td", { colspan: "4" }, "No rejections."))]));
  const snap = s.snapshot || {};
  const restart = s.restart || {};
  tiles("durability", [
    ["Last snapshot", snap.last_at ? new Date(snap.last_at).toLocaleTimeString() : dash],
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
    const response = await fetch("/v1/ops/summary");
    if (!response.ok) throw new Error(`the summary answered ${response.status}`);
    draw(await response.json());
  } catch (error) {
    $("status").textContent = `Cannot reach the server: ${error.message}`;
    $("status").className = "ops-status status-bad";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
