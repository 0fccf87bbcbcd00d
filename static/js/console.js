// The grid manager's console: a live queue of the incidents of my grids sorted by urgency, the
// map of my grids, and the selected incident with its one-tap actions.
import { ApiError, api, retrying, takeAction, token, worthRetrying } from "./api.js";
import { has, language, languageToggle, problem, t } from "./i18n.js";
import { LiveConnection, showLiveStatus } from "./live.js";
import { createMap, drawAreas, incidentMarker, recolour } from "./map.js";
import { keepForReload, keepSignedIn, keptOverReload, signOutButton, signedIn } from "./signin.js";
import { anchorServerTime, beep, countdown, esc, localTime, observeServerTime, serverNow, unlockAudio } from "./ui.js";

// The statuses a manager still has work on (resolved: waiting to be verified), and the
// states each action starts from (as the lifecycle allows them; the server has the last word).
const QUEUE_STATUSES = ["reported", "assigned", "acknowledged", "dispatched", "en_route", "on_site", "resolved"];
const OPEN = QUEUE_STATUSES.slice(0, 6);
const ALLOWED_FROM = {
  acknowledge: ["assigned", "dispatched", "en_route", "on_site"],
  dispatch: ["assigned", "acknowledged", "dispatched", "en_route"],
  reassign: ["reported", "assigned", "acknowledged"],
  merge: OPEN,
  verify: ["resolved"],
  rework: ["resolved", "verified"],
  cancel: OPEN,
};
const SLA_RANK = { red: 0, amber: 1, green: 2 };
const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
const DEADLINE_OF = { acknowledge_due: "acknowledged_at", arrive_due: "on_site_at",
  resolve_due: "resolved_at", verify_due: "verified_at" };

const $ = (id) => document.getElementById(id);
const state = {
  me: null,
  incidents: new Map(), // id → incident, as last seen (highest version)
  markers: new Map(),
  fresh: new Set(), // ids that arrived live and have not been opened yet
  phones: new Map(), // id → the reporter's whole phone, read over REST
  selected: null,
  recommendation: null, // the selected incident's latest crew ranking (event data)
  crews: [],
  grids: [],
  busy: false,
};
let map;
let markerLayer;
let signInAgain; // over the console, resuming live push: keepSignedIn

/** The deadline that comes next for this incident: {name, at} or null. */
export function nextDeadline(incident) {
  if (incident.paused) return null;
  const pending = Object.entries(DEADLINE_OF)
    .filter(([due, done]) => incident.deadlines[due] && !incident.times[done])
    .map(([due]) => ({ name: due, at: Date.parse(incident.deadlines[due]) }));
  pending.sort((a, b) => a.at - b.at);
  return pending[0] || null;
}

function urgency(a, b) {
  return (SLA_RANK[a.sla_state] ?? 2) - (SLA_RANK[b.sla_state] ?? 2)
    || (PRIORITY_RANK[a.priority] ?? 2) - (PRIORITY_RANK[b.priority] ?? 2)
    || (nextDeadline(a)?.at ?? Infinity) - (nextDeadline(b)?.at ?? Infinity)
    || Date.parse(a.times.created_at) - Date.parse(b.times.created_at);
}

// A push says `in_scope: false` (and no more) when an incident has left this manager's grids.
function mine(incident) {
  return incident.in_scope !== false && QUEUE_STATUSES.includes(incident.status)
    && (incident.manager?.id === state.me.id || state.me.grids.includes(incident.areas.grid?.code));
}

const categoryName = (incident) => (language() === "en" ? incident.category_name.en : incident.category_name.zh);

// --- the queue and the markers ---

/** Take an incident as the server now shows it; older versions than the one we hold are ignored. */
function forget(id) {
  state.incidents.delete(id);
  state.markers.get(id)?.remove();
  state.markers.delete(id);
}

