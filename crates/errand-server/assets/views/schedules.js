// Schedules: each schedule's spec, next fire and last run with pause/resume/trigger; one
// schedule's last run (its result and error), next fires, run history with durations and
// skipped fires. "Run now" follows the overlap policy: when the server skips it (409
// `overlap_skipped`, the previous run is live), the operator may run it anyway (force=true). Servers without the
// schedules API (404) get a clear "not available" note instead of an error.

import { api } from "../api.js";
import { h, fill, time, duration, empty, errorBox, confirmAction, act, notice, stateBadge, table, num, jsonBlock } from "../ui.js";

export async function mount(root, ctx) {
  return ctx.detail ? detail(root, ctx, ctx.params[0]) : list(root, ctx);
}

function notAvailable() {
  return empty("Schedules are not available", "This server does not serve the schedules API (GET /v1/schedules answered 404).");
}

function spec(x) {
  const what = x.cron ? h("span", { class: "mono" }, x.cron) : x.every ? h("span", {}, "every ", h("span", { class: "mono" }, x.every)) : "—";
  return h("span", {}, what, x.timezone && x.timezone !== "UTC" ? h("span", { class: "muted small" }, ` (${x.timezone})`) : null);
}

function actionButtons(x, ctx, after) {
  if (!ctx.session.canAct) return null;
  const name = encodeURIComponent(x.name);
  return h("span", { class: "btns" },
    x.paused
      ? h("button", { class: "small", "data-action": "resume", onclick: () => act(() => api(`/v1/schedules/${name}/resume`, { method: "POST" }), `Schedule ${x.name} resumed`).then(after) }, "Resume")
      : h("button", { class: "small warn", "data-action": "pause", onclick: async () => {
        if (!await confirmAction(`Pause schedule “${x.name}”?`, "It will not fire until resumed. Fires missed meanwhile follow its misfire policy.", { confirmLabel: "Pause" })) return;
        await act(() => api(`/v1/schedules/${name}/pause`, { method: "POST" }), `Schedule ${x.name} paused`);
        after();
      } }, "Pause"),
    h("button", { class: "small", "data-action": "trigger", onclick: async () => {
      if (!await confirmAction(`Run “${x.name}” now?`, `This enqueues one ${x.kind} job now, outside its timetable.`, { confirmLabel: "Run now", danger: false })) return;
      const done = (r) => `Schedule ${x.name} triggered${r?.job_id ? `: job #${r.job_id}` : ""}`;
      try {
        notice(done(await api(`/v1/schedules/${name}/trigger`, { method: "POST" })), "ok");
      } catch (e) {
        if (e.code !== "overlap_skipped") {
          notice(`Failed: ${e.message}`, "error");
        } else if (await confirmAction(`“${x.name}” was not run`, `${e.message}. Run it anyway, beside the previous run?`, { confirmLabel: "Run anyway" })) {
          await act(() => api(`/v1/schedules/${name}/trigger?force=true`, { method: "POST" }), done);
        }
      }
      after();
    } }, "Run now"));
}

async function list(root, ctx) {
  const el = h("section", { class: "card", id: "schedule-list" }, h("p", { class: "muted" }, "Loading…"));
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Schedules")), el);
  async function refresh() {
    let data;
    try {
      data = await api("/v1/schedules");
    } catch (e) {
      fill(el, e.status === 404 ? notAvailable() : errorBox(e, "schedules"));
      return;
    }
    const rows = data.schedules || [];
    if (!rows.length) return fill(el, empty("No schedules", "Add a [schedules.NAME] table to errand.toml."));
    const cols = [
      { label: "Name", cell: (x) => h("span", {}, h("a", { href: `#/schedules/${encodeURIComponent(x.name)}` }, x.name),
        x.paused ? h("span", { class: "badge paused" }, "paused") : null) },
      { label: "When", cell: spec },
      { label: "Kind → queue", cell: (x) => h("span", {}, h("span", { class: "mono" }, x.kind), h("span", { class: "muted" }, ` → ${x.queue}`)) },
      { label: "Next fire", cell: (x) => x.paused ? h("span", { class: "muted" }, "paused") : time(x.next_fire_at) },
      { label: "Last fire", cell: (x) => time(x.last_fire_at, { compact: true }) },
      { label: "Last run", cell: (x) => x.last_run ? h("span", {}, stateBadge(x.last_run.status),
        " ", h("a", { href: `#/jobs/${x.last_run.job_id}` }, `#${x.last_run.job_id}`),
        h("span", { class: "muted" }, ` · ${duration(x.last_run.duration_ms)}`),
        x.last_run.last_error && x.last_run.status !== "succeeded"
          ? h("div", { class: "small error-text", title: x.last_run.last_error }, x.last_run.last_error.split("\n")[0]) : null) : h("span", { class: "muted" }, "never ran") },
    ];
    if (ctx.session.canAct) cols.push({ label: "", class: "actions", cell: (x) => actionButtons(x, ctx, refresh) });
    fill(el, h("div", { class: "scroll" }, table(cols, rows, { rowAttrs: (x) => ({ "data-schedule": x.name }) })));
  }
  await refresh();
  return { refresh };
}

