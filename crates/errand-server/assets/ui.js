// Small DOM and formatting helpers shared by every view: element building, state badges,
// relative + absolute times, durations, JSON with secrets redacted, the confirmation
// dialog and notices.

/** Creates an element: h("a", {href: "#/"}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** SVG element (charts). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  append(el, children);
  return el;
}

// The stored states and the derived views, in lifecycle order: written by the server from
// their definitions (errand::JobStatus::ALL, errand::DerivedState::ALL).
export { STATES, DERIVED } from "./states.js";

/** A coloured badge for a job's state; a derived view is shown beside its stored state. */
export function stateBadge(status, derived) {
  const main = h("span", { class: `badge st-${status}`, title: `status: ${status}` }, status);
  if (!derived) return main;
  return h("span", { class: "badges" }, main,
    h("span", { class: `badge st-${derived} derived`, title: `derived view: ${derived}` }, derived));
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-11-23 13:22:05 UTC". */
export function absTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** "3 min ago" / "in 12 s". */
export function relTime(iso, now = Date.now()) {
  if (!iso) return "";
  const t = new Date(iso).getTime();
  if (isNaN(t)) return "";
  const diff = t - now;
  const a = Math.abs(diff);
  let txt;
  if (a < 1500) return "just now";
  if (a < 60e3) txt = `${Math.round(a / 1e3)} s`;
  else if (a < 3600e3) txt = `${Math.round(a / 60e3)} min`;
  else if (a < 86400e3) txt = `${(a / 3600e3).toFixed(a < 36000e3 ? 1 : 0)} h`;
  else txt = `${(a / 86400e3).toFixed(a < 864000e3 ? 1 : 0)} d`;
  return diff < 0 ? `${txt} ago` : `in ${txt}`;
}

/** A time shown both ways: relative in the text, absolute beside it (or only in the tooltip when compact). */
export function time(iso, { compact = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const abs = absTime(iso);
  if (compact) return h("time", { datetime: iso, title: abs }, relTime(iso));
  return h("time", { datetime: iso, title: abs }, relTime(iso), " ", h("span", { class: "abs" }, abs));
}

/** 1234 -> "1.2 s", 45 -> "45 ms", 600000 -> "10 min". */
export function duration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60e3) return `${(ms / 1000).toFixed(ms < 10e3 ? 2 : 1)} s`;
  if (ms < 3600e3) return `${(ms / 60e3).toFixed(1)} min`;
  return `${(ms / 3600e3).toFixed(1)} h`;
}

/** 1234567 -> "1,234,567". */
export function num(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString("en-US");
}

// Same key fragments as errand-core's redaction: the dashboard never shows these values,
// whatever role the token has (design.md, Interfaces).
const SECRET_FRAGMENTS = ["token", "password", "passwd", "secret", "authorization", "api_key",
  "apikey", "private_key", "credential", "cookie"];
export const REDACTED = "[redacted]";

export function isSecretKey(key) {
  const k = key.toLowerCase();
  return SECRET_FRAGMENTS.some((f) => k.includes(f));
}

/** A copy of a JSON value with every value under a secret-looking key replaced, at any depth. */
export function redact(v) {
  if (Array.isArray(v)) return v.map(redact);
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = isSecretKey(k) ? REDACTED : redact(x);
    return out;
  }
  return v;
}

/** Pretty JSON in a <pre>, secrets redacted. */
export function jsonBlock(value) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "none");
  return h("pre", { class: "json" }, JSON.stringify(redact(value), null, 2));
}

/** A centred note for a view or table with nothing in it. */
export function empty(title, detail) {
  return h("div", { class: "empty" }, h("strong", {}, title), detail ? h("p", {}, detail) : null);
}

/** An error box naming what failed. */
export function errorBox(err, what) {
  const msg = err && err.message ? err.message : String(err);
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, what ? `Could not load ${what}` : "Something went wrong"),
    h("p", {}, msg, err && err.status ? h("span", { class: "muted" }, ` (HTTP ${err.status}${err.code ? `, ${err.code}` : ""})`) : null));
}

/** Asks for confirmation in a modal dialog; resolves true when confirmed. */
export function confirmAction(title, text, { confirmLabel = "Confirm", danger = true } = {}) {
  const dlg = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  const p = document.getElementById("confirm-text");
  p.replaceChildren(...(Array.isArray(text) ? text : [text]));
  const yes = document.getElementById("confirm-yes");
  yes.textContent = confirmLabel;
  yes.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    dlg.returnValue = "";
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
    document.getElementById("confirm-no").focus();
  });
}

let noticeTimer;
/** A short message at the top of the page (what an action did, or why it failed). */
export function notice(text, kind = "ok") {
  const b = document.getElementById("banner");
  b.className = `banner ${kind}`;
  b.textContent = text;
  b.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { b.hidden = true; }, kind === "error" ? 10000 : 5000);
}

/** Runs an action, shows its outcome as a notice, and returns its result (or undefined on error). */
export async function act(fn, okText) {
  try {
    const r = await fn();
    if (okText) notice(typeof okText === "function" ? okText(r) : okText, "ok");
    return r;
  } catch (e) {
    notice(`Failed: ${e.message}`, "error");
    return undefined;
  }
}

/** A table from column definitions: [{label, cell: (row) => node|text, class}]. */
export function table(columns, rows, { rowAttrs } = {}) {
  return h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {},
      columns.map((c) => h("td", { class: c.class }, c.cell(r)))))));
}

/** Replaces an element's children, skipping null/false (conditional parts). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