function applyIncident(incident, { live = false } = {}) {
  const known = state.incidents.get(incident.id);
  if (known && known.version > incident.version) return false;
  if (!mine(incident)) {
    forget(incident.id);
    return Boolean(known);
  }
  state.incidents.set(incident.id, incident);
  const marker = state.markers.get(incident.id);
  if (marker) {
    recolour(marker, incident);
  } else {
    const created = incidentMarker(incident).addTo(markerLayer).on("click", () => select(incident.id));
    created.getElement()?.setAttribute("data-incident", incident.public_id);
    // Leaflet puts a tooltip's string in as HTML: the names are data, so escaped.
    created.bindTooltip(() => `${esc(incident.public_id)} ${esc(categoryName(state.incidents.get(incident.id) || incident))}`);
    state.markers.set(incident.id, created);
  }
  if (!known && live) {
    state.fresh.add(incident.id);
    beep();
  }
  return true;
}

function renderQueue() {
  const list = $("queue");
  const incidents = [...state.incidents.values()].sort(urgency);
  $("queue-count").textContent = incidents.length;
  $("queue-empty").hidden = incidents.length > 0;
  const items = incidents.map((incident) => {
    let item = list.querySelector(`li[data-id="${incident.id}"]`);
    if (!item) {
      item = document.createElement("li");
      item.dataset.id = incident.id;
      item.innerHTML = '<button type="button" class="card"></button>';
      item.firstChild.addEventListener("click", () => select(incident.id));
    }
    const card = item.firstChild;
    const deadline = nextDeadline(incident);
    card.dataset.sla = incident.sla_state;
    card.dataset.status = incident.status;
    card.dataset.publicId = incident.public_id;
    card.classList.toggle("fresh", state.fresh.has(incident.id));
    card.setAttribute("aria-current", String(state.selected === incident.id));
    card.innerHTML = `
      <span class="top"><span>${esc(categoryName(incident))}</span>
        <span class="chip sla-${esc(incident.sla_state)}">${esc(t(`sla.${incident.sla_state}`))}</span></span>
      <span class="meta">${esc(incident.public_id)} · ${esc(t(`status.${incident.status}`))} · ${esc(t(`priority.${incident.priority}`))}</span><br>
      <span class="meta">${esc(incident.areas.building?.name || incident.address || incident.areas.grid?.name || "")}</span><br>
      ${deadline ? `<span class="meta">${esc(t(`console.due.${deadline.name}`))}</span>
        <span class="countdown" data-due="${deadline.at}"></span>` : ""}`;
    return item;
  });
  const current = [...list.children];
  if (items.length !== current.length || items.some((item, i) => item !== current[i])) list.replaceChildren(...items);
  tick();
}

/** Refresh every countdown from the server's clock. */
function tick() {
  const now = serverNow();
  document.querySelectorAll(".countdown[data-due]").forEach((el) => {
    const left = Number(el.dataset.due) - now;
    el.textContent = left < 0 ? t("console.overdue", { time: countdown(-left) }) : countdown(left);
    el.classList.toggle("late", left < 0);
  });
}

async function loadQueue() {
  const incidents = [];
  for (let offset = 0; ; offset += 500) {
    const sent = Date.now();
    const page = await api(`/incidents?${new URLSearchParams({ status: QUEUE_STATUSES.join(","), limit: 500, offset })}`);
    if (offset === 0) anchorServerTime(page.now, sent, Date.now());
    incidents.push(...page.incidents);
    if (offset + 500 >= page.total) break;
  }
  const seen = new Set(incidents.map((i) => i.id));
  for (const id of [...state.incidents.keys()]) {
    if (!seen.has(id)) applyIncident({ ...state.incidents.get(id), status: "closed", version: Infinity });
  }
  incidents.forEach((incident) => applyIncident(incident));
  renderQueue();
  if (state.selected) renderDetail();
}

