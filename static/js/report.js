// The resident's report form (/report): category, place, description, optional phone; then
// on to the tracking page. No sign-in. One Idempotency-Key per form fill, so a double tap
// or a retry after a dropped connection never files the report twice; a dropped connection or
// a server whose database is not answering (503) is retried by the form itself. A report that
// still could not be sent is kept on the device and sent, under its key, when the network
// comes back or the page is next opened: nothing a resident tapped "submit" on is lost.
// Signed in as an operator (or admin) it is the call-taking form: the caller's name too, and
// once filed what to tell the caller, then an empty form for the next call. As the caller's
// number is typed it lists that number's open reports, so a second call about the same burst
// pipe is answered with the first one's number instead of filed again. /report?call asks an
// operator who is not signed in to sign in first.
/* global L */
import { ApiError, api, newKey, retrying, worthRetrying } from "./api.js";
import { language, languageToggle, problem, t, translatePage } from "./i18n.js";
import { createMap, drawAreas, highlight } from "./map.js";
import { signInAgain, signedIn, storedSession } from "./signin.js";
import { localTime } from "./ui.js";

const MIN_BUILDING_ZOOM = 16; // below this the view holds too many buildings to draw or tap
const FIELDS = ["category", "location", "description", "reporter_name", "reporter_phone"];
const CALL_TAKERS = ["operator", "admin"];
const SUBMIT_TRIES = 5; // 1, 2, 4, 8 s apart; then the resident is told and may tap again
const LOOKUP_DELAY_MS = 300; // after the last keystroke: one look-up per number, not per digit
const LOOKUP_MIN_DIGITS = 7; // a landline without its area code is the shortest worth looking up
const PHONE = /^\+?[0-9][0-9 -]{4,19}$/; // the server's own check: anything else would only be refused
const LOOKUP_SHOWN = 5;
const UNSENT_KEY = "griddispatch.report.unsent";
const UNSENT_FOR_MS = 20 * 3600 * 1000; // inside the day the server answers a key again, so a resend cannot file twice

const form = document.getElementById("report");
const submitButton = document.getElementById("submit");
const placeText = document.getElementById("place");
const mapHint = document.getElementById("map-hint");
const searchInput = document.getElementById("search");
const buildingList = document.getElementById("buildings");
const unitSelect = document.getElementById("unit");

languageToggle(document.getElementById("lang"));
let callTaker = await callTakerSignedIn();

/** The operator taking calls, if any; /report?call waits for one to sign in. */
async function callTakerSignedIn() {
  const stored = storedSession(CALL_TAKERS);
  if (stored) return stored;
  if (!new URLSearchParams(location.search).has("call")) return null;
  form.hidden = true;
  const user = await signedIn({ form: document.getElementById("signin"), roles: CALL_TAKERS });
  form.hidden = false;
  return user;
}

const state = {
  categories: [],
  category: null,
  place: null, // {location: body for the API, name: what the resident sees}
  building: null, // the chosen building's properties
  features: [], // buildings drawn in the map view
  sending: false,
  idempotencyKey: newKey(),
};

function element(tag, props = {}, ...children) {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

// --- category ---

async function loadCategories() {
  state.categories = (await retrying(() => api("/categories"))).categories;
  renderCategories();
}

function renderCategories() {
  const english = language() === "en";
  const buttons = state.categories.map((category) => {
    const button = element("button", { type: "button" },
      element("span", { className: "icon", textContent: category.icon || "•" }),
      element("span", { textContent: english ? category.name_en : category.name_zh }));
    button.dataset.code = category.code;
    button.querySelector(".icon").setAttribute("aria-hidden", "true");
    button.setAttribute("aria-pressed", String(category.code === state.category));
    button.addEventListener("click", () => {
      state.category = category.code;
      setFieldError("category", "");
      renderCategories();
      document.querySelector(`#categories [data-code="${category.code}"]`).focus();
    });
    return button;
  });
  document.getElementById("categories").replaceChildren(...buttons);
}

// --- place ---

const map = createMap(document.getElementById("map"), { zoom: 17 });
let buildingLayer = null;
let pointMarker = null;
let loads = 0;

async function loadBuildings() {
  const load = ++loads;
  if (map.getZoom() < MIN_BUILDING_ZOOM) {
    buildingLayer?.remove();
    buildingLayer = null;
    state.features = [];
    renderHint();
    renderBuildingList();
    return;
  }
  const bounds = map.getBounds().pad(0.2);
  const bbox = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()]
    .map((n) => n.toFixed(6)).join(",");
  const layer = await retrying(() => drawAreas(map, { level: "building", bbox }, {
    style: "building",
    onClick: (feature) => chooseBuilding(feature.properties),
  }), { wanted: () => load === loads });
  if (load !== loads) {
    layer?.remove(); // the map moved again meanwhile
    return;
  }
  buildingLayer?.remove();
  buildingLayer = layer;
  state.features = [];
  layer.eachLayer((shape) => {
    state.features.push(shape.feature);
    shape.getElement()?.setAttribute("data-code", shape.feature.properties.code);
  });
  highlightChosen();
  renderHint();
  renderBuildingList();
}

