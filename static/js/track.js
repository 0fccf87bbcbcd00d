// The reporter's tracking page (/track/<token>): the report's state and timeline, live; at the
// end a 1–5 satisfaction rating. Reads GET /track/<token>, then follows the live push from the
// last seq it read, so nothing between the two is missed.
import { ApiError, api, retrying } from "./api.js";
import { language, languageToggle, problem, t } from "./i18n.js";
import { LiveConnection, showLiveStatus } from "./live.js";
import { localTime } from "./ui.js";

const TOKEN = document.body.dataset.trackingToken;
const STORAGE_KEY = `griddispatch.track.${TOKEN}.since`;
const RATEABLE = ["resolved", "verified", "closed"];
// The deadline that matters to the reporter now, by status.
const NEXT_DEADLINE = {
  reported: "acknowledge", assigned: "acknowledge", acknowledged: "arrive", dispatched: "arrive",
  en_route: "arrive", on_site: "resolve",
};
const NAMED = { assigned: "manager", reassigned: "manager", handed_over: "manager", dispatched: "crew" };

const $ = (id) => document.getElementById(id);
let incident = null;
let yours = null; // the public id of the report this token was given for
const events = new Map(); // seq → event (with the incident as it stood, when pushed live)

function personName(person) {
  return person?.display_name || person?.name || "";
}

function eventLabel(event, latestNamed) {
  const role = NAMED[event.type];
  // An event pushed live carries the incident as it stood then; one read over REST does not,
  // so only the newest assignment can be named (from the incident as it stands now).
  const snapshot = event.incident || (latestNamed[role] === event.seq ? incident : null);
  return t(`event.${event.type}`, { name: role ? personName(snapshot?.[role]) : "", rating: event.data?.rating ?? "" });
}

function renderTimeline() {
  const shown = [...events.values()].filter((e) => e.incident_id === incident.id && t(`event.${e.type}`) !== `event.${e.type}`)
    .sort((a, b) => a.seq - b.seq);
  const latestNamed = {};
  for (const event of shown) if (NAMED[event.type]) latestNamed[NAMED[event.type]] = event.seq;
  $("timeline").replaceChildren(...shown.map((event) => {
    const item = document.createElement("li");
    item.dataset.type = event.type;
    const time = Object.assign(document.createElement("time"), { dateTime: event.at, textContent: localTime(event.at) });
    item.append(time, eventLabel(event, latestNamed).trim());
    if (event.data?.note) item.append(Object.assign(document.createElement("span"), { className: "note", textContent: event.data.note }));
    return item;
  }));
}

function render() {
  $("summary").hidden = false;
  $("progress").hidden = false;
  $("status").textContent = t(`status.${incident.status}`);
  $("status").dataset.status = incident.status;
  $("number").textContent = incident.public_id;
  $("merged-note").hidden = !yours || yours === incident.public_id;
  $("merged-note").textContent = t("track.merged", { yours });
  $("category").textContent = language() === "en" ? incident.category_name.en : incident.category_name.zh;
  const areas = incident.areas;
  $("place").textContent = [areas.building?.name, areas.unit?.name].filter(Boolean).join(" ")
    || incident.address || [areas.community?.name, areas.grid?.name].filter(Boolean).join(" ");
  $("manager").textContent = personName(incident.manager) || "—";
  $("crew").textContent = personName(incident.crew) || "—";
  const phase = NEXT_DEADLINE[incident.status];
  const due = phase && incident.deadlines[`${phase}_due`];
  $("deadline").textContent = due ? t(`track.deadline.${phase}`, { time: localTime(due) }) : "";
  renderTimeline();
  renderRating();
}

function renderRating() {
  if (yours && yours !== incident.public_id) {
    // Merged into another report: its own reporter rates the fix (the server says so too).
    $("rated").hidden = $("rating").hidden = true;
    return;
  }
  const ordered = [...events.values()].filter((e) => e.incident_id === incident.id).sort((a, b) => a.seq - b.seq);
  const last = ordered.findLast((e) => e.type === "rated");
  // A low rating sends the job back; once it is fixed again, the new fix is rated afresh.
  const rated = last && !ordered.some((e) => e.type === "resolved" && e.seq > last.seq) ? last : null;
  $("rated").hidden = !rated;
  if (rated) {
    $("rated-text").textContent = t("track.rated", { n: rated.data?.rating ?? incident.rating });
    $("rework").hidden = !ordered.some((e) => e.type === "rework" && e.seq > rated.seq);
  }
  $("rating").hidden = Boolean(rated) || !RATEABLE.includes(incident.status);
}

function buildStars() {
  const fieldset = document.querySelector(".stars");
  fieldset.querySelectorAll("label").forEach((label) => label.remove());
  for (let n = 1; n <= 5; n += 1) {
    const input = Object.assign(document.createElement("input"), { type: "radio", name: "rating", value: String(n) });
    input.setAttribute("aria-label", t("track.rate.stars", { n }));
    const face = document.createElement("span");
    face.append("★", String(n));
    face.setAttribute("aria-hidden", "true");
    const label = document.createElement("label");
    label.append(input, face);
    fieldset.append(label);
  }
}

function take(view) {
  const { events: timeline, your_report: report, ...rest } = view;
  incident = rest;
  yours = report;
  for (const event of timeline || []) if (!events.has(event.seq)) events.set(event.seq, event);
}

async function load() {
  take(await api(`/track/${encodeURIComponent(TOKEN)}`));
  render();
}

function receive(event) {
  if (event.type === "merged" && event.incident?.id === incident.id) {
    // Merged into another report: from now on the page follows that one, as the server does.
    retrying(load).catch(() => {}); // asked again through an outage; a 4xx cannot get better
    return;
  }
  events.set(event.seq, event);
  if (event.incident?.id === incident.id && event.incident.version >= incident.version) {
    incident = { ...incident, ...event.incident };
  }
  render();
}

$("rate").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const rating = Number(form.elements.rating.value);
  $("rate-error").textContent = "";
  if (!rating) {
    $("rate-error").textContent = t("track.rate.pick");
    return;
  }
  $("rate-submit").disabled = true;
  try {
    take(await api(`/track/${encodeURIComponent(TOKEN)}/rating`, {
      method: "POST", body: { rating, comment: $("comment").value.trim() },
    }));
    render();
  } catch (error) {
    $("rate-error").textContent = problem(error);
  } finally {
    $("rate-submit").disabled = false;
  }
});

document.addEventListener("languagechange", () => {
  buildStars();
  if (incident) render();
});

async function start() {
  languageToggle($("lang"));
  buildStars();
  try {
    // Asked again through an outage: a 503 on the first read left a blank page.
    await retrying(load, { onRetry: () => showLiveStatus($("offline"), { state: "offline" }) });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("unknown").hidden = false;
      return;
    }
    throw error;
  }
  // Follow the push from the newest event already read: the server replays anything after it.
  sessionStorage.setItem(STORAGE_KEY, String(Math.max(0, ...events.keys())));
  const live = new LiveConnection({ trackingToken: TOKEN, storageKey: STORAGE_KEY });
  live.addEventListener("event", (e) => receive(e.detail));
  live.addEventListener("status", (e) => {
    showLiveStatus($("offline"), e.detail); // data-state: for tests and styling hooks
  });
  live.addEventListener("resync", () => retrying(load).catch(() => {})); // a 4xx cannot get better
}

start();