function onLiveEvent(event) {
  observeServerTime(event.at);
  if (!event.incident) return;
  const changed = applyIncident(event.incident, { live: true });
  if (!changed) return;
  renderQueue();
  if (state.selected === event.incident.id) {
    if (event.data?.ranking) state.recommendation = event.data;
    renderDetail();
  }
}

// A crew working in my grids went busy, off or free: the choice of another crew says so at
// once. (Pushes come for the crews serving my grids; the others are read with each incident.)
function onCrew(crew) {
  const known = state.crews.find((c) => c.id === crew.crew_id);
  if (!known || known.status === crew.status) return;
  known.status = crew.status;
  if (state.selected) renderDetail();
}

// --- the selected incident ---

// Not this manager's any more (another grid's now, or gone); a 403 for the role is not that.
const movedAway = (error) => error instanceof ApiError && (error.status === 404 || error.code === "out_of_scope");

async function select(id) {
  state.selected = id;
  state.fresh.delete(id);
  // Not the incident opened before's ranking and reasons, shown until this one's arrives
  // (found by a live audit).
  state.recommendation = null;
  renderQueue();
  renderDetail();
  const marker = state.markers.get(id);
  if (marker) map.panTo(marker.getLatLng());
  try {
    await loadDetail(id);
  } catch (error) {
    if (!movedAway(error)) {
      if (worthRetrying(error)) return notice(problem(error), "warn"); // the server's trouble, said
      throw error;
    }
    // Moved to another grid (or gone) while this console did not hear of it, as in act().
    forget(id);
    if (state.selected === id) state.selected = null;
    renderQueue();
    renderDetail();
    notice(problem(error), "warn");
  }
}

async function loadDetail(id) {
  // The crews are read again too: whether each is free changes all day, and the choice of
  // another crew is made here.
  const [incident, timeline, crews] = await Promise.all([api(`/incidents/${id}`), api(`/incidents/${id}/events`),
    api("/crews")]);
  state.crews = crews.crews;
  if (state.selected !== id) return;
  state.phones.set(id, incident.reporter.phone);
  // The ranking comes with crew_recommended, or with an automatic dispatch of an urgent report.
  state.recommendation = timeline.events.filter((e) => e.data?.ranking).at(-1)?.data || null;
  applyIncident(incident);
  renderQueue();
  renderDetail();
}

function notice(message, kind = "info", { scroll = true } = {}) {
  const box = $("notice");
  if (!box) return;
  box.textContent = message;
  box.className = kind === "warn" ? "warn" : "";
  box.hidden = false;
  if (scroll) box.scrollIntoView({ block: "nearest" });
}

// The server records its reasons in a small fixed English grammar (dispatch/routing.py);
// they are the audit trail, so they stay as recorded and are only translated for display.
// Every language shows the area a crew serves by its name, not its code.
const duration = (h, min) => (h ? t("duration.hours", { h, min }) : t("duration.minutes", { min }));
const SERVES = /^serves (.+)$/;
const REASON_PATTERNS = [
  [/^skill (.+)$/, (m) => t("console.reason.skill", { skill: has(`skill.${m[1]}`) ? t(`skill.${m[1]}`) : m[1] })],
  [/^available$/, () => t("console.reason.available")],
  [SERVES, (m, names) => t("console.reason.serves", { area: names.get(m[1]) || m[1] })],
  [/^(\d+) m away$/, (m) => t("console.reason.metres", { n: m[1] })],
  [/^([\d.]+) km away$/, (m) => t("console.reason.km", { n: m[1] })],
  [/^(?:(\d+) h )?(\d+) min travel \(ranked by travel time\)$/,
    (m) => t("console.reason.travel", { time: duration(Number(m[1] || 0), m[2]) })],
  [/^position unknown$/, () => t("console.reason.no_position")],
  [/^no open jobs$/, () => t("console.reason.no_jobs")],
  [/^(\d+) open jobs?$/, (m) => t("console.reason.jobs", { n: m[1] })],
  [/^idle time unknown$/, () => t("console.reason.idle_unknown")],
  [/^idle (?:(\d+) h )?(\d+) min$/, (m) => t("console.reason.idle", { time: duration(Number(m[1] || 0), m[2]) })],
];