function highlightChosen() {
  buildingLayer?.eachLayer((shape) => highlight(shape, shape.feature.properties.code === state.building?.code));
}

function renderHint() {
  mapHint.textContent = t(map.getZoom() < MIN_BUILDING_ZOOM ? "report.map.zoom" : "report.map.hint");
}

function setPlace(location, name, key = "report.place.chosen") {
  state.place = { location, name, key };
  setFieldError("location", "");
  renderPlace();
}

function renderPlace() {
  placeText.textContent = state.place ? t(state.place.key, { name: state.place.name }) : t("report.place.none");
}

function chooseBuilding(properties) {
  state.building = properties;
  pointMarker?.remove();
  pointMarker = null;
  setPlace({ building_code: properties.code }, properties.name);
  highlightChosen();
  renderBuildingList();
  loadUnits(properties.code);
}

/** Only "the whole building" to choose until a building's units are read. */
function clearUnits() {
  const whole = element("option", { value: "", textContent: t("report.list.whole") });
  whole.dataset.i18n = "report.list.whole";
  unitSelect.replaceChildren(whole);
  unitSelect.disabled = true;
}

async function loadUnits(buildingCode) {
  clearUnits();
  const page = await retrying(() => api(`/areas?${new URLSearchParams({ parent: buildingCode, level: "unit", limit: 500 })}`),
    { wanted: () => state.building?.code === buildingCode });
  if (state.building?.code !== buildingCode) return;
  const units = page.features.map((f) => f.properties)
    .sort((a, b) => a.name.localeCompare(b.name, "zh-CN", { numeric: true }));
  unitSelect.append(...units.map((unit) => element("option", { value: unit.code, textContent: unit.name })));
  unitSelect.disabled = units.length === 0;
}

unitSelect.addEventListener("change", () => {
  const building = state.building;
  const unit = unitSelect.selectedOptions[0];
  if (unitSelect.value) setPlace({ unit_code: unitSelect.value }, `${building.name} ${unit.textContent}`);
  else setPlace({ building_code: building.code }, building.name);
});

function renderBuildingList() {
  const query = searchInput.value.trim().toLowerCase();
  const matches = state.features.map((f) => f.properties)
    .filter((p) => p.name.toLowerCase().includes(query))
    .sort((a, b) => a.name.localeCompare(b.name, "zh-CN", { numeric: true }))
    .slice(0, 60);
  if (!matches.length) {
    buildingList.replaceChildren(element("li", { className: "hint", textContent: t("report.list.none") }));
    return;
  }
  buildingList.replaceChildren(...matches.map((properties) => {
    const button = element("button", { type: "button", textContent: properties.name });
    button.dataset.code = properties.code;
    button.setAttribute("aria-pressed", String(properties.code === state.building?.code));
    button.addEventListener("click", () => {
      chooseBuilding(properties);
      buildingList.querySelector(`[data-code="${properties.code}"]`)?.focus();
    });
    return element("li", {}, button);
  }));
}

/** A point (from the phone or pasted from a map app), shown as the area it falls in. */
async function choosePoint(lon, lat, crs) {
  setFieldError("location", "");
  try {
    const found = await api(`/locate?${new URLSearchParams({ lon, lat, crs })}`);
    const { building, unit, grid, community } = found.chain;
    const name = building ? [building.name, unit?.name].filter(Boolean).join(" ")
      : [community?.name, grid?.name].filter(Boolean).join(" ");
    state.building = building;
    setPlace({ lon, lat, crs }, name, "report.place.point");
    pointMarker?.remove();
    pointMarker = L.marker([found.lat, found.lon], { keyboard: false }).addTo(map);
    map.setView([found.lat, found.lon], Math.max(map.getZoom(), 17));
    highlightChosen();
  } catch (error) {
    if (worthRetrying(error)) setFieldError("location", t("report.network"));
    else setFieldError("location", error.code === "outside_managed_area" ? t("report.place.outside") : error.message);
  }
}

