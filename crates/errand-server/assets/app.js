// The dashboard's entry point: hash routing, who the token is (GET /v1/me decides whether
// action buttons show), the token prompt on 401, and the refresh loop that keeps the
// current view live while the tab is visible.

import { api, onUnauthorized, setToken, clearToken, getToken } from "./api.js";
import { h, errorBox } from "./ui.js";
import * as overview from "./views/overview.js";
import * as jobs from "./views/jobs.js";
import * as job from "./views/job.js";
import * as schedules from "./views/schedules.js";
import * as workers from "./views/workers.js";

const REFRESH_MS = 3000;

const routes = [
  { re: /^\/?$/, view: overview, nav: "overview" },
  { re: /^\/jobs\/(\d+)$/, view: job, nav: "jobs" },
  { re: /^\/jobs$/, view: jobs, nav: "jobs" },
  { re: /^\/schedules\/(.+)$/, view: schedules, nav: "schedules", detail: true },
  { re: /^\/schedules$/, view: schedules, nav: "schedules" },
  { re: /^\/workers$/, view: workers, nav: "workers" },
];

/** What the current token may do; filled from GET /v1/me. */
const session = { role: null, auth: true, canAct: false };

let current = null; // { view, instance }
let refreshing = false;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, query: new URLSearchParams(query) };
}

async function loadMe() {
  const me = await api("/v1/me");
  session.role = me.role;
  session.auth = me.auth !== false;
  session.canAct = me.role === "admin";
  const roleEl = document.getElementById("role");
  roleEl.textContent = session.auth ? `${me.role} token` : "no auth (loopback)";
  roleEl.className = `role role-${me.role}`;
  roleEl.title = session.canAct
    ? "This token may retry, cancel and pause."
    : "This token may look but not act: action buttons are hidden.";
  document.getElementById("signout").hidden = !session.auth || !getToken();
  document.body.classList.toggle("can-act", session.canAct);
}

async function render() {
  const { path, query } = parseHash();
  const route = routes.find((r) => r.re.test(path));
  const main = document.getElementById("main");
  if (current?.instance?.unmount) current.instance.unmount();
  current = null;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", route && a.dataset.route === route.nav);
  }
  if (!route) {
    main.replaceChildren(h("div", { class: "empty" }, h("strong", {}, "No such page"),
      h("p", {}, h("a", { href: "#/" }, "Back to the overview"))));
    return;
  }
  const params = path.match(route.re).slice(1).map(decodeURIComponent);
  main.replaceChildren();
  const ctx = { params, query, session, detail: !!route.detail, navigate };
  try {
    const instance = await route.view.mount(main, ctx);
    current = { view: route.view, instance };
  } catch (e) {
    main.replaceChildren(errorBox(e, "this page"));
  }
}

/** Changes the hash (and so the view) without piling up history for filter changes. */
function navigate(hash, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
  render();
}

async function tick() {
  if (document.hidden || refreshing || !current?.instance?.refresh) return;
  if (document.querySelector("dialog[open]")) return; // do not move things under an open dialog
  refreshing = true;
  try {
    await current.instance.refresh();
  } finally {
    refreshing = false;
  }
}

function askToken(message) {
  const dlg = document.getElementById("token-dialog");
  const err = document.getElementById("token-error");
  err.hidden = !message;
  err.textContent = message || "";
  if (dlg.open) return dlg._pending;
  dlg._pending = new Promise((resolve) => {
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    input.value = "";
    const onSubmit = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      setToken(t, document.getElementById("token-remember").checked);
      form.removeEventListener("submit", onSubmit);
      dlg.close("ok");
      resolve();
    };
    form.addEventListener("submit", onSubmit);
    // Escape would leave the page without a token: keep the dialog up.
    dlg.addEventListener("cancel", (ev) => ev.preventDefault());
    dlg.showModal();
    input.focus();
  });
  return dlg._pending;
}

async function start() {
  onUnauthorized(askToken);
  document.getElementById("signout").addEventListener("click", () => {
    clearToken();
    location.reload();
  });
  window.addEventListener("hashchange", render);
  window.addEventListener("popstate", render);
  document.addEventListener("visibilitychange", () => {
    document.getElementById("live").classList.toggle("paused", document.hidden);
    if (!document.hidden) tick();
  });
  try {
    await loadMe();
  } catch (e) {
    document.getElementById("main").replaceChildren(errorBox(e, "who this token is (GET /v1/me)"));
    return;
  }
  await render();
  setInterval(tick, REFRESH_MS);
}

start();
