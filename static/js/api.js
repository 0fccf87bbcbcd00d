// The REST client shared by every web app: JSON in and out, the bearer token, and errors
// as exceptions carrying the server's {code, message, details}.
const TOKEN_KEY = "griddispatch.token";
const USER_KEY = "griddispatch.user";

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
    this.details = error?.details || {};
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function currentUser() {
  const raw = localStorage.getItem(USER_KEY);
  return raw ? JSON.parse(raw) : null;
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
  return data.user;
}

export async function signOut() {
  try {
    await api("/auth/token", { method: "DELETE" });
  } finally {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  }
}