function localReason(reason, names) {
  if (language() === "en") return reason.replace(SERVES, (all, code) => (names.has(code) ? `serves ${names.get(code)}` : all));
  for (const [pattern, render] of REASON_PATTERNS) {
    const match = reason.match(pattern);
    if (match) return render(match, names);
  }
  return reason;
}

function reasonsOf(crewId) {
  const entry = state.recommendation?.ranking?.find((r) => r.crew_id === crewId);
  if (!entry) return "";
  // The served area is on the incident's own chain: its grid, community, street or district.
  const areas = Object.values(state.incidents.get(state.selected)?.areas || {}).filter(Boolean);
  const names = new Map(areas.map((a) => [a.code, a.name]));
  return `<ul class="reasons">${entry.reasons.map((r) => `<li title="${esc(r)}">${esc(localReason(r, names))}</li>`).join("")}</ul>`;
}

function crewSection(incident) {
  const recommended = incident.recommended_crew;
  const assigned = incident.crew;
  const parts = [`<h3>${esc(t("console.crew"))}</h3>`];
  if (assigned) {
    parts.push(`<p>${esc(t("console.crew.assigned", { name: assigned.name }))}</p>`);
    const why = reasonsOf(assigned.id);
    if (why) parts.push(`<div class="why" data-crew="${assigned.id}"><strong>${esc(t("console.crew.why"))}</strong>${why}</div>`);
  }
  if (!ALLOWED_FROM.dispatch.includes(incident.status)) return parts.join("");
  if (recommended && recommended.id !== assigned?.id) {
    parts.push(`<button type="button" data-action="dispatch" data-crew="${recommended.id}" id="dispatch-recommended">
      ${esc(t("console.dispatch.recommended", { name: recommended.name }))}</button>`);
    const why = reasonsOf(recommended.id);
    parts.push(`<div class="why" data-crew="${recommended.id}"><strong>${esc(t("console.crew.why"))}</strong>${why
      || `<p>${esc(t("console.crew.no_reasons"))}</p>`}</div>`);
  } else if (!assigned) {
    parts.push(`<p>${esc(t(state.recommendation ? "console.crew.none" : "console.crew.loading"))}</p>`);
  }
  const ranked = new Map((state.recommendation?.ranking || []).map((r) => [r.crew_id, r]));
  const options = state.crews.filter((c) => c.id !== assigned?.id).sort((a, b) =>
    (ranked.get(a.id)?.rank ?? 1e9) - (ranked.get(b.id)?.rank ?? 1e9) || a.name.localeCompare(b.name));
  parts.push(`<div class="row"><label class="visually-hidden" for="crew-choice">${esc(t("console.crew.other"))}</label>
    <select id="crew-choice">${options.map((c) => `<option value="${c.id}">${esc(c.name)} · ${esc(
      ranked.has(c.id) ? t("console.crew.rank", { rank: ranked.get(c.id).rank }) : t(`crew.status.${c.status}`))}</option>`).join("")}</select>
    <button type="button" class="secondary" data-action="dispatch-other">${esc(t("console.dispatch.other"))}</button></div>`);
  return parts.join("");
}

/** What is typed or chosen in the incident's panel: [[id, value]]. */
function typedInDetail() {
  return [...$("detail").querySelectorAll("input[id], select[id]")].map((el) => [el.id, el.value]);
}

function retype(typed) {
  typed.forEach(([id, value]) => { if ($(id) && value) $(id).value = value; });
}

