// The traveler's search page. Its whole state is the URL (`/?where=&checkin=&checkout=&guests=
// &currency=&sort=&kind=&min_price=&max_price=&deals=&cursor=&listing=`): the page reads it,
// asks the JSON API of its own origin, and draws place cards, a map and the flexible-dates strip.
// Live: a watch on the current search (SSE) re-fetches the cards it names; when the server
// refuses a watch (429: this address holds too many) the page re-runs the search every POLL_MS.

const POLL_MS = 2000;
const OUTLINE_MAX_ZOOM = 11;
const PIN_LABEL_PX = 22; // a price label's height
const LIMIT = 20;
const KINDS = {
  hotel_room: "Hotel room", apartment: "Apartment", house: "House", private_room: "Private room",
  shared_room: "Shared room", hostel_bed: "Hostel bed", other: "Other",
};
const WHEN = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };
const FORM_FIELDS = ["where", "checkin", "checkout", "guests", "currency"];
const FILTER_FIELDS = ["min_price", "max_price", "kind", "sort"];

const $ = (id) => document.getElementById(id);
const whereCache = new Map();
let current = null; // {state, params} of the search on screen, for live refreshes
let live = { key: null, source: null, watchId: null, timer: null };

// ---- small helpers -------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function isoDay(date) { return date.toISOString().slice(0, 10); }
function addDays(iso, days) {
  const date = new Date(`${iso}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return isoDay(date);
}
function nightsBetween(a, b) { return Math.round((Date.parse(b) - Date.parse(a)) / 86400000); }
function today() { return isoDay(new Date()); }

function money(amount, currency, whole = false) {
  if (amount === null || amount === undefined) return "–";
  const value = Number(amount);
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency", currency, maximumFractionDigits: whole ? 0 : undefined,
      minimumFractionDigits: whole ? 0 : undefined,
    }).format(value);
  } catch {
    return `${amount} ${currency}`;
  }
}

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return { status: response.status, ok: response.ok, body };
}

// ---- the URL is the state ------------------------------------------------------------------

function readState() {
  const q = new URLSearchParams(location.search);
  const checkin = q.get("checkin") || addDays(today(), 7);
  let checkout = q.get("checkout") || addDays(checkin, 3);
  if (nightsBetween(checkin, checkout) < 1) checkout = addDays(checkin, 1);
  return {
    where: (q.get("where") || "").trim(), checkin, checkout,
    guests: q.get("guests") || "2", currency: q.get("currency") || "",
    min_price: q.get("min_price") || "", max_price: q.get("max_price") || "",
    kind: q.get("kind") || "", sort: q.get("sort") || "total", deals: q.get("deals") === "only",
    cursor: q.get("cursor") || "", listing: q.get("listing") || "",
  };
}

function writeState(state) {
  const q = new URLSearchParams();
  for (const name of [...FORM_FIELDS, ...FILTER_FIELDS, "cursor", "listing"]) {
    if (state[name] && !(name === "sort" && state.sort === "total")) q.set(name, state[name]);
  }
  if (state.deals) q.set("deals", "only");
  const url = `/?${q}`;
  if (url === location.pathname + location.search) return;
  // the cursors of the pages before this one, for "Page N"; a new search starts at page 1
  const stack = state.cursor ? (history.state?.stack || []) : [];
  history.pushState({ stack }, "", url);
}

function fillForm(state) {
  for (const name of [...FORM_FIELDS, ...FILTER_FIELDS]) {
    const input = $(name);
    if (input && input !== document.activeElement) input.value = state[name];
  }
  $("deals").checked = state.deals;
  $("checkout").min = addDays($("checkin").value || today(), 1);
}

function stateFromForm() {
  const state = readState();
  for (const name of [...FORM_FIELDS, ...FILTER_FIELDS]) state[name] = $(name).value.trim();
  state.deals = $("deals").checked;
  state.cursor = "";
  state.listing = "";
  return state;
}

// ---- the API -------------------------------------------------------------------------------

async function resolveWhere(name) {
  const key = name.toLowerCase();
  if (!whereCache.has(key)) {
    const { ok, body } = await getJson(`/v1/where?resolve=1&q=${encodeURIComponent(name)}`);
    whereCache.set(key, ok ? body.place : null);
  }
  return whereCache.get(key);
}

function searchParams(state, area) {
  const params = {
    lat: area.lat, lon: area.lon, radius_km: area.radius_km, checkin: state.checkin,
    checkout: state.checkout, guests: state.guests, limit: LIMIT,
  };
  for (const name of ["currency", "kind", "min_price", "max_price", "cursor"]) {
    if (state[name]) params[name] = state[name];
  }
  if (state.sort && state.sort !== "total") params.sort = state.sort;
  if (state.deals) params.deals = "only";
  return params;
}

/** GET /v1/search; an error answer becomes an Error with the server's message. */
async function search(params) {
  const { ok, status, body } = await getJson(`/v1/search?${new URLSearchParams(params)}`);
  if (!ok) throw new Error(body?.error || `search failed (${status})`);
  return body;
}

const placeId = (r) => r.place_id ?? `${r.source}/${r.listing_id}`;

// ---- cards ---------------------------------------------------------------------------------

function dealText(deal) {
  if (!deal) return null;
  const why = deal.kind === "less_than_usual" ? "less than usual for this place" : "less than similar places nearby";
  return `${deal.percent_below}% ${why}`;
}

function card(r, state) {
  const id = placeId(r);
  const offers = r.offers;
  const nights = r.nights?.length || nightsBetween(state.checkin, state.checkout);
  const titleId = `t-${id.replace(/[^a-zA-Z0-9_-]/g, "_")}`;
  const deal = dealText(r.deal);
  const fees = r.fees || [];
  const meta = [KINDS[r.kind] || r.kind, r.distance_km !== undefined ? `${Number(r.distance_km).toFixed(1)} km from the centre` : null,
    r.max_guests ? `up to ${r.max_guests} guests` : null].filter(Boolean).join(" · ");
  const perNight = r.nightly_average ?? (Number(r.total) / nights).toFixed(2);
  return h("li", { class: "card", dataset: { placeId: id, source: r.source, listingId: r.listing_id, signature: signature(r) } },
    h("article", { "aria-labelledby": titleId },
      h("div", { class: "card-main" },
        h("h3", { id: titleId },
          h("a", { href: listingUrl(r), class: "open-listing", dataset: { source: r.source, listingId: r.listing_id } }, r.name || r.listing_id)),
        h("p", { class: "meta" }, meta),
        deal ? h("p", { class: "deal", title: `reference total ${money(r.deal.reference_total, r.currency)}` },
          h("span", { class: "badge" }, "Deal"), ` ${deal}`) : null,
        h("ul", { class: "offers", "aria-label": "Offers, cheapest first" },
          offers.map((o, i) => h("li", { class: i === 0 ? "best" : null },
            h("span", { class: "source" }, o.source), " ",
            h("strong", {}, money(o.total, o.currency || r.currency)),
            o.url ? h("a", { href: o.url, rel: "noopener", target: "_blank", "aria-label": `view the ${o.source} offer` }, "view") : null))),
        fees.length ? h("details", { class: "fees" },
          h("summary", {}, `Nights ${money(r.nights_total, r.currency)} + fees`),
          h("ul", {}, fees.map((f) => h("li", {}, `${f.label}: ${money(f.amount, r.currency)}${f.mandatory ? "" : " (optional, not included)"}`)))) : null),
      h("div", { class: "price" },
        h("strong", { class: "total", "aria-label": `total ${money(r.total, r.currency)}` }, money(r.total, r.currency)),
        h("span", { class: "per-night" }, `${money(perNight, r.currency)} / night · ${nights} night${nights === 1 ? "" : "s"}`),
        h("span", { class: "fresh", dataset: { changedAt: r.price_changed_at || "" } }, freshText(r.price_changed_at)),
        h("span", { class: "gone-note" }, "No longer available for these dates"))));
}

function freshText(iso) { return iso ? `price changed ${ago(iso)}` : ""; }
function signature(r) {
  return JSON.stringify([r.total, r.currency, r.offers.map((o) => [o.source, o.total]), r.deal?.percent_below ?? null, r.price_changed_at]);
}
function listingUrl(r) {
  const q = new URLSearchParams(location.search);
  q.set("listing", `${r.source}/${r.listing_id}`);
  return `/?${q}`;
}

function flash(node) {
  node.classList.remove("flash");
  void node.offsetWidth; // restart the animation
  node.classList.add("flash");
}

function cardNode(id) {
  return [...$("cards").children].find((li) => li.dataset.placeId === id) || null;
}

// ---- rendering a search --------------------------------------------------------------------

function render(body, state, area) {
  const results = body.results;
  const nights = nightsBetween(state.checkin, state.checkout);
  const count = body.matches ?? results.length;
  $("summary").textContent = count
    ? `${count} place${count === 1 ? "" : "s"} in ${area.name} · ${nights} night${nights === 1 ? "" : "s"}, ${state.checkin} to ${state.checkout} · ${state.guests} guest${state.guests === "1" ? "" : "s"}`
    : state.deals || state.min_price || state.max_price || state.kind
      ? `No place in ${area.name} matches these filters for ${state.checkin} to ${state.checkout}.`
      : `Nothing free in ${area.name} for ${state.checkin} to ${state.checkout}. Try other dates.`;
  $("cards").replaceChildren(...results.map((r) => card(r, state)));
  $("notice").hidden = true;
  const stack = history.state?.stack || [];
  $("prev").hidden = !state.cursor;
  $("next").hidden = !body.next_cursor;
  $("next").dataset.cursor = body.next_cursor || "";
  $("page").textContent = state.cursor || body.next_cursor ? `Page ${stack.length + 1}` : "";
  drawPins(results, area);
  // when the first results are on screen (benchmarks/web_bench.py reads it; so can a RUM script)
  if (!performance.getEntriesByName("staystream:results").length) performance.mark("staystream:results");
}

let runs = 0; // a newer run makes an older one's answers stale

/** Show what the URL asks for. `aria-busy` on the cards is true until it is shown. */
async function run() {
  const mine = ++runs;
  $("cards").setAttribute("aria-busy", "true");
  try {
    await show(readState(), () => mine !== runs);
  } finally {
    if (mine === runs) $("cards").setAttribute("aria-busy", "false");
  }
}

async function show(state, stale) {
  fillForm(state);
  if (!state.where) {
    $("summary").textContent = "Where would you like to stay? Try Singapore.";
    $("cards").replaceChildren();
    stopLive();
    showWorld();
    return;
  }
  $("summary").textContent = `Searching ${state.where}…`;
  const area = await resolveWhere(state.where);
  if (stale()) return;
  if (!area) {
    $("summary").textContent = `No place called “${state.where}” is known. Check the spelling or choose a suggestion.`;
    $("cards").replaceChildren();
    return;
  }
  const params = searchParams(state, area);
  let body;
  try {
    body = await search(params);
  } catch (error) {
    if (!stale()) $("summary").textContent = `The search failed: ${error.message}`;
    return;
  }
  if (stale()) return;
  current = { state, params };
  render(body, state, area);
  loadDates(state, area);
  startLive(state, area);
  if (state.listing) openListing(state.listing);
  else if ($("listing").open) $("listing").close();
}

// ---- live updates --------------------------------------------------------------------------

let refreshing = null;
let refreshAgain = false; // an event came during a refresh whose search may predate its write
/** Re-run the current page's search and patch cards in place: no card moves. */
function refreshCards() {
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => {
    try {
      if (!current?.params) return;
      const body = await search(current.params);
      const fresh = new Map(body.results.map((r) => [placeId(r), r]));
      let newcomers = 0;
      for (const [id, r] of fresh) {
        const node = cardNode(id);
        if (!node) { newcomers += 1; continue; }
        patchCard(node, r);
      }
      const missing = [...$("cards").children].filter((node) => !fresh.has(node.dataset.placeId) && !node.classList.contains("gone"));
      await Promise.all(missing.map(async (node) => {
        const r = await lookUp(node.dataset.placeId);
        if (r) patchCard(node, r); else markGone(node);
      }));
      if (newcomers) showNotice(`${newcomers} more place${newcomers === 1 ? "" : "s"} now match.`);
    } catch { /* the next event or poll tries again */ } finally {
      refreshing = null;
      if (refreshAgain) { refreshAgain = false; refreshCards(); }
    }
  })();
  return refreshing;
}

function patchCard(node, r) {
  if (node.dataset.signature === signature(r) && !node.classList.contains("gone")) return;
  const replacement = card(r, current.state);
  node.replaceWith(replacement);
  flash(replacement);
  updatePin(r);
}

/** A place on screen that left this page of results: still matching (a rise moved it to a later
 * page) or not. Searched for around its own pin, with the page's filters. */
async function lookUp(id) {
  const shown = pins.get(id)?.r;
  if (!shown) return null;
  const params = { ...current.params, lat: shown.lat, lon: shown.lon, radius_km: 0.2, sort: "distance", limit: 5 };
  delete params.cursor;
  const found = (await search(params)).results.find((r) => placeId(r) === id);
  return found ? { ...found, distance_km: shown.distance_km } : null; // from the page's centre, as before
}

function markGone(node) {
  node.classList.add("gone");
  flash(node);
}

function showNotice(text) {
  const notice = $("notice");
  notice.replaceChildren(text, " ", h("button", { type: "button", onclick: run }, "Show them"));
  notice.hidden = false;
}

function stopLive() {
  live.source?.close();
  clearInterval(live.timer);
  if (live.watchId) fetch(`/v1/watches/${live.watchId}`, { method: "DELETE", keepalive: true }).catch(() => {});
  live = { key: null, source: null, watchId: null, timer: null };
  delete $("cards").dataset.live;
}

async function startLive(state, area) {
  const watch = {
    lat: area.lat, lon: area.lon, radius_km: area.radius_km, checkin: state.checkin,
    checkout: state.checkout, guests: Number(state.guests), changes: true, // rises too (price_change)
  };
  for (const name of ["currency", "kind", "max_price"]) if (state[name]) watch[name] = state[name];
  const key = JSON.stringify(watch);
  if (live.key === key) return;
  stopLive();
  live.key = key;
  try {
    const { status, body } = await getJson("/v1/watches", {
      method: "POST", headers: { "content-type": "application/json" }, body: key,
    });
    if (status === 201 && body?.watch_id && live.key === key) {
      live.watchId = body.watch_id;
      live.source = new EventSource(`/v1/watches/${encodeURIComponent(body.watch_id)}/events`);
      live.source.addEventListener("open", () => { $("cards").dataset.live = "watch"; });
      for (const name of ["entered", "left", "price_drop", "price_change"]) {
        live.source.addEventListener(name, (event) => onWatchEvent(name, JSON.parse(event.data)));
      }
      return;
    }
  } catch { /* no watches: poll below */ }
  if (live.key !== key) return;
  live.timer = setInterval(() => { if (!document.hidden) refreshCards(); }, POLL_MS);
  $("cards").dataset.live = "poll";
}

function onWatchEvent(name, data) {
  const node = cardNode(data.place_id);
  if (name === "left") { if (node) markGone(node); return; }
  if (name === "entered" && !node) { refreshCards(); return; }
  refreshCards();
}

addEventListener("pagehide", stopLive);

// ---- the map -------------------------------------------------------------------------------

let map = null;
let pinLayer = null;
let areaLayer = null;
let ringLayer = null; // offline only
const RINGS_KM = [0.5, 1, 2, 5, 10, 20];
const pins = new Map();

function meta(name) { return document.querySelector(`meta[name="${name}"]`)?.content || ""; }

function ensureMap() {
  if (map || !window.L) return map;
  const L = window.L;
  map = L.map("map", { worldCopyJump: true, zoomSnap: 0.5 });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com/">Leaflet</a>');
  L.control.scale({ imperial: false }).addTo(map);
  const tiles = meta("staystream-tile-url");
  if (tiles) {
    L.tileLayer(tiles, { attribution: meta("staystream-tile-attribution"), maxZoom: 19 }).addTo(map);
    $("tile-credit").textContent = `; tiles ${meta("staystream-tile-attribution")}`;
  } else {
    $("map").classList.add("offline");
    map.attributionControl.addAttribution("Natural Earth");
    // 1:50m outlines are a few km off the real coast: past OUTLINE_MAX_ZOOM they would put pins
    // in the sea, so the map shows plain land with distance rings around the centre instead.
    map.createPane("rings").style.zIndex = 350; // under the pins
    ringLayer = L.layerGroup();
    let outlines = null;
    const fit = () => {
      if (map.getZoom() === undefined) return; // no view yet: the first zoomend comes
      const show = map.getZoom() <= OUTLINE_MAX_ZOOM;
      $("map").classList.toggle("plain", !show);
      for (const [layer, on] of [[outlines, show], [ringLayer, !show]]) {
        if (layer && on && !map.hasLayer(layer)) layer.addTo(map);
        else if (layer && !on && map.hasLayer(layer)) layer.remove();
      }
      if (show) outlines?.bringToBack();
    };
    map.on("zoomend", fit);
    fetch("/static/vendor/world/countries-50m.geojson").then((r) => r.json()).then((world) => {
      outlines = L.geoJSON(world, { interactive: false, style: { color: "#7d8f80", weight: 1, fillColor: "#f3f1e7", fillOpacity: 1 } });
      fit();
    }).catch(() => {});
  }
  pinLayer = L.layerGroup().addTo(map);
  map.on("zoomend", declutter);
  // Leaflet makes a pin focusable (role=button) but Enter only opens popups, and a pin has none
  map.getPane("markerPane").addEventListener("keydown", (event) => {
    const id = event.target.closest?.(".pin")?.dataset.placeId;
    if (!id || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    bringCard(id);
  });
  return map;
}

function pinIcon(r, active = false, labelled = true) {
  const shown = labelled || active; // a dot's price shows while its card is hovered
  return window.L.divIcon({
    className: `pin${r.deal ? " pin-deal" : ""}${active ? " active" : ""}${shown ? "" : " pin-dot"}`,
    html: `<span>${shown ? money(r.total, r.currency, true).replace(/[<>&]/g, "") : ""}</span>`, iconSize: null,
  });
}

/** Price labels that would cover one another (close places, a phone's narrow map) are not drawn:
 * cheapest first, a pin keeps its label only where no label kept so far is; the others show as
 * dots (still a pin each: focusable, named by their title, their price on the card's hover). */
function declutter() {
  const kept = [];
  const cheapestFirst = [...pins.entries()].sort(([, a], [, b]) => Number(a.r.total) - Number(b.r.total));
  for (const [id, pin] of cheapestFirst) {
    const at = map.latLngToLayerPoint([pin.r.lat, pin.r.lon]);
    const width = money(pin.r.total, pin.r.currency, true).length * 7.5 + 18; // 12px bold digits, padding
    const box = [at.x - width / 2, at.y - PIN_LABEL_PX, at.x + width / 2, at.y]; // the label sits above its point
    const free = !kept.some((k) => box[0] < k[2] && k[0] < box[2] && box[1] < k[3] && k[1] < box[3]);
    if (free) kept.push(box);
    if (pin.labelled !== free) {
      pin.labelled = free;
      setPin(id, pin.r);
    }
  }
}

function drawPins(results, area) {
  if (!ensureMap()) return;
  const L = window.L;
  pinLayer.clearLayers();
  pins.clear();
  areaLayer?.remove();
  areaLayer = L.circle([area.lat, area.lon], { radius: area.radius_km * 1000, color: "#2c5d8a", weight: 1, fill: false, interactive: false }).addTo(map);
  if (ringLayer) drawRings(area);
  for (const r of results) {
    const id = placeId(r);
    const marker = L.marker([r.lat, r.lon], { icon: pinIcon(r), title: r.name, alt: `${r.name}: ${money(r.total, r.currency)}`, riseOnHover: true });
    marker.on("click", () => bringCard(id));
    marker.on("add", () => { marker.getElement().dataset.placeId = id; }); // once the map has its view
    marker.addTo(pinLayer);
    pins.set(id, { marker, r, labelled: true });
  }
  const points = results.map((r) => [r.lat, r.lon]);
  if (points.length) map.fitBounds(L.latLngBounds(points).pad(0.1), { maxZoom: 15, animate: false });
  else map.fitBounds(L.latLng(area.lat, area.lon).toBounds(area.radius_km * 2000), { animate: false });
  declutter();
}

/** No search yet: the whole world, so the map is a map from the first look. */
function showWorld() {
  if (!ensureMap()) return;
  pinLayer.clearLayers();
  pins.clear();
  areaLayer?.remove();
  ringLayer?.clearLayers();
  map.fitBounds([[-50, -170], [72, 190]], { animate: false });
}

/** Rings at 0.5, 1, 2, 5... km from the search's centre (what a card's distance counts from). */
function drawRings(area) {
  const L = window.L;
  const still = { pane: "rings", interactive: false, keyboard: false };
  ringLayer.clearLayers();
  L.marker([area.lat, area.lon], { ...still, icon: L.divIcon({ className: "ring-centre", iconSize: [9, 9] }) }).addTo(ringLayer);
  for (const km of RINGS_KM.filter((km) => km < area.radius_km)) {
    L.circle([area.lat, area.lon], { ...still, radius: km * 1000, color: "#9a8f6a", weight: 1, dashArray: "3 5", fill: false }).addTo(ringLayer);
    const label = L.divIcon({ className: "ring-label", html: `<span>${km} km</span>`, iconSize: null });
    L.marker([area.lat + km / 111.2, area.lon], { ...still, icon: label }).addTo(ringLayer);
  }
}

/** A pin's card scrolled into view, focused and flashed. */
function bringCard(id) {
  const node = cardNode(id);
  node?.scrollIntoView({ block: "nearest", behavior: "smooth" });
  node?.querySelector("a")?.focus({ preventScroll: true });
  if (node) flash(node);
}

function setPin(id, r, active = false) {
  const pin = pins.get(id);
  if (!pin) return;
  pin.r = r;
  pin.marker.setIcon(pinIcon(r, active, pin.labelled));
  pin.marker.setZIndexOffset(active ? 1000 : pin.labelled ? 500 : 0); // labels above dots
  const element = pin.marker.getElement(); // a new element: it needs its place again
  if (element) element.dataset.placeId = id;
}

function updatePin(r) { setPin(placeId(r), r); }

function highlightPin(id, on) {
  const pin = pins.get(id);
  if (!pin) return;
  setPin(id, pin.r, on);
}

// ---- the flexible-dates strip --------------------------------------------------------------

async function loadDates(state, area) {
  const nights = nightsBetween(state.checkin, state.checkout);
  const from = [addDays(state.checkin, -3), today()].sort().at(-1);
  const q = new URLSearchParams({ lat: area.lat, lon: area.lon, radius_km: area.radius_km, nights, guests: state.guests, from, days: 14 });
  for (const name of ["currency", "kind", "min_price", "max_price"]) if (state[name]) q.set(name, state[name]);
  const strip = $("dates");
  const { ok, body } = await getJson(`/v1/search/dates?${q}`).catch(() => ({ ok: false }));
  if (!ok || !body?.dates?.length) { strip.hidden = true; return; }
  const cheapest = Math.min(...body.dates.filter((d) => d.cheapest).map((d) => Number(d.cheapest.total)));
  strip.replaceChildren(...body.dates.map((d) => {
    const day = new Date(`${d.checkin}T00:00:00Z`);
    const label = day.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
    const price = d.cheapest ? money(d.cheapest.total, d.cheapest.currency, true) : "none";
    return h("button", {
      type: "button", class: `date${d.cheapest && Number(d.cheapest.total) === cheapest ? " lowest" : ""}`,
      "aria-current": d.checkin === state.checkin ? "date" : null, dataset: { checkin: d.checkin },
      onclick: () => { writeState({ ...readState(), checkin: d.checkin, checkout: d.checkout, cursor: "" }); run(); },
    }, h("span", { class: "visually-hidden" }, "Check in "), h("span", {}, label),
    h("span", { class: "visually-hidden" }, d.cheapest ? ", from " : ", "), h("strong", {}, price),
    h("span", { class: "visually-hidden" }, `, ${d.matches} places`));
  }));
  strip.hidden = false;
}

// ---- the listing view: calendar heat-map and a night's price history -----------------------

async function openListing(key) {
  const [source, ...rest] = key.split("/");
  const id = rest.join("/");
  const base = `/v1/listings/${encodeURIComponent(source)}/${encodeURIComponent(id)}`;
  const dialog = $("listing");
  $("listing-title").textContent = "Loading…";
  $("calendar").replaceChildren();
  $("history").replaceChildren(h("p", {}, "Choose a night above."));
  if (!dialog.open) dialog.showModal();
  const start = today();
  const [listing, calendar] = await Promise.all([
    getJson(base), getJson(`${base}/calendar?start=${start}&end=${addDays(start, 90)}`),
  ]);
  if (!listing.ok) { $("listing-title").textContent = listing.body?.error || "Listing not found"; return; }
  const l = listing.body;
  $("listing-title").textContent = l.name;
  $("listing-meta").replaceChildren(`${KINDS[l.kind] || l.kind} · up to ${l.max_guests} guests · ${source} `,
    l.url ? h("a", { href: l.url, rel: "noopener", target: "_blank" }, "open on the marketplace") : "");
  drawCalendar(calendar.ok ? calendar.body.nights : [], start, base);
}

function drawCalendar(nights, start, base) {
  const byNight = new Map(nights.map((n) => [n.night, n]));
  const prices = nights.filter((n) => n.available && n.price !== null).map((n) => Number(n.price)).sort((a, b) => a - b);
  const low = prices[0] ?? 0;
  const high = prices.at(-1) ?? 1;
  const grid = h("div", { class: "cal-grid", role: "group", "aria-label": "Nights of the next 90 days" });
  for (const name of ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]) grid.append(h("span", { class: "dow", "aria-hidden": "true" }, name));
  const first = new Date(`${start}T00:00:00Z`);
  for (let i = 0; i < (first.getUTCDay() + 6) % 7; i++) grid.append(h("span", { class: "pad" }));
  for (let i = 0; i < 90; i++) {
    const night = addDays(start, i);
    const n = byNight.get(night);
    const open = n && n.available && n.price !== null;
    const share = open ? (high > low ? (Number(n.price) - low) / (high - low) : 0) : null;
    const date = new Date(`${night}T00:00:00Z`);
    const label = `${date.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" })}: ${open ? money(n.price, n.currency) : "not available"}`;
    grid.append(h("button", {
      type: "button", class: `night${open ? "" : " closed"}`, "aria-label": label, title: label, dataset: { night },
      style: open ? `--heat: ${Math.round(140 - 140 * share)}` : null,
      onclick: () => showHistory(base, night, label),
    }, date.getUTCDate() === 1 || i === 0
      ? date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" })
      : String(date.getUTCDate())));
  }
  $("calendar").replaceChildren(grid);
}

async function showHistory(base, night, label) {
  $("history-title").textContent = `Price history of ${label.split(":")[0]}`;
  const { ok, status, body } = await getJson(`${base}/history?night=${night}`);
  if (!ok) {
    $("history").replaceChildren(h("p", {}, status === 404 && !body?.changes ? "No price history is available for this night." : body?.error || "History failed"));
    return;
  }
  const changes = body.changes || [];
  if (!changes.length) { $("history").replaceChildren(h("p", {}, "No change recorded for this night.")); return; }
  $("history").replaceChildren(sparkline(changes), h("table", {},
    h("caption", { class: "visually-hidden" }, "Every change of this night, oldest first"),
    h("thead", {}, h("tr", {}, ["When", "What", "Price", "Available", "Min nights"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, changes.map((c) => h("tr", {},
      h("td", {}, new Date(c.changed_at).toLocaleString(undefined, WHEN)), h("td", {}, c.type),
      h("td", {}, c.price === null ? "–" : money(c.price, c.currency)),
      h("td", {}, c.available === null ? "–" : c.available ? "yes" : "no"),
      h("td", {}, c.min_nights ?? "–"))))));
}

/** The night's price as steps: a price holds from its change until the next one (or now). */
function sparkline(changes) {
  const points = changes.filter((c) => c.price !== null).map((c) => [Date.parse(c.changed_at), Number(c.price)]);
  if (!points.length) return h("span");
  const first = points[0][0];
  const span = Math.max(Date.now(), Date.parse(changes.at(-1).changed_at)) - first || 1;
  const prices = points.map((p) => p[1]);
  const [low, high] = [Math.min(...prices), Math.max(...prices)];
  const x = (at) => (((at - first) / span) * 300).toFixed(1);
  const y = (price) => (50 - ((price - low) / (high - low || 1)) * 45).toFixed(1);
  const steps = points.slice(1).flatMap(([at, price]) => [`H${x(at)}`, `V${y(price)}`]);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 -2 300 56");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const currency = changes.find((c) => c.currency)?.currency;
  svg.setAttribute("aria-label", `Price from ${money(low, currency)} to ${money(high, currency)}`);
  svg.innerHTML = `<path d="M0,${y(points[0][1])} ${steps.join(" ")} H300" fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke"/>`;
  return svg;
}

// ---- wiring --------------------------------------------------------------------------------

let suggestTimer = null;
$("where").addEventListener("input", () => {
  clearTimeout(suggestTimer);
  const text = $("where").value.trim();
  if (!text) return;
  suggestTimer = setTimeout(async () => {
    const { ok, body } = await getJson(`/v1/where?q=${encodeURIComponent(text)}`);
    if (!ok) return;
    $("where-suggestions").replaceChildren(...body.suggestions.map((s) => h("option", {
      value: s.name, label: [s.country, s.listings ? `${s.listings} listings` : null].filter(Boolean).join(" · "),
    })));
  }, 120);
});

$("checkin").addEventListener("change", () => {
  const checkin = $("checkin").value;
  $("checkout").min = addDays(checkin, 1);
  if ($("checkout").value <= checkin) $("checkout").value = addDays(checkin, 1);
});

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  writeState(stateFromForm());
  run();
});

for (const name of [...FILTER_FIELDS, "deals", "currency"]) {
  $(name).addEventListener("change", () => {
    if (!$("where").value.trim()) return;
    writeState(stateFromForm());
    run();
  });
}

$("next").addEventListener("click", () => {
  const state = readState();
  const stack = [...(history.state?.stack || []), state.cursor];
  history.pushState({ stack }, "", `/?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), cursor: $("next").dataset.cursor })}`);
  run().then(() => $("cards").querySelector("a")?.focus());
});
$("prev").addEventListener("click", () => {
  const stack = history.state?.stack || [];
  if (stack.length) { history.back(); return; }
  writeState({ ...readState(), cursor: "" }); // opened on a later page: go to the first
  run();
});

$("cards").addEventListener("click", (event) => {
  const link = event.target.closest("a.open-listing");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(history.state, "", link.href);
  openListing(`${link.dataset.source}/${link.dataset.listingId}`);
});
$("cards").addEventListener("mouseover", (event) => {
  const li = event.target.closest("li.card");
  if (li) highlightPin(li.dataset.placeId, true);
});
$("cards").addEventListener("mouseout", (event) => {
  const li = event.target.closest("li.card");
  if (li) highlightPin(li.dataset.placeId, false);
});
$("listing-close").addEventListener("click", () => $("listing").close());
$("listing").addEventListener("close", () => {
  const state = readState();
  if (state.listing) writeState({ ...state, listing: "" });
});

addEventListener("popstate", run);
setInterval(() => {
  for (const node of document.querySelectorAll(".fresh[data-changed-at]")) {
    if (node.dataset.changedAt) node.textContent = freshText(node.dataset.changedAt);
  }
}, 1000);

run();