document.getElementById("gps").addEventListener("click", () => {
  if (!navigator.geolocation) {
    setFieldError("location", t("report.gps.unsupported"));
    return;
  }
  placeText.textContent = t("report.gps.locating");
  // Browser geolocation is WGS84 whatever map the phone shows.
  navigator.geolocation.getCurrentPosition(
    (position) => choosePoint(position.coords.longitude, position.coords.latitude, "wgs84"),
    (error) => {
      renderPlace();
      setFieldError("location", t("report.gps.failed", { message: error.message }));
    },
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
  );
});

/** "118.79,32.03", "32.03, 118.79", "118.79 32.03" → {lon, lat}, or null. */
export function parseCoordinate(text) {
  const numbers = (text.match(/-?\d+(?:\.\d+)?/g) || []).map(Number);
  if (numbers.length !== 2) return null;
  let [lon, lat] = numbers;
  // Map apps differ in order; within China the longitude is always the larger number.
  if (lon < lat) [lon, lat] = [lat, lon];
  return Math.abs(lat) <= 90 && Math.abs(lon) <= 180 ? { lon, lat } : null;
}

document.getElementById("paste").addEventListener("click", () => {
  const point = parseCoordinate(document.getElementById("coordinate").value);
  if (!point) {
    setFieldError("location", t("report.paste.invalid"));
    return;
  }
  choosePoint(point.lon, point.lat, document.getElementById("crs").value);
});

for (const button of document.querySelectorAll(".modes button")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".modes button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    for (const panel of document.querySelectorAll("[data-panel]")) {
      panel.hidden = panel.dataset.panel !== button.dataset.mode;
    }
    if (button.dataset.mode === "list" && map.getZoom() < MIN_BUILDING_ZOOM) map.setZoom(MIN_BUILDING_ZOOM + 1);
  });
}
searchInput.addEventListener("input", renderBuildingList);

// --- errors and submit ---

function setFieldError(field, message) {
  document.getElementById(`error-${field}`).textContent = message;
  const input = { description: "description", reporter_name: "caller-name", reporter_phone: "phone" }[field];
  if (input) document.getElementById(input).setAttribute("aria-invalid", String(Boolean(message)));
}

function clearErrors() {
  for (const field of [...FIELDS, "form"]) setFieldError(field, "");
}

function showError(error) {
  if (worthRetrying(error)) {
    setFieldError("form", t("report.unsent.kept"));
    return;
  }
  const field = String(error.details.field || "").split(".")[0];
  if (!FIELDS.includes(field)) {
    setFieldError("form", t("report.failed", { message: problem(error) }));
    return;
  }
  let message = error.message;
  if (error.code === "outside_managed_area") message = t("report.place.outside");
  else if (error.code === "invalid_field") message = t(`report.error.${field}`);
  setFieldError(field, message);
  // The server names the first field it refuses; a place not marked yet is said at once too,
  // not on the next try.
  if (field === "category" && !state.place) setFieldError("location", t("report.error.location"));
  document.getElementById(`field-${field}`).scrollIntoView({ block: "center" });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (state.sending) return;
  state.sending = true;
  submitButton.disabled = true;
  submitButton.textContent = t("report.sending");
  clearErrors();
  const phone = document.getElementById("phone").value.trim();
  const name = document.getElementById("caller-name").value.trim();
  const body = {
    category: state.category ?? undefined,
    location: state.place?.location,
    description: document.getElementById("description").value.trim(),
    ...(phone ? { reporter_phone: phone } : {}),
    ...(callTaker && name ? { reporter_name: name } : {}),
  };
  // One key per report as sent: sent again unchanged (after an outage) it is the same report,
  // but once edited it is another request, which the server refuses under the first key.
  // Then the first may have been filed, and the edited one comes as its suspected duplicate.
  const sent = JSON.stringify(body);
  if (state.keyFor !== undefined && state.keyFor !== sent) state.idempotencyKey = newKey();
  state.keyFor = sent;
  const unsent = { body, key: state.idempotencyKey, at: Date.now() };
  localStorage.setItem(UNSENT_KEY, JSON.stringify(unsent));
  try {
    filedOk(await send(unsent, () => { submitButton.textContent = t("net.retrying"); }));
  } catch (error) {
    state.sending = false;
    submitButton.disabled = false;
    submitButton.textContent = t("report.submit");
    if (callTaker && error instanceof ApiError && error.status === 401) {
      await signInAgainForCall(error);
      form.requestSubmit(); // the call as it was typed, under the same Idempotency-Key
      return;
    }
    if (!worthRetrying(error)) localStorage.removeItem(UNSENT_KEY); // refused: the form says why
    showError(error);
  }
});

