// The REST client shared by every web app: JSON in and out, the bearer token, errors as
// exceptions carrying the server's {code, message, details}, and asking again through an outage.
const TOKEN_KEY = "griddispatch.token";
const USER_KEY = "griddispatch.user";
const ACTION_TRIES = 5; // 1, 2, 4, 8 s apart; then the user is told and may tap again

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
    this.details = error?.details || {};
  }
}

// The sign-in this page works under: the stored one when the page opened, or its own since.
// Another tab signing in (as someone else: a board beside a console) changes what is stored
// for the next page to open, not this page's: its requests and its live socket stay its own
// user's, instead of going out under the other tab's token.
let mine;

function signInOfPage() {
  if (mine === undefined) {
    const user = localStorage.getItem(USER_KEY);
    mine = { token: localStorage.getItem(TOKEN_KEY), user: user ? JSON.parse(user) : null };
  }
  return mine;
}

export function token() {
  return signInOfPage().token;
}

export function currentUser() {
  return signInOfPage().user;
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const request = { method, headers: { Accept: "application/json", ...headers } };
  const bearer = token();
  if (bearer) request.headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, request);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.error);
  return data;
}

export async function signIn(username, password) {
  const data = await api("/auth/token", { method: "POST", body: { username, password } });
  localStorage.setItem(TOKEN_KEY, data.token);
  localStorage.setItem(USER_KEY, JSON.stringify(data.user));
  mine = { token: data.token, user: data.user };
  return data.user;
}

export async function signOut() {
  try {
    await api("/auth/token", { method: "DELETE" });
  } finally {
    forgetSignIn();
  }
}

/** Forget the stored sign-in without telling the server (which no longer takes it). */
export function forgetSignIn() {
  if (localStorage.getItem(TOKEN_KEY) === token()) { // not another tab's newer sign-in
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  }
  mine = { token: null, user: null };
}

/** A fresh Idempotency-Key. crypto.randomUUID needs a secure context; a phone or tablet on
 *  the estate LAN may use plain http. */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** No answer, or one saying "not now" (the database is not answering, a proxy timed out):
 *  the same request may succeed in a moment. */
export function worthRetrying(error) {
  return !(error instanceof ApiError) || [502, 503, 504].includes(error.status);
}

/** What `read` gives, asked again (1, 2, 4, 8, 8… s apart) while the server cannot answer,
 *  so a page keeps working through an outage. After `tries` the last error is thrown; null
 *  once `wanted` says it no longer matters; `onRetry` runs before each wait. */
export async function retrying(read, { wanted = () => true, tries = Infinity, onRetry = () => {} } = {}) {
  for (let attempt = 1, delay = 1000; ; attempt += 1, delay = Math.min(delay * 2, 8000)) {
    try {
      return await read();
    } catch (error) {
      if (!worthRetrying(error) || attempt >= tries) throw error;
    }
    onRetry();
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (!wanted()) return null;
  }
}

/** A lifecycle action on the version the user saw; the updated incident. Retried through an
 *  outage with one Idempotency-Key per tap: when a try got through and only its answer was
 *  lost, the retry is answered with that first result, not with a 409 for the user's own change. */
export function takeAction(incident, action, extra = {}, { onRetry } = {}) {
  const headers = { "Idempotency-Key": newKey() };
  const body = { action, expected_version: incident.version, ...extra };
  return retrying(() => api(`/incidents/${incident.id}/actions`, { method: "POST", body, headers }),
    { tries: ACTION_TRIES, onRetry });
}