function renderDetail() {
  const panel = $("detail");
  const incident = state.incidents.get(state.selected);
  if (!incident) {
    // The notice stays: it says why the incident went (moved to another grid, say).
    panel.innerHTML = `<p class="empty">${esc(t(state.selected ? "console.detail.gone" : "console.detail.none"))}</p>
      <div id="notice" role="status" hidden></div>`;
    delete panel.dataset.incident;
    return;
  }
  // A live update must not wipe what the manager is typing or choosing, nor move the focus.
  const same = panel.dataset.incident === String(incident.id);
  const keepNotice = same && $("notice") && !$("notice").hidden ? { text: $("notice").textContent, cls: $("notice").className } : null;
  const typed = same ? typedInDetail() : [];
  const focused = same && panel.contains(document.activeElement) ? document.activeElement.id || document.activeElement.dataset.action : null;
  // Pushes carry the phone masked; the whole number comes over REST (loadDetail).
  const phone = state.phones.get(incident.id);
  const masked = incident.reporter.phone;
  const deadline = nextDeadline(incident);
  const allowed = (action) => ALLOWED_FROM[action].includes(incident.status);
  const gridOptions = state.grids.filter((g) => g.code !== incident.areas.grid?.code)
    .map((g) => `<option value="${esc(g.code)}">${esc(g.name)}</option>`).join("");
  const sections = [];
  if (allowed("acknowledge") && !incident.times.acknowledged_at) {
    sections.push(`<section class="action"><button type="button" data-action="acknowledge">${esc(t("console.acknowledge"))}</button></section>`);
  }
  if (allowed("dispatch") || incident.crew) sections.push(`<section class="action" id="crew-section">${crewSection(incident)}</section>`);
  if (allowed("verify")) {
    sections.push(`<section class="action"><h3>${esc(t("console.verify.title"))}</h3>
      <button type="button" data-action="verify">${esc(t("console.verify"))}</button>
      <div class="row"><input id="rework-reason" data-i18n-placeholder="console.reason" placeholder="${esc(t("console.reason"))}">
      <button type="button" class="secondary" data-action="rework">${esc(t("console.rework"))}</button></div></section>`);
  }
  if (allowed("reassign")) {
    sections.push(`<section class="action"><h3>${esc(t("console.reassign.title"))}</h3>
      <label class="visually-hidden" for="reassign-grid">${esc(t("console.reassign.grid"))}</label>
      <select id="reassign-grid">${gridOptions}</select>
      <div class="row"><input id="reassign-reason" placeholder="${esc(t("console.reason"))}" aria-label="${esc(t("console.reason"))}">
      <button type="button" class="secondary" data-action="reassign">${esc(t("console.reassign"))}</button></div></section>`);
  }
  if (allowed("merge")) {
    sections.push(`<section class="action"><h3>${esc(t("console.merge.title"))}</h3>
      ${incident.suspected_duplicate_of ? `<p>${esc(t("console.merge.suspected", { id: incident.suspected_duplicate_of }))}</p>` : ""}
      <div class="row"><input id="merge-original" value="${esc(incident.suspected_duplicate_of || "")}"
        placeholder="${esc(t("console.merge.original"))}" aria-label="${esc(t("console.merge.original"))}">
      <button type="button" class="secondary" data-action="merge">${esc(t("console.merge"))}</button></div></section>`);
  }
  if (allowed("cancel")) {
    sections.push(`<section class="action"><h3>${esc(t("console.cancel.title"))}</h3>
      <div class="row"><input id="cancel-reason" placeholder="${esc(t("console.reason"))}" aria-label="${esc(t("console.reason"))}">
      <button type="button" class="danger" data-action="cancel">${esc(t("console.cancel"))}</button></div></section>`);
  }
  panel.innerHTML = `
    <h2>${esc(categoryName(incident))} <small>${esc(incident.public_id)}</small></h2>
    <p><span class="chip" id="detail-status" data-status="${esc(incident.status)}">${esc(t(`status.${incident.status}`))}</span>
      <span class="chip sla-${esc(incident.sla_state)}" id="detail-sla">${esc(t(`sla.${incident.sla_state}`))}</span>
      <span class="chip">${esc(t(`priority.${incident.priority}`))}</span>
      ${incident.escalation_level ? `<span class="chip sla-red">${esc(t("console.escalated", { level: incident.escalation_level }))}</span>` : ""}</p>
    ${deadline ? `<p>${esc(t(`console.due.${deadline.name}`))} <span class="countdown" data-due="${deadline.at}"></span></p>` : ""}
    <div id="notice" role="status" hidden></div>
    <dl class="facts">
      <dt>${esc(t("console.place"))}</dt><dd>${esc(incident.areas.building?.name || incident.address || "—")}${incident.areas.unit ? ` · ${esc(incident.areas.unit.name)}` : ""}${
        incident.areas.building && incident.address ? `<br>${esc(incident.address)}` : ""}</dd>
      <dt>${esc(t("console.grid"))}</dt><dd>${esc(incident.areas.grid?.name || "—")}</dd>
      <dt>${esc(t("console.reported_at"))}</dt><dd>${esc(localTime(incident.times.created_at))}</dd>
      <dt>${esc(t("console.description"))}</dt><dd class="description">${esc(incident.description || "—")}</dd>
      <dt>${esc(t("console.reporter"))}</dt><dd>${esc(incident.reporter.name || "")}
        ${phone && !phone.includes("*") ? `<a class="tel" id="reporter-phone" href="tel:${esc(phone)}">${esc(phone)}</a>
          <small>${esc(t("console.call"))}</small>` : esc(phone || masked || t("console.no_phone"))}</dd>
    </dl>
    ${sections.join("")}`;
  panel.dataset.incident = incident.id;
  retype(typed);
  if (focused) (document.getElementById(focused) || panel.querySelector(`[data-action="${focused}"]`))?.focus();
  if (keepNotice) notice(keepNotice.text, keepNotice.cls, { scroll: false });
  tick();
}

