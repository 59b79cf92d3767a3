// One job: its fields, the progress its handler last reported, arguments (secrets redacted),
// result, the timeline of what happened to it (its own timestamps plus its events) and every
// error in full; retry and cancel.

import { api } from "../api.js";
import { h, fill, time, duration, jsonBlock, errorBox, empty, confirmAction, act, stateBadge, absTime } from "../ui.js";

export async function mount(root, ctx) {
  const id = ctx.params[0];
  const head = h("div", { class: "page-head" }, h("h1", {}, `Job #${id}`));
  const body = h("div", { id: "job-body" }, h("p", { class: "muted" }, "Loading…"));
  root.append(h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← Jobs")), head, body);

  let lastSig = "";
  let unchanged = 0;
  async function refresh() {
    let data;
    try {
      data = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 404) fill(body, empty(`No job #${id}`, "It may have been purged."));
      else fill(body, errorBox(e, `job #${id}`));
      fill(head, h("h1", {}, `Job #${id}`));
      return;
    }
    // Re-render only when something changed (or every tenth refresh, for the relative
    // times), so text being selected or a button being clicked is not replaced under the user.
    const sig = JSON.stringify(data);
    if (sig === lastSig && ++unchanged % 10 !== 0) return;
    lastSig = sig;
    const j = data.job;
    const events = data.events || [];
    fill(head, h("h1", {}, `Job #${j.id} `, h("span", { class: "mono kind" }, j.kind), " ", stateBadge(j.status, j.derived)),
      h("div", { class: "head-actions" }, actions(j, ctx, refresh)));
    fill(body, 
      h("div", { class: "cards-row" },
        h("section", { class: "card" }, h("h2", {}, "Fields"), fields(j)),
        h("section", { class: "card wide" }, h("h2", {}, "Timeline"), timeline(j, events))),
      j.progress_at ? progressCard(j) : null,
      j.last_error ? h("section", { class: "card", id: "last-error" }, h("h2", {}, "Last error"), h("pre", { class: "error-text-block" }, j.last_error)) : null,
      h("div", { class: "cards-row" },
        h("section", { class: "card half" }, h("h2", {}, "Arguments"), jsonBlock(j.args),
          h("p", { class: "muted small" }, "Values under secret-looking keys (token, password, secret, authorization…) are shown as [redacted].")),
        h("section", { class: "card half" }, h("h2", {}, "Result"), jsonBlock(j.result))));
  }
  await refresh();
  return { refresh };
}

function actions(j, ctx, refresh) {
  if (!ctx.session.canAct) return [];
  const out = [];
  if (j.status === "failed" || j.status === "cancelled") {
    out.push(h("button", { class: "primary", id: "job-retry", onclick: async () => {
      if (!await confirmAction(`Retry job #${j.id}?`, "It goes back to its queue with a fresh attempt budget.", { confirmLabel: "Retry", danger: false })) return;
      await act(() => api(`/v1/jobs/${j.id}/retry`, { method: "POST" }), `Job #${j.id} queued again`);
      await refresh();
    } }, "Retry"));
  }
  if (j.status === "queued" || j.status === "running") {
    out.push(h("button", { class: "danger", id: "job-cancel", disabled: !!j.cancel_requested_at, onclick: async () => {
      if (!await confirmAction(`Cancel job #${j.id}?`, j.status === "running"
        ? "Its worker is asked to stop it; it ends cancelled." : "It will not run.", { confirmLabel: "Cancel job" })) return;
      await act(() => api(`/v1/jobs/${j.id}/cancel`, { method: "POST" }), `Job #${j.id}: cancel sent`);
      await refresh();
    } }, j.cancel_requested_at ? "Cancel requested" : "Cancel"));
  }
  return out;
}

function fields(j) {
  const row = (k, v) => h("tr", {}, h("th", {}, k), h("td", {}, v));
  const ran = j.started_at && j.finished_at ? new Date(j.finished_at) - new Date(j.started_at) : null;
  return h("table", { class: "fields" }, h("tbody", {},
    row("status", stateBadge(j.status, j.derived)),
    row("queue", h("a", { href: `#/jobs?queue=${encodeURIComponent(j.queue)}` }, j.queue)),
    row("kind", h("span", { class: "mono" }, j.kind)),
    row("priority", String(j.priority)),
    row("attempt", `${j.attempt} of ${j.max_attempts}`),
    row("run at", time(j.run_at)),
    row("created", time(j.created_at)),
    row("started", time(j.started_at)),
    row("finished", time(j.finished_at)),
    ran !== null ? row("last attempt took", duration(ran)) : null,
    row("worker", j.worker_id ? h("span", { class: "mono" }, j.worker_id) : h("span", { class: "muted" }, "—")),
    j.lease_expires_at ? row("lease expires", time(j.lease_expires_at)) : null,
    j.cancel_requested_at ? row("cancel requested", time(j.cancel_requested_at)) : null,
    row("timeout", j.timeout_ms === null || j.timeout_ms === undefined ? "task default" : j.timeout_ms === 0 ? "none" : duration(j.timeout_ms)),
    row("unique key", j.unique_key ? h("span", { class: "mono" }, j.unique_key) : h("span", { class: "muted" }, "—")),
    j.concurrency_key ? row("concurrency key", h("span", {}, h("span", { class: "mono", "data-field": "concurrency_key" }, j.concurrency_key),
      j.key_concurrency ? h("span", { class: "muted" }, ` (at most ${j.key_concurrency} at a time)`) : null)) : null,
    row("reference", j.reference ? h("a", { class: "mono", href: `#/jobs?reference=${encodeURIComponent(`${j.reference.type}:${j.reference.id}`)}` },
      `${j.reference.type}:${j.reference.id}`) : h("span", { class: "muted" }, "—")),
    row("updated", time(j.updated_at))));
}