function send(unsent, onRetry) {
  return retrying(
    () => api("/incidents", { method: "POST", body: unsent.body, headers: { "Idempotency-Key": unsent.key } }),
    { tries: SUBMIT_TRIES, onRetry },
  );
}

function filedOk(report) {
  localStorage.removeItem(UNSENT_KEY);
  if (callTaker) showFiled(report);
  else location.assign(`/track/${encodeURIComponent(report.tracking_token)}`);
}

// --- a report kept on the device ---

const unsentNotice = document.getElementById("unsent");

/** Send the report kept on this device, if any: on opening the page, and when the network is back. */
async function sendUnsent() {
  const unsent = JSON.parse(localStorage.getItem(UNSENT_KEY) || "null");
  if (!unsent || state.sending) return;
  const time = localTime(new Date(unsent.at).toISOString());
  unsentNotice.hidden = false;
  if (Date.now() - unsent.at > UNSENT_FOR_MS) {
    localStorage.removeItem(UNSENT_KEY); // too old to resend safely: the resident is asked to report it afresh
    unsentNotice.textContent = t("report.unsent.expired", { time });
    return;
  }
  state.sending = true;
  unsentNotice.textContent = t("report.unsent.sending", { time });
  let error = null;
  try {
    filedOk(await send(unsent));
    unsentNotice.hidden = true;
  } catch (caught) {
    error = caught;
  }
  state.sending = false;
  if (!error) return;
  if (callTaker && error instanceof ApiError && error.status === 401) {
    await signInAgainForCall(error); // the operator's sign-in ran out while the call was kept
    sendUnsent();
  } else if (worthRetrying(error)) {
    unsentNotice.textContent = t("report.unsent.waiting");
  } else {
    localStorage.removeItem(UNSENT_KEY);
    unsentNotice.textContent = t("report.failed", { message: problem(error) });
  }
}

window.addEventListener("online", sendUnsent);

// --- taking calls ---

const callResult = document.getElementById("call-result");
let filed = null;

function startTakingCalls() {
  // Retitled through data-i18n, which the language toggle translates.
  document.querySelector("header h1").dataset.i18n = "report.call.title";
  document.getElementById("phone-label").dataset.i18n = "report.call.phone";
  document.getElementById("field-reporter_name").hidden = false;
  // The caller's number comes first: the phone shows it before the caller says a word, and
  // its open reports may make the rest of the form unnecessary.
  form.prepend(document.getElementById("field-reporter_phone"), document.getElementById("field-reporter_name"));
  document.getElementById("call-taker").hidden = false;
  document.getElementById("phone").addEventListener("input", lookUpCaller);
  renderCallTaker();
}

/** A sign-in that ran out mid-shift (expired or revoked): sign in again above the call being
 *  taken, which stays as it was typed; the caller is still on the line. */
async function signInAgainForCall(error) {
  submitButton.disabled = true; // filed now, with no token, it would go in as an anonymous resident's
  callTaker = await signInAgain({ form: document.getElementById("signin"), roles: CALL_TAKERS, error,
    kept: t("report.call.signin_again"), anyone: true }); // the call is the caller's: any call-taker files it
  submitButton.disabled = false;
  renderCallTaker();
}

function renderCallTaker() {
  document.title = `${t("report.call.title")} · griddispatch`;
  document.getElementById("call-taker").textContent = t("report.call.taker", { name: callTaker.display_name });
}

/** What the operator tells the caller: the number, who has it, the crew, the tracking link. */
function showFiled(report) {
  filed = report;
  renderFiled();
  form.hidden = true;
  callResult.hidden = false;
  document.getElementById("next-call").focus();
}

