// The crew member's phone app (/crew): my crew's assignments, live; one tap for on the way,
// on site and resolved (with expected_version, so a stale card never overwrites newer work);
// optional position sharing, off until the member turns it on.
import { ApiError, api, retrying, takeAction, token, worthRetrying } from "./api.js";
import { language, languageToggle, problem, t } from "./i18n.js";
import { LiveConnection, showLiveStatus } from "./live.js";
import { createMap, drawAreas, highlight, incidentMarker } from "./map.js";
import { keepForReload, keepSignedIn, keptOverReload, signOutButton, signedIn } from "./signin.js";
import { localTime } from "./ui.js";

const POSITION_EVERY_MS = 15000;
const ACTIONS = [ // action, the states it may start from (as the server's lifecycle allows)
  ["en_route", ["dispatched"]],
  ["on_site", ["dispatched", "en_route"]],
  ["resolve", ["on_site"]],
];
const SHOWN = ["dispatched", "en_route", "on_site", "resolved"];
const ORDER = { on_site: 0, en_route: 1, dispatched: 2, resolved: 3 };

const $ = (id) => document.getElementById(id);
const jobs = new Map(); // incident id → {incident, card}
let crewId = null;
let categories = {};
let signInAgain; // over the app, resuming live push: keepSignedIn

