// The committee board: live map and counters of the incidents in my scope, the crews serving
// it (where they are, whether free), response-time charts per phase, league tables per grid,
// community and crew, filters and CSV export.
/* global Chart */
import { ApiError, api, token } from "./api.js";
import { language, languageToggle, problem, t } from "./i18n.js";
import { LiveConnection, showLiveStatus } from "./live.js";
import { createMap, drawAreas, incidentMarker, recolour } from "./map.js";
import { keepSignedIn, signOutButton, signedIn } from "./signin.js";
import { esc } from "./ui.js";

const OPEN = ["reported", "assigned", "acknowledged", "dispatched", "en_route", "on_site"];
const DONE = ["resolved", "verified", "closed"];
const PHASES = ["acknowledge", "arrive", "resolve", "verify"];
const LEAGUES = ["grid", "community", "crew"];
const LEAGUE_COLUMNS = ["on_time_acknowledge", "on_time_arrive", "closure_rate", "satisfaction"];
const CHILD_LEVEL = { district: "street", street: "community", community: "grid" };
const REFRESH_MS = 2000; // metrics refresh this long after the last live event
const CREW_COLOURS = { available: "#1b7f3b", busy: "#b86e00", off: "#6b6b6b" };

const $ = (id) => document.getElementById(id);
const state = {
  me: null,
  scope: null, // the scope area's feature properties
  areas: [], // areas under the scope (streets, communities, grids), for the filter
  today: null, // the server's local date, YYYY-MM-DD
  timezone: "Asia/Shanghai",
  incidents: new Map(),
  markers: new Map(),
  crews: new Map(), // id → {id, name, status, lon, lat}
  crewMarkers: new Map(),
  charts: {},
  refreshTimer: null,
  signInAgain: null, // over the board, resuming live push: keepSignedIn
};
let map;
let markerLayer;
let crewLayer;

const FILTERS = ["from", "to", "area", "category"];

function filters() {
  const { elements } = $("filters");
  return Object.fromEntries(FILTERS.map((name) => [name, elements[name].value]));
}

/** The filters live in the page's address, so a reload (F5, or the one into new rooms when the
 * scope changes) and a bookmark keep them. The form is the judge of what the address asks: an
 * area or category it does not offer, or a date that is no date, leaves that filter as it was. */
function filtersFromAddress() {
  const { elements } = $("filters");
  const asked = new URLSearchParams(location.search);
  for (const name of FILTERS) {
    const before = elements[name].value;
    if (!asked.get(name)) continue;
    elements[name].value = asked.get(name);
    if (elements[name].value !== asked.get(name)) elements[name].value = before;
  }
  // A range that ends before it starts is no range the board offers: its own dates stay.
  if (elements.from.value > elements.to.value) {
    elements.from.value = state.defaultRange.from;
    elements.to.value = state.defaultRange.to;
  }
}

function filtersToAddress() {
  const chosen = new URLSearchParams(Object.entries(filters()).filter(([, value]) => value)).toString();
  history.replaceState(null, "", `${location.pathname}${chosen ? `?${chosen}` : ""}${location.hash}`);
}

function localDate(iso) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: state.timezone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(iso));
}

// --- the live part: incidents on the map and the counters ---

function inFilter(incident) {
  const { area, category } = filters();
  return (!category || incident.category === category)
    && (!area || Object.values(incident.areas).some((a) => a?.code === area));
}

// A push says `in_scope: false` (and no more) when an incident has left this board's scope.
function shown(incident) {
  return incident.in_scope !== false && inFilter(incident) && (OPEN.includes(incident.status)
    || (DONE.includes(incident.status) && incident.times.resolved_at && localDate(incident.times.resolved_at) === state.today));
}

function applyIncident(incident) {
  const known = state.incidents.get(incident.id);
  if (known && known.version > incident.version) return;
  const marker = state.markers.get(incident.id);
  if (!shown(incident)) {
    state.incidents.delete(incident.id);
    marker?.remove();
    state.markers.delete(incident.id);
    return;
  }
  state.incidents.set(incident.id, incident);
  const open = OPEN.includes(incident.status);
  if (marker && open) recolour(marker, incident);
  else if (marker) { marker.remove(); state.markers.delete(incident.id); }
  else if (open) {
    const created = incidentMarker(incident).addTo(markerLayer);
    created.getElement()?.setAttribute("data-incident", incident.public_id);
    created.bindTooltip(() => {
      const now = state.incidents.get(incident.id) || incident;
      return `${esc(now.public_id)} ${esc(language() === "en" ? now.category_name.en : now.category_name.zh)} · ${esc(t(`status.${now.status}`))}`;
    });
    state.markers.set(incident.id, created);
  }
}