function renderFiled() {
  const crew = filed.crew || filed.recommended_crew;
  const crewKey = filed.crew ? "report.call.crew.sent" : "report.call.crew.recommended";
  const place = ["building", "unit", "grid"].map((level) => filed.areas[level]?.name).filter(Boolean);
  const manager = filed.manager;  // with the manager's phone: an urgent call may need a word with them
  document.getElementById("call-number").textContent = filed.public_id;
  document.getElementById("call-place").textContent = place.join(" · ");
  document.getElementById("call-manager").textContent = !manager ? "—"
    : manager.phone ? `${manager.display_name}（${manager.phone}）` : manager.display_name;
  const needsCrew = state.categories.find((c) => c.code === filed.category)?.needs_crew !== false;
  document.getElementById("call-crew").textContent = crew ? t(crewKey, { name: crew.name })
    : t(needsCrew ? "report.call.crew.none" : "report.call.crew.unneeded");
  const link = document.getElementById("call-tracking");
  link.href = new URL(filed.tracking_url, location.origin).href;
  link.textContent = link.href;
  const duplicate = document.getElementById("call-duplicate");
  duplicate.hidden = !filed.suspected_duplicate_of;
  duplicate.textContent = filed.suspected_duplicate_of
    ? t("report.call.duplicate", { number: filed.suspected_duplicate_of }) : "";
}

// --- the caller's open reports ---

const callerReports = document.getElementById("caller-reports");
let lookup = { timer: null, found: null };

/** Look the number up once typing pauses; an answer for a number no longer in the field is dropped. */
function lookUpCaller() {
  clearTimeout(lookup.timer);
  const phone = document.getElementById("phone").value.trim();
  if (!PHONE.test(phone) || phone.replace(/\D/g, "").length < LOOKUP_MIN_DIGITS) {
    showCallerReports(phone, null);
    return;
  }
  lookup.timer = setTimeout(async () => {
    try {
      const query = new URLSearchParams({ phone, open: "true", limit: String(LOOKUP_SHOWN) });
      showCallerReports(phone, await api(`/incidents?${query}`));
    } catch {
      showCallerReports(phone, null); // a number still being typed, or no answer: the form works without it
    }
  }, LOOKUP_DELAY_MS);
}

function showCallerReports(phone, found) {
  if (phone !== document.getElementById("phone").value.trim()) return;
  lookup.found = found;
  renderCallerReports();
}

function renderCallerReports() {
  const found = lookup.found;
  callerReports.hidden = !found?.total;
  if (!found?.total) return;
  const lang = language() === "en" ? "en" : "zh";
  document.getElementById("caller-reports-title").textContent = t("report.call.history", { count: found.total });
  const items = found.incidents.map((incident) => {
    const place = (incident.areas.building || incident.areas.grid)?.name;  // a building's name holds its grid's
    return element("li", {}, [incident.public_id, incident.category_name[lang], t(`status.${incident.status}`),
      localTime(incident.times.created_at), place].filter(Boolean).join(" · "));
  });
  if (found.total > found.incidents.length) {
    items.push(element("li", {}, t("report.call.history.more", { count: found.total - found.incidents.length })));
  }
  document.getElementById("caller-reports-list").replaceChildren(...items);
}

/** An empty form with a new Idempotency-Key; the map stays where the last call was. */
function nextCall() {
  form.reset();
  Object.assign(state, { category: null, place: null, building: null, sending: false, idempotencyKey: newKey(),
    keyFor: undefined });
  pointMarker?.remove();
  pointMarker = null;
  clearUnits();
  clearErrors();
  renderCategories();
  renderPlace();
  highlightChosen();
  renderBuildingList();
  submitButton.disabled = false;
  submitButton.textContent = t("report.submit");
  filed = null;
  clearTimeout(lookup.timer);
  lookup = { timer: null, found: null };
  renderCallerReports();
  callResult.hidden = true;
  form.hidden = false;
  window.scrollTo(0, 0);
  document.getElementById("phone").focus();  // the next caller's number first, as on the phone's display
}

document.getElementById("next-call").addEventListener("click", nextCall);

document.addEventListener("languagechange", () => {
  renderCategories();
  renderPlace();
  renderHint();
  renderBuildingList();
  if (callTaker) renderCallTaker();
  if (filed) renderFiled();
  if (callTaker) renderCallerReports();
});

if (callTaker) startTakingCalls();
translatePage();
renderPlace();
renderHint();
map.on("moveend", loadBuildings);
loadBuildings();
loadCategories();
sendUnsent();