function element(tag, props = {}, ...children) {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

// --- assignments ---

// A push says `in_scope: false` (and no more) when another crew was sent instead.
function isMine(incident) {
  return incident.in_scope !== false && incident.crew?.id === crewId && SHOWN.includes(incident.status);
}

/** Take a newer copy of an incident (from REST or the live push); older copies are ignored. */
function upsert(incident) {
  const job = jobs.get(incident.id);
  if (job && job.incident.version > incident.version) return;
  if (!isMine(incident)) {
    job?.card.remove();
    jobs.delete(incident.id);
  } else if (job) {
    job.incident = incident;
    fillCard(job);
  } else {
    const created = { incident, card: createCard(incident) };
    jobs.set(incident.id, created);
    fillCard(created);
  }
  arrange();
}

function arrange() {
  const ordered = [...jobs.values()].sort((a, b) => ORDER[a.incident.status] - ORDER[b.incident.status]
    || String(a.incident.deadlines.arrive_due).localeCompare(String(b.incident.deadlines.arrive_due)));
  $("jobs").append(...ordered.map((job) => job.card)); // moves existing cards, keeping their maps
  $("empty").hidden = jobs.size > 0;
}

function createCard(incident) {
  const card = element("li", { className: "job" });
  card.dataset.id = incident.id;
  card.innerHTML = `<h3><span class="icon" aria-hidden="true"></span><span class="category"></span><span class="id"></span></h3>
    <p class="where"></p><p class="description"></p><p class="state"></p><p class="deadline"></p>
    <p class="message" role="alert"></p><div class="actions"></div>
    <div class="links"><button type="button" class="show-map" aria-expanded="false"></button><a class="button navigate"></a></div>
    <div class="job-map" hidden></div>`;
  for (const [action] of ACTIONS) {
    const button = element("button", { type: "button" });
    button.dataset.action = action;
    button.addEventListener("click", () => act(incident.id, action));
    card.querySelector(".actions").append(button);
  }
  card.querySelector(".show-map").addEventListener("click", () => toggleMap(jobs.get(incident.id)));
  return card;
}

function fillCard({ incident, card }) {
  const { areas } = incident;
  const category = categories[incident.category];
  card.dataset.status = incident.status;
  card.dataset.version = incident.version;
  card.dataset.sla = incident.sla_state || "green";
  card.querySelector(".icon").textContent = category?.icon || "";
  card.querySelector(".category").textContent = language() === "en" ? incident.category_name.en : incident.category_name.zh;
  card.querySelector(".id").textContent = incident.public_id;
  card.querySelector(".where").textContent = [areas.building?.name, areas.unit?.name, incident.address].filter(Boolean).join(" ")
    || [areas.community?.name, areas.grid?.name].filter(Boolean).join(" ");
  card.querySelector(".description").textContent = incident.description || "";
  card.querySelector(".state").textContent = t(`status.${incident.status}`);
  const due = incident.status === "on_site" ? "resolve" : "arrive";
  card.querySelector(".deadline").textContent = incident.status === "resolved" ? ""
    : t(`crew.deadline.${due}`, { time: localTime(incident.deadlines[`${due}_due`]) });
  for (const [action, from] of ACTIONS) {
    const button = card.querySelector(`[data-action="${action}"]`);
    button.textContent = t(`crew.${action}`);
    button.disabled = !from.includes(incident.status);
  }
  const { lat, lon } = incident.location;
  card.querySelector(".show-map").textContent = t("crew.map");
  const navigate = card.querySelector(".navigate");
  navigate.textContent = t("crew.navigate");
  navigate.href = `geo:${lat},${lon}`; // opens the phone's map app; geo: URIs are WGS84
}

async function toggleMap(job) {
  const box = job.card.querySelector(".job-map");
  const button = job.card.querySelector(".show-map");
  box.hidden = !box.hidden;
  button.setAttribute("aria-expanded", String(!box.hidden));
  if (box.hidden || job.map) return;
  const { lat, lon } = job.incident.location;
  job.map = createMap(box, { center: [lat, lon], zoom: 18 });
  const d = 0.002;
  const layer = await drawAreas(job.map, { level: "building", bbox: [lon - d, lat - d, lon + d, lat + d].join(",") }, { style: "building" });
  layer.eachLayer((shape) => highlight(shape, shape.feature.properties.code === job.incident.areas.building?.code));
  incidentMarker(job.incident).addTo(job.map);
}

function say(id, message) {
  const card = jobs.get(id)?.card;
  if (card) card.querySelector(".message").textContent = message;
}

async function act(id, action) {
  const job = jobs.get(id);
  job.card.querySelectorAll(".actions button").forEach((button) => { button.disabled = true; });
  say(id, "");
  try {
    upsert(await takeAction(job.incident, action, {}, { onRetry: () => say(id, t("net.retrying")) }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      fillCard(job);
      await signInAgain(error); // nothing was done: the same tap, once signed in again
      return act(id, action);
    }
    if (worthRetrying(error)) {
      // Perhaps done with only the answer lost: show the job as it now stands, if it can be read.
      fillCard(job);
      await api(`/incidents/${id}`).then(upsert, () => {});
      say(id, t("crew.failed", { message: problem(error) }));
      return;
    }
    if (error.status === 409 || error.status === 404 || error.status === 403) {
      // Someone else moved it on (or took it away): show it as it stands now.
      try {
        upsert(await api(`/incidents/${id}`));
      } catch {
        jobs.get(id)?.card.remove();
        jobs.delete(id);
        arrange();
      }
    } else {
      fillCard(job);
    }
    if (!jobs.has(id)) {
      // Its card is gone (cancelled, merged or given to another crew meanwhile): said at the
      // top, not in the card that was just removed (found by a live audit).
      $("notice").textContent = t("crew.gone", { name: job.card.querySelector(".where").textContent });
      return;
    }
    say(id, error.code === "stale_version" ? t("crew.stale") : t("crew.failed", { message: problem(error) }));
  }
}

async function loadJobs() {
  // Asked again through an outage (a 503 on the first read left the list empty for good).
  const [list, known] = await retrying(() => Promise.all([
    api("/incidents?mine=true&open=true&limit=500"),
    api("/categories"),
  ]), { onRetry: () => { $("notice").textContent = t("net.retrying"); } });
  if ($("notice").textContent === t("net.retrying")) $("notice").textContent = "";
  categories = Object.fromEntries(known.categories.map((c) => [c.code, c]));
  list.incidents.forEach(upsert);
  arrange();
}

// --- position sharing ---

const sharing = { watch: null, timer: null, last: 0, coords: null };

function shareStatus(text) {
  $("share-status").textContent = text;
}

async function sendPosition() {
  sharing.timer = null;
  sharing.last = Date.now();
  const { longitude: lon, latitude: lat } = sharing.coords;
  try {
    const crew = await api(`/crews/${crewId}/position`, { method: "POST", body: { lon, lat } });
    shareStatus(t("crew.share.sent", { time: localTime(crew.position?.at) }));
  } catch (error) {
    shareStatus(t("crew.share.failed", { message: problem(error) }));
    if (error instanceof ApiError && error.status === 401) await signInAgain(error); // the next one goes
  }
}

/** At most one position per POSITION_EVERY_MS; the newest one waiting is sent when the time comes. */
function positionSeen(coords) {
  sharing.coords = coords;
  const wait = sharing.last + POSITION_EVERY_MS - Date.now();
  if (wait <= 0) sendPosition();
  else sharing.timer ??= setTimeout(sendPosition, wait);
}

function setSharing(on) {
  if (on && navigator.geolocation) {
    sharing.watch = navigator.geolocation.watchPosition(
      (position) => positionSeen(position.coords),
      (error) => shareStatus(t("crew.share.failed", { message: error.message })),
      { enableHighAccuracy: true, maximumAge: 10000 },
    );
    return;
  }
  if (sharing.watch !== null) navigator.geolocation.clearWatch(sharing.watch);
  clearTimeout(sharing.timer);
  Object.assign(sharing, { watch: null, timer: null });
  $("share").checked = false;
  shareStatus(on ? t("report.gps.unsupported") : "");
}

/** Sharing is off until the member turns it on, and a reload (a new page) turns it off, but
 * not the one the app does by itself when the member moves to another crew: that keeps it on,
 * for this member, once. */
const SHARING_KEY = "griddispatch.crew.sharing";

function keepSharing(userId) {
  if (sharing.watch !== null) keepForReload(SHARING_KEY, userId, true);
}

function resumeSharing(userId) {
  if (!keptOverReload(SHARING_KEY, userId)) return;
  $("share").checked = true;
  setSharing(true);
}

// --- start ---

function live(userId) {
  const storageKey = `griddispatch.crew.${userId}.since`;
  // Start from "now": the assignments are read over REST once the server has let us in,
  // and anything pushed from then on is newer (or dropped by version).
  sessionStorage.removeItem(storageKey);
  const connection = new LiveConnection({ token: token(), storageKey });
  signInAgain = keepSignedIn(connection, { form: $("signin"), roles: ["crew"], beforeReload: () => keepSharing(userId) });
  let loaded = false; // read since the server let us in: nothing pushed is missed from then on
  connection.addEventListener("replayed", () => {
    if (!loaded) loadJobs();
    loaded = true;
  });
  // A reload that fails leaves the list as it was (retried through an outage inside).
  connection.addEventListener("resync", () => loadJobs().catch(() => {}));
  connection.addEventListener("status", (e) => {
    showLiveStatus($("offline"), e.detail);
    // Not let in yet (websockets blocked on this network, say): the jobs as they stand, read
    // again once in. An empty list under "offline" would read as "nothing to do".
    if (e.detail.state === "offline" && !loaded) loadJobs().catch(() => {}); // the banner says why
  });
  connection.addEventListener("event", ({ detail }) => {
    const known = jobs.has(detail.incident.id);
    upsert(detail.incident);
    if (!known && jobs.has(detail.incident.id)) {
      $("notice").textContent = t("crew.new", { name: $("jobs").querySelector(`[data-id="${detail.incident.id}"] .where`).textContent });
      navigator.vibrate?.(200);
    }
  });
  return storageKey;
}

async function start() {
  languageToggle($("lang"));
  const user = await signedIn({ form: $("signin"), roles: ["crew"] });
  crewId = user.crew_id;
  const crew = await api(`/crews/${crewId}`);
  $("who").textContent = `${user.display_name} · ${crew.name}`;
  $("app").hidden = false;
  $("signout").hidden = false;
  signOutButton($("signout"), live(user.id));
  $("share").addEventListener("change", (e) => setSharing(e.target.checked));
  resumeSharing(user.id);
  document.addEventListener("languagechange", () => jobs.forEach(fillCard));
}

start();