function renderCounters() {
  const all = [...state.incidents.values()];
  const open = all.filter((i) => OPEN.includes(i.status));
  $("count-open").textContent = open.length;
  $("count-red").textContent = open.filter((i) => i.sla_state === "red").length;
  $("count-escalated").textContent = open.filter((i) => i.escalation_level > 0).length;
  $("count-resolved").textContent = all.length - open.length;
}

async function pages(query) {
  const found = [];
  for (let offset = 0; ; offset += 500) {
    const page = await api(`/incidents?${new URLSearchParams({ ...query, limit: 500, offset })}`);
    found.push(...page.incidents);
    if (offset + 500 >= page.total) return found;
  }
}

async function loadIncidents() {
  const { area, category } = filters();
  const scoped = Object.fromEntries(Object.entries({ area, category }).filter(([, v]) => v));
  // Resolved today: anything reported in the last 30 days that was resolved today.
  const since = new Date(Date.parse(`${state.today}T00:00:00Z`) - 30 * 86400e3).toISOString().slice(0, 10);
  const [open, done] = await Promise.all([pages({ ...scoped, open: "true" }),
    pages({ ...scoped, status: DONE.join(","), from: `${since}T00:00:00Z` })]);
  state.incidents.clear();
  state.markers.forEach((marker) => marker.remove());
  state.markers.clear();
  [...open, ...done].forEach(applyIncident);
  renderCounters();
}

function onLiveEvent(event) {
  if (event.incident) {
    if (localDate(event.at) > state.today) state.today = localDate(event.at);
    applyIncident(event.incident);
    renderCounters();
  }
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => loadMetrics().catch(showError), REFRESH_MS);
}

// --- crews serving the scope: GET /crews once, then the live `crew` pushes ---

function crewIcon(crew) {
  return L.divIcon({ className: "crew-marker", iconSize: [24, 24],
    html: `<span data-crew="${crew.id}" data-status="${esc(crew.status)}"
      style="border-color:${CREW_COLOURS[crew.status] || CREW_COLOURS.off}">🔧</span>` });
}

function applyCrew(crew) {
  state.crews.set(crew.id, crew);
  const marker = state.crewMarkers.get(crew.id);
  if (crew.lon == null) {
    marker?.remove();
    state.crewMarkers.delete(crew.id);
  } else if (marker) {
    marker.setLatLng([crew.lat, crew.lon]);
    marker.setIcon(crewIcon(crew));
  } else {
    const created = L.marker([crew.lat, crew.lon], { icon: crewIcon(crew), keyboard: false }).addTo(crewLayer);
    created.bindTooltip(() => {
      const now = state.crews.get(crew.id);
      return `${esc(now.name)} · ${esc(t(`crew.status.${now.status}`))}`;
    });
    state.crewMarkers.set(crew.id, created);
  }
  renderCrewNote();
}

function renderCrewNote() {
  const count = (status) => [...state.crews.values()].filter((c) => c.status === status).length;
  $("crew-note").textContent = t("board.crews", { available: count("available"), busy: count("busy"), off: count("off") });
}

// The pushes are snapshots and are not replayed: after a gap the list is read again.
async function loadCrews() {
  const { crews } = await api(`/crews?${new URLSearchParams({ area: state.scope.code })}`);
  state.crews.clear();
  state.crewMarkers.forEach((marker) => marker.remove());
  state.crewMarkers.clear();
  crews.forEach((c) => applyCrew({ id: c.id, name: c.name, status: c.status, lon: c.position?.lon, lat: c.position?.lat }));
  renderCrewNote();
}

function onCrew(push) {
  applyCrew({ id: push.crew_id, name: push.name, status: push.status, lon: push.lon, lat: push.lat });
}

// --- metrics: charts and league tables ---

function metricsQuery(extra) {
  const { from, to, area, category } = filters();
  const query = { from, to, area: area || state.scope.code, category, ...extra };
  return new URLSearchParams(Object.entries(query).filter(([, v]) => v));
}

function days(from, to) {
  const out = [];
  for (let day = Date.parse(`${from}T00:00:00Z`); day <= Date.parse(`${to}T00:00:00Z`); day += 86400e3) {
    out.push(new Date(day).toISOString().slice(0, 10));
  }
  return out;
}

