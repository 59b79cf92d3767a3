// Overview: every queue's counts by state with pause/resume, the last hour's throughput and
// failure rate, live workers and the next schedule fires.

import { api } from "../api.js";
import { h, fill, num, time, duration, empty, errorBox, confirmAction, act, table, STATES } from "../ui.js";
import { throughputChart, chartLegend } from "../chart.js";

export async function mount(root, ctx) {
  const queuesEl = h("section", { class: "card", id: "queues" }, h("p", { class: "muted" }, "Loading queues…"));
  const chartEl = h("div", { class: "chart-wrap" }, h("p", { class: "muted" }, "Loading throughput…"));
  const workersEl = h("div", { id: "overview-workers" });
  const schedEl = h("div", { id: "overview-schedules" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Overview")),
    h("div", { class: "cards-row" },
      h("section", { class: "card wide", id: "throughput" }, h("h2", {}, "Throughput, last hour"), chartEl),
      h("div", { class: "side" },
        h("section", { class: "card", id: "workers-card" }, h("h2", {}, h("a", { href: "#/workers" }, "Live workers")), workersEl),
        h("section", { class: "card", id: "next-fires" }, h("h2", {}, h("a", { href: "#/schedules" }, "Next schedule fires")), schedEl))),
    queuesEl);

  async function refresh() {
    const [queues, tp, workers, scheds] = await Promise.allSettled([
      api("/v1/queues"),
      api("/v1/stats/throughput?window=1h&bucket=1m"),
      api("/v1/workers"),
      api("/v1/schedules"),
    ]);
    renderQueues(queuesEl, queues, ctx);
    if (tp.status === "fulfilled") {
      const b = tp.value.buckets || [];
      fill(chartEl, throughputChart(b), chartLegend(b));
    } else if (tp.reason?.status === 404) {
      fill(chartEl, empty("Not available", "This server does not serve GET /v1/stats/throughput."));
    } else fill(chartEl, errorBox(tp.reason, "throughput"));
    if (workers.status === "fulfilled") {
      const ws = workers.value.workers || [];
      const slots = ws.reduce((a, w) => a + (w.queues || []).reduce((x, q) => x + (q.concurrency || 0), 0), 0);
      fill(workersEl, ws.length
        ? h("div", {}, h("div", { class: "big" }, num(ws.length)),
          h("p", { class: "muted" }, `${num(slots)} slots on ${num(new Set(ws.map((w) => w.host)).size)} host(s)`))
        : empty("No live workers", "Nothing is claiming jobs. Start `errand serve` or `errand worker`."));
    } else fill(workersEl, errorBox(workers.reason, "workers"));
    if (scheds.status === "fulfilled") {
      const list = (scheds.value.schedules || []).filter((x) => x.next_fire_at && !x.paused)
        .sort((a, b) => a.next_fire_at.localeCompare(b.next_fire_at)).slice(0, 5);
      fill(schedEl, list.length
        ? h("ul", { class: "fires" }, list.map((x) => h("li", {},
          h("a", { href: `#/schedules/${encodeURIComponent(x.name)}` }, x.name), " ", time(x.next_fire_at, { compact: true }))))
        : empty("No upcoming fires", "No active schedules."));
    } else if (scheds.reason?.status === 404) {
      fill(schedEl, empty("Not available", "This server has no schedules API."));
    } else fill(schedEl, errorBox(scheds.reason, "schedules"));
  }
  await refresh();
  return { refresh };
}

function renderQueues(el, res, ctx) {
  const head = h("div", { class: "card-head" }, h("h2", {}, "Queues"));
  if (res.status !== "fulfilled") return fill(el, head, errorBox(res.reason, "queues"));
  const queues = res.value.queues || [];
  if (!queues.length) {
    return fill(el, head, empty("No queues yet", "A queue appears when its first job is enqueued."));
  }
  const countCell = (st) => (q) => {
    const n = q.counts?.[st] ?? 0;
    const query = st === "scheduled" ? `derived=scheduled` : `status=${st}`;
    return n ? h("a", { class: `count st-text-${st}`, href: `#/jobs?${query}&queue=${encodeURIComponent(q.name)}` }, num(n))
      : h("span", { class: "count zero" }, "0");
  };
  const cols = [
    { label: "Queue", cell: (q) => h("span", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}`, class: "qname" }, q.name),
      q.paused ? h("span", { class: "badge paused" }, "paused") : null) },
    ...STATES.map((st) => ({ label: st, class: `num th-${st}`, cell: countCell(st) })),
    { label: "scheduled", class: "num th-scheduled", cell: countCell("scheduled") },
    { label: "Mix", cell: (q) => mixBar(q.counts || {}) },
    { label: "Oldest ready", cell: (q) => q.oldest_ready_run_at ? h("span", { title: `waiting ${duration(q.oldest_ready_age_ms)}` }, time(q.oldest_ready_run_at, { compact: true })) : h("span", { class: "muted" }, "—") },
    { label: "Last hour", class: "num", cell: (q) => h("span", {}, num(q.recent?.succeeded ?? 0), " ok",
      (q.recent?.failed ?? 0) ? h("span", { class: "st-text-failed" }, ` · ${num(q.recent.failed)} failed`) : null) },
    { label: "Duration avg / p95", class: "num", cell: (q) => `${duration(q.recent?.duration_avg_ms)} / ${duration(q.recent?.duration_p95_ms)}` },
    { label: "Limits", cell: (q) => limitsText(q) ? h("span", { class: "mono", "data-field": "limits" }, limitsText(q)) : h("span", { class: "muted" }, "—") },
  ];
  if (ctx.session.canAct) {
    cols.push({ label: "", class: "actions", cell: (q) => q.paused
      ? h("button", { class: "small", "data-action": "resume", onclick: () => setPaused(q.name, false, ctx) }, "Resume")
      : h("button", { class: "small warn", "data-action": "pause", onclick: () => setPaused(q.name, true, ctx) }, "Pause") });
  }
  fill(el, head, h("div", { class: "scroll" }, table(cols, queues, {
    rowAttrs: (q) => ({ "data-queue": q.name, class: q.paused ? "is-paused" : "" }) })));
}

/** A queue's flow-control limits as the CLI's `queues list` writes them, or "". */
function limitsText(q) {
  const parts = [];
  if (q.global_concurrency) parts.push(`global ${q.global_concurrency}`);
  if (q.key_concurrency) parts.push(`per key ${q.key_concurrency}`);
  if (q.rate_limit) parts.push(`rate ${q.rate_limit}`);
  return parts.join(", ");
}

function mixBar(c) {
  const parts = [...STATES, "scheduled"].map((st) => [st, st === "queued" ? (c.queued || 0) - (c.scheduled || 0) : (c[st] || 0)]);
  const total = parts.reduce((a, [, n]) => a + Math.max(0, n), 0);
  if (!total) return h("span", { class: "muted" }, "empty");
  return h("div", { class: "mix", title: parts.filter(([, n]) => n > 0).map(([st, n]) => `${st}: ${num(n)}`).join(", ") },
    parts.filter(([, n]) => n > 0).map(([st, n]) => h("i", { class: `bg-${st}`, style: { width: `${Math.max(2, (n / total) * 100)}%` } })));
}

async function setPaused(name, pause, ctx) {
  if (pause) {
    const ok = await confirmAction(`Pause queue “${name}”?`,
      "Workers stop claiming new jobs from this queue until it is resumed. Running jobs finish.",
      { confirmLabel: "Pause queue" });
    if (!ok) return;
  }
  await act(() => api(`/v1/queues/${encodeURIComponent(name)}/${pause ? "pause" : "resume"}`, { method: "POST" }),
    pause ? `Queue ${name} paused` : `Queue ${name} resumed`);
  ctx.navigate(location.hash || "#/", { replace: true });
}