/** The latest run: its state and job, when it ran, what it returned and the error it failed with. */
function lastRun(r) {
  const card = (...rows) => h("section", { class: "card", id: "last-run" }, h("h2", {}, "Last run"), ...rows);
  if (!r) return card(empty("Never ran", ""));
  return card(h("table", { class: "fields" }, h("tbody", {},
    h("tr", {}, h("th", {}, "job"), h("td", {}, r.status ? stateBadge(r.status) : null, " ", h("a", { href: `#/jobs/${r.job_id}` }, `#${r.job_id}`))),
    h("tr", {}, h("th", {}, "finished"), h("td", {}, r.finished_at ? time(r.finished_at) : h("span", { class: "muted" }, "not yet"), h("span", { class: "muted" }, ` · ${duration(r.duration_ms)}`))),
    h("tr", {}, h("th", {}, "result"), h("td", { class: "last-result" }, jsonBlock(r.result))),
    r.last_error ? h("tr", {}, h("th", {}, "error"), h("td", {}, h("pre", { class: "error-text-block last-error" }, r.last_error))) : null)));
}

async function detail(root, ctx, name) {
  const head = h("div", { class: "page-head" }, h("h1", {}, `Schedule ${name}`));
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  root.append(h("p", { class: "crumbs" }, h("a", { href: "#/schedules" }, "← Schedules")), head, body);
  async function refresh() {
    let d;
    try {
      d = await api(`/v1/schedules/${encodeURIComponent(name)}?next=5`);
    } catch (e) {
      fill(body, e.status === 404
        ? (e.code === "not_found" || e.code === "schedule_not_found" ? empty(`No schedule named “${name}”`, "") : notAvailable())
        : errorBox(e, `schedule ${name}`));
      return;
    }
    const x = d.schedule;
    fill(head, h("h1", {}, `Schedule ${x.name} `, x.paused ? h("span", { class: "badge paused" }, "paused") : null),
      h("div", { class: "head-actions" }, actionButtons(x, ctx, refresh)));
    const st = d.stats || {};
    fill(body, 
      h("div", { class: "cards-row" },
        h("section", { class: "card" }, h("h2", {}, "Definition"), h("table", { class: "fields" }, h("tbody", {},
          h("tr", {}, h("th", {}, "when"), h("td", {}, spec(x))),
          h("tr", {}, h("th", {}, "kind"), h("td", { class: "mono" }, x.kind)),
          h("tr", {}, h("th", {}, "queue"), h("td", {}, x.queue)),
          h("tr", {}, h("th", {}, "last fire"), h("td", {}, time(x.last_fire_at))),
          h("tr", {}, h("th", {}, "runs avg / p95 / max"), h("td", {}, `${duration(st.avg_ms)} / ${duration(st.p95_ms)} / ${duration(st.max_ms)}`))))),
        lastRun(x.last_run),
        h("section", { class: "card", id: "next-fires" }, h("h2", {}, "Next fires"),
          (d.next_fires || []).length ? h("ol", { class: "fires" }, d.next_fires.map((t) => h("li", {}, time(t.at))))
            : empty(x.paused ? "Paused" : "No upcoming fires", ""))),
      h("section", { class: "card", id: "history" }, h("h2", {}, "Recent runs"),
        (d.runs || []).length ? table([
          { label: "Fire time", cell: (r) => time(r.fire_at) },
          { label: "Job", cell: (r) => r.job_id ? h("a", { href: `#/jobs/${r.job_id}` }, `#${r.job_id}`) : "—" },
          { label: "State", cell: (r) => r.status ? stateBadge(r.status) : "—" },
          { label: "Duration", class: "num", cell: (r) => duration(r.duration_ms) },
        ], d.runs) : empty("No runs yet", "")),
      (d.skipped || []).length ? h("section", { class: "card" }, h("h2", {}, `Skipped fires (${num(d.skipped.length)})`),
        table([{ label: "Fire time", cell: (r) => time(r.fire_at) }, { label: "Why", cell: (r) => r.reason }], d.skipped)) : null);
  }
  await refresh();
  return { refresh };
}