function drawCharts(table) {
  const labels = days(table.from, table.to);
  const byDay = new Map(table.rows.map((row) => [row.bucket, row]));
  const minutes = (seconds) => (seconds == null ? null : Math.round(seconds / 6) / 10);
  for (const phase of PHASES) {
    const series = (p) => labels.map((day) => minutes(byDay.get(day)?.phases[phase]?.[p]));
    const datasets = [
      { label: "p50", data: series("p50_s"), borderColor: "#1f5fa8", backgroundColor: "#1f5fa8", spanGaps: true },
      { label: "p90", data: series("p90_s"), borderColor: "#b3261e", backgroundColor: "#b3261e", borderDash: [6, 4], spanGaps: true },
    ];
    const chart = state.charts[phase];
    if (chart) {
      chart.data.labels = labels.map((d) => d.slice(5));
      chart.data.datasets.forEach((set, i) => { set.data = datasets[i].data; });
      chart.update();
    } else {
      state.charts[phase] = new Chart($(`chart-${phase}`), {
        type: "line",
        data: { labels: labels.map((d) => d.slice(5)), datasets },
        options: { animation: false, maintainAspectRatio: false, responsive: true,
          scales: { y: { beginAtZero: true, ticks: { color: "#111" } }, x: { ticks: { color: "#111", maxTicksLimit: 8 } } },
          plugins: { legend: { labels: { color: "#111", boxWidth: 18 } } } },
      });
    }
  }
}

const percent = (value) => (value == null ? "—" : `${Math.round(value * 100)}%`);

function drawLeague(level, table) {
  const visible = table.rows.filter((row) => !row.hidden)
    .sort((a, b) => (b.on_time_arrive ?? -1) - (a.on_time_arrive ?? -1) || b.count - a.count);
  const name = (row) => row.name || (level === "crew" && !row.group ? t("board.no_crew") : row.group);
  const body = visible.map((row) => `<tr data-group="${esc(row.group)}"><td>${esc(name(row))}</td>
    <td class="num">${row.count}</td>${LEAGUE_COLUMNS.map((c) => `<td class="num">${percent(row[c])}</td>`).join("")}</tr>`);
  $(`league-${level}`).querySelector(".table").innerHTML = `
    <table><thead><tr><th>${esc(t("board.col.name"))}</th><th class="num">${esc(t("board.col.count"))}</th>
      ${LEAGUE_COLUMNS.map((c) => `<th class="num">${esc(t(`board.col.${c}`))}</th>`).join("")}</tr></thead>
    <tbody>${body.join("") || `<tr><td colspan="${LEAGUE_COLUMNS.length + 2}">${esc(t("board.no_rows"))}</td></tr>`}</tbody></table>
    <p class="note" data-hidden="${table.hidden}">${esc(t("board.min_sample", { min: table.min_sample }))}${
      table.hidden ? ` · ${esc(t("board.hidden", { hidden: table.hidden, min: table.min_sample }))}` : ""}</p>`;
}

async function loadMetrics() {
  const groupBy = state.scope.level;
  // The exports first: they ask what the charts ask, so they are right (or refused for the
  // same reason) even while the charts have not loaded.
  $("csv-times").href = `/api/v1/metrics/response-times?${metricsQuery({ group_by: groupBy, bucket: "day", format: "csv" })}`;
  $("csv-rates").href = `/api/v1/metrics/rates?${metricsQuery({ group_by: "grid", format: "csv" })}`;
  const [times, ...leagues] = await Promise.all([
    api(`/metrics/response-times?${metricsQuery({ group_by: groupBy, bucket: "day" })}`),
    ...LEAGUES.map((level) => api(`/metrics/rates?${metricsQuery({ group_by: level })}`)),
  ]);
  drawCharts(times);
  LEAGUES.forEach((level, i) => drawLeague(level, leagues[i]));
}