/** The handler's last progress report: a bar when it follows the `{done, total, message}`
 * convention, and the value as reported (redacted as the result is). */
function progressCard(j) {
  const p = j.progress;
  const isObj = p !== null && typeof p === "object" && !Array.isArray(p);
  const done = isObj ? p.done : undefined;
  const total = isObj ? p.total : undefined;
  const measured = typeof done === "number" && typeof total === "number" && total > 0;
  const pct = measured ? Math.max(0, Math.min(100, (100 * done) / total)) : null;
  const message = isObj && typeof p.message === "string" ? p.message : null;
  const stale = j.status !== "running" ? " (last report of the latest attempt)" : "";
  return h("section", { class: "card", id: "job-progress" },
    h("div", { class: "card-head" }, h("h2", {}, "Progress"), h("span", { class: "muted small" }, "reported ", time(j.progress_at), stale)),
    measured ? h("div", { class: "progress-line" },
      h("div", { class: "progress-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(total), "aria-valuenow": String(done) },
        h("div", { class: "progress-fill", style: { width: `${pct.toFixed(1)}%` } })),
      h("span", { class: "mono small" }, `${done} of ${total} (${Math.floor(pct)} %)`)) : null,
    message ? h("p", { class: "progress-message" }, message) : null,
    jsonBlock(p));
}

const EVENT_LABEL = {
  error: "attempt failed", rescued: "rescued (lease expired)", cancel_requested: "cancel requested",
  cancelled: "cancelled", retried: "retried by an operator", released: "released on shutdown",
};

/** The job's own timestamps and its events, in time order; errors in full. */
function timeline(j, events) {
  // rank breaks ties between equal times: created, then started, then events, then finished.
  const items = [{ at: j.created_at, rank: 0, cls: "created", title: "created", detail: `in queue ${j.queue}` }];
  for (const e of events) {
    let detail = null;
    const next = e.data?.next;
    if (e.kind === "error") detail = next === "retry" ? `will retry ${e.data.run_at ? `at ${absTime(e.data.run_at)}` : ""}` : next === "failed" ? "no attempts left: failed" : null;
    if (e.kind === "rescued" && e.data?.action) detail = `action: ${e.data.action}`;
    if (e.kind === "retried" && e.data) detail = `was ${e.data.status ?? e.data.previous_status ?? "?"}${e.data.attempt !== undefined ? ` after ${e.data.attempt} attempt(s)` : ""}`;
    items.push({ at: e.at, rank: 2, cls: `ev-${e.kind}`, title: EVENT_LABEL[e.kind] || e.kind, attempt: e.attempt, worker: e.worker_id, detail, message: e.message, isError: e.kind === "error" });
  }
  // Started/finished are the latest attempt's; place them by time among the events.
  if (j.started_at) items.push({ at: j.started_at, rank: 1, cls: "started", title: `attempt ${j.attempt} started`, worker: j.worker_id });
  if (j.finished_at) items.push({ at: j.finished_at, rank: 3, cls: `fin-${j.status}`, title: j.status });
  items.sort((a, b) => (new Date(a.at) - new Date(b.at)) || (a.rank - b.rank));
  return h("ol", { class: "timeline" }, items.map((it) => h("li", { class: it.cls },
    h("div", { class: "tl-head" }, h("strong", {}, it.title),
      it.attempt ? h("span", { class: "muted" }, ` · attempt ${it.attempt}`) : null,
      it.worker ? h("span", { class: "muted mono small" }, ` · ${it.worker}`) : null,
      h("span", { class: "tl-time" }, time(it.at))),
    it.detail ? h("div", { class: "muted small" }, it.detail) : null,
    it.message ? h("pre", { class: it.isError ? "error-text-block" : "note" }, it.message) : null)));
}