async function act(action, extra = {}) {
  const incident = state.incidents.get(state.selected);
  if (!incident || state.busy) return;
  state.busy = true;
  $("detail").querySelectorAll("button").forEach((b) => { b.disabled = true; });
  let signInEnded = null;
  try {
    const updated = await takeAction(incident, action, extra,
      { onRetry: () => notice(t("net.retrying"), "warn") });
    state.phones.set(updated.id, updated.reporter.phone);
    applyIncident(updated);
    renderQueue();
    renderDetail();
    notice(t("console.done", { action: t(`console.action.${action}`) }));
    if (!mine(updated)) state.selected = null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signInEnded = error; // nothing was done; what was typed stays for the same tap once signed in
    } else if (error instanceof ApiError && error.code === "stale_version") {
      await loadDetail(incident.id).catch(() => {});
      notice(t("console.stale"), "warn");
    } else if (worthRetrying(error)) {
      // Perhaps done with only the answer lost: show the incident as it now stands.
      await loadDetail(incident.id).catch(() => renderDetail());
      notice(problem(error), "warn");
    } else if (movedAway(error)) {
      // Moved to another grid (or gone) while this console did not hear of it.
      forget(incident.id);
      renderQueue();
      renderDetail();
      notice(problem(error), "warn");
    } else {
      renderDetail();
      notice(problem(error), "warn");
    }
  } finally {
    state.busy = false;
    $("detail").querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }
  if (signInEnded) {
    await signInAgain(signInEnded);
    await act(action, extra);
  }
}

function requireReason(id) {
  const input = $(id);
  const reason = input.value.trim();
  if (!reason) {
    notice(t("console.reason.required"), "warn");
    input.focus();
  }
  return reason;
}

function onDetailClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  if (action === "dispatch") return act("dispatch", { crew_id: Number(button.dataset.crew) });
  if (action === "dispatch-other") return act("dispatch", { crew_id: Number($("crew-choice").value) });
  if (action === "reassign") {
    const reason = requireReason("reassign-reason");
    return reason && act("reassign", { grid_code: $("reassign-grid").value, reason });
  }
  if (action === "merge") {
    const original = $("merge-original").value.trim();
    if (!original) return notice(t("console.merge.original"), "warn");
    return act("merge", { duplicate_of: original });
  }
  if (action === "rework" || action === "cancel") {
    const reason = requireReason(`${action}-reason`);
    return reason && act(action, { reason });
  }
  return act(action);
}

// --- what was open and typed, over a reload ---

const DRAFT_KEY = "griddispatch.console.draft";

/** The console reloads when the manager's grids change (its queue and map are the old
 * grids'): the incident open and what was typed for it are kept for the reloaded console. */
function keepDraft() {
  keepForReload(DRAFT_KEY, state.me.id, { selected: state.selected, typed: typedInDetail() });
}

async function restoreDraft() {
  const draft = keptOverReload(DRAFT_KEY, state.me.id);
  // Not when the incident is no longer this manager's to see.
  if (!draft || !state.incidents.has(draft.selected)) return;
  await select(draft.selected);
  retype(draft.typed);
}

// --- the map ---

async function drawMyGrids() {
  const features = await Promise.all(state.me.grids.map((code) => api(`/areas/${encodeURIComponent(code)}`)));
  const communities = [...new Set(features.map((f) => f.properties.parent_code).filter(Boolean))];
  const layers = await Promise.all(communities.map((code) => drawAreas(map, { parent: code, level: "grid" })));
  await Promise.all(state.me.grids.map((code) => drawAreas(map, { parent: code, level: "building" })));
  const bounds = L.latLngBounds([]);
  layers.forEach((layer) => layer.eachLayer((shape) => {
    if (state.me.grids.includes(shape.feature.properties.code)) bounds.extend(shape.getBounds());
  }));
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [16, 16] });
  markerLayer.eachLayer((marker) => marker.bringToFront()); // above the buildings drawn after them
}

// --- start ---

async function start() {
  languageToggle($("lang"));
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  const me = await signedIn({ form: $("signin"), roles: ["grid_manager"] });
  state.me = { ...me, grids: me.grids || [] };
  $("who").textContent = me.display_name;
  $("signout").hidden = false;
  const storageKey = `griddispatch.console.since.${me.id}`;
  signOutButton($("signout"), storageKey);
  $("workspace").hidden = false;

  map = createMap($("map"));
  markerLayer = L.layerGroup().addTo(map);

  const live = new LiveConnection({ token: token(), storageKey });
  signInAgain = keepSignedIn(live, { form: $("signin"), roles: ["grid_manager"], beforeReload: keepDraft });
  live.addEventListener("event", (e) => onLiveEvent(e.detail));
  live.addEventListener("crew", (e) => onCrew(e.detail));
  live.addEventListener("status", (e) => showLiveStatus($("offline"), e.detail));
  live.addEventListener("resync", () => retrying(loadQueue).catch((error) => notice(problem(error), "warn")));
  window.addEventListener("beforeunload", () => live.close());

  $("detail").addEventListener("click", onDetailClick);
  document.addEventListener("languagechange", () => { renderQueue(); renderDetail(); });
  setInterval(tick, 1000);

  // Asked again through an outage: a 503 on the first read showed an empty queue for good.
  const again = { onRetry: () => showLiveStatus($("offline"), { state: "offline" }) };
  const [crews, grids] = await Promise.all([retrying(() => api("/crews"), again),
    retrying(() => api("/areas?level=grid&limit=5000"), again), retrying(loadQueue, again)]);
  if (live.online) showLiveStatus($("offline"), { state: "online" });
  state.crews = crews.crews;
  state.grids = grids.features.map((f) => ({ code: f.properties.code, name: f.properties.name }));
  if (state.selected) renderDetail();
  await restoreDraft().catch(() => {}); // best effort: the incident is a tap away in the queue
  await drawMyGrids();
  document.body.dataset.ready = "true";
}

start();