/** CSV needs the bearer token, so a plain link cannot fetch it: download it and save it. */
async function download(event) {
  event.preventDefault();
  const link = event.currentTarget;
  // No address yet (the board still starting): `link.href` would be the page itself, saved
  // as export.csv (found by a live audit).
  if (!link.getAttribute("href")) return;
  const response = await fetch(link.href, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) {
    // The server's own reason, in the user's words (a 401 asks for a new sign-in).
    return showError(new ApiError(response.status, (await response.json().catch(() => null))?.error));
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "export.csv";
  const url = URL.createObjectURL(await response.blob());
  const save = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A read or export the server refused, said until a read works again (a banner of its own:
 *  the live connection's, shared before, hid it as soon as the socket came up). */
function showError(error) {
  const banner = $("problem");
  banner.textContent = problem(error);
  banner.hidden = false;
  if (error instanceof ApiError && error.status === 401) state.signInAgain?.(error);
}

// --- setup ---

async function areasUnder(code, level) {
  const found = [];
  let parents = [code];
  for (let child = CHILD_LEVEL[level]; child; child = CHILD_LEVEL[child]) {
    const pagesOf = await Promise.all(parents.map((parent) => api(`/areas?${new URLSearchParams({ parent, level: child, limit: 5000 })}`)));
    const features = pagesOf.flatMap((page) => page.features);
    found.push(...features.map((f) => f.properties));
    parents = features.map((f) => f.properties.code);
  }
  return found;
}

function fillFilters(categories) {
  const form = $("filters");
  const chosen = { area: form.elements.area.value, category: form.elements.category.value };
  const levelName = (level) => t(`board.level.${level}`);
  form.elements.area.innerHTML = `<option value="">${esc(t("board.area.all"))}</option>`
    + ["street", "community", "grid"].map((level) => {
      const options = state.areas.filter((a) => a.level === level);
      return options.length ? `<optgroup label="${esc(levelName(level))}">${options.map((a) =>
        `<option value="${esc(a.code)}">${esc(a.name)}</option>`).join("")}</optgroup>` : "";
    }).join("");
  form.elements.category.innerHTML = `<option value="">${esc(t("board.category.all"))}</option>`
    + categories.map((c) => `<option value="${esc(c.code)}">${esc(language() === "en" ? c.name_en : c.name_zh)}</option>`).join("");
  form.elements.area.value = chosen.area;
  form.elements.category.value = chosen.category;
}

async function start() {
  languageToggle($("lang"));
  const me = await signedIn({ form: $("signin"), roles: ["committee", "admin", "operator"] });
  state.me = me;
  const storageKey = `griddispatch.board.since.${me.id}`;
  signOutButton($("signout"), storageKey);
  $("signout").hidden = false;
  $("take-calls").hidden = !["operator", "admin"].includes(me.role); // they take the hotline's calls too
  $("board").hidden = false;

  // The server's "today" and default date range come with any metrics answer.
  const scopeCode = me.scope_area_code || (await api("/areas?level=district&limit=1")).features[0].properties.code;
  const [scope, probe, categories] = await Promise.all([api(`/areas/${encodeURIComponent(scopeCode)}`),
    api(`/metrics/rates?${new URLSearchParams({ group_by: "category", area: scopeCode })}`), api("/categories")]);
  state.scope = scope.properties;
  state.today = probe.to;
  state.timezone = probe.timezone;
  $("who").textContent = `${me.display_name} · ${t("board.scope", { name: state.scope.name })}`;
  $("filters").elements.from.value = probe.from;
  $("filters").elements.to.value = probe.to;
  state.defaultRange = { from: probe.from, to: probe.to };
  state.areas = await areasUnder(state.scope.code, state.scope.level);
  fillFilters(categories.categories);
  filtersFromAddress();

  map = createMap($("map"));
  markerLayer = L.layerGroup().addTo(map);
  crewLayer = L.layerGroup().addTo(map);
  const grids = state.scope.level === "grid" ? [state.scope] : state.areas.filter((a) => a.level === "grid");
  const parents = [...new Set(grids.map((g) => g.parent_code))];
  const layers = await Promise.all(parents.map((parent) => drawAreas(map, { parent, level: "grid" })));
  const bounds = L.latLngBounds([]);
  layers.forEach((layer) => layer.eachLayer((shape) => bounds.extend(shape.getBounds())));
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [10, 10] });

  const live = new LiveConnection({ token: token(), storageKey });
  // Once signed in again the board is read afresh: what changed meanwhile shows at once.
  state.signInAgain = keepSignedIn(live, {
    form: $("signin"), roles: ["committee", "admin", "operator"],
    onSignedIn: () => {
      $("offline").hidden = true;
      $("problem").hidden = true;
      return Promise.all([loadIncidents(), loadMetrics(), loadCrews()]).catch(showError);
    },
  });
  live.addEventListener("event", (e) => onLiveEvent(e.detail));
  live.addEventListener("crew", (e) => onCrew(e.detail));
  let wasOffline = false;
  live.addEventListener("status", (e) => {
    showLiveStatus($("offline"), e.detail);
    if (e.detail.online && wasOffline) loadCrews().catch(showError);
    wasOffline = !e.detail.online;
  });
  live.addEventListener("resync", () => Promise.all([loadIncidents(), loadMetrics()]).catch(showError));
  window.addEventListener("beforeunload", () => live.close());

  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    filtersToAddress();
    Promise.all([loadIncidents(), loadMetrics()]).then(() => { $("problem").hidden = true; }).catch(showError);
  });
  $("csv-times").addEventListener("click", download);
  $("csv-rates").addEventListener("click", download);
  document.addEventListener("languagechange", () => {
    fillFilters(categories.categories);
    $("who").textContent = `${me.display_name} · ${t("board.scope", { name: state.scope.name })}`;
    renderCrewNote();
    loadMetrics().catch(showError);
  });

  // A read the server refuses (a date in the address before 1970, say) is said on the
  // banner; the board stays usable (it stood half-drawn, with an uncaught error).
  await Promise.all([loadIncidents(), loadMetrics(), loadCrews()]).catch(showError);
  markerLayer.eachLayer((marker) => marker.bringToFront());
  document.body.dataset.ready = "true";
}

start();
