// The HTTP API client of the dashboard: every request goes through `api()`, which adds the
// bearer token, turns error bodies into exceptions that carry the server's message, and asks
// for a token when the server answers 401.

const KEY = "errand.token";

/** The token in use, from this tab's session or (if the user chose so) this computer. */
export function getToken() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

export function setToken(token, remember) {
  sessionStorage.setItem(KEY, token);
  if (remember) localStorage.setItem(KEY, token);
  else localStorage.removeItem(KEY);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** An API error: HTTP status plus the server's `{error: {code, message, field}}`. */
export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.status = status;
    this.code = code;
    this.path = path;
  }
}

let tokenPrompt = null; // set by app.js: async (message) => void, resolves once a token is stored

export function onUnauthorized(fn) {
  tokenPrompt = fn;
}

/**
 * Calls the API. `opts.body` is sent as JSON. Resolves to the parsed JSON body.
 * On 401 it asks for a token once per call and tries again.
 */
export async function api(path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    const started = performance.now();
    let res;
    try {
      res = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", `cannot reach the server (${e.message})`, path);
    }
    lastRequestMs = performance.now() - started;
    if (res.status === 401 && tokenPrompt && attempt < 3) {
      const data = await readJson(res);
      await tokenPrompt(attempt === 0 && !token ? null : (data?.error?.message || "this token was not accepted"));
      continue;
    }
    const data = await readJson(res);
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      throw new ApiError(res.status, err.code || `http_${res.status}`,
        err.message || `${res.status} ${res.statusText}`, path);
    }
    return data;
  }
}

export let lastRequestMs = 0;

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: "bad_response", message: text.slice(0, 300) } };
  }
}

/** Builds a query string from an object, leaving out empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") u.set(k, v);
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}
