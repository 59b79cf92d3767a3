// Workers: every registered worker process with its host, queues and concurrency, and how
// long ago it last sent a heartbeat.

import { api } from "../api.js";
import { h, fill, time, empty, errorBox, table, num } from "../ui.js";

/** A worker not seen for this long is probably gone (the pruner removes it later). */
const LATE_MS = 30000;

export async function mount(root) {
  const el = h("section", { class: "card", id: "worker-list" }, h("p", { class: "muted" }, "Loading…"));
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Workers")), el);
  async function refresh() {
    let data;
    try {
      data = await api("/v1/workers");
    } catch (e) {
      fill(el, errorBox(e, "workers"));
      return;
    }
    const ws = data.workers || [];
    if (!ws.length) return fill(el, empty("No live workers", "Nothing is claiming jobs. Start `errand serve` or `errand worker`."));
    const now = Date.now();
    fill(el, h("div", { class: "scroll" }, table([
      { label: "Host", cell: (w) => h("strong", {}, w.host) },
      { label: "PID", class: "num", cell: (w) => String(w.pid) },
      { label: "Queues (concurrency)", cell: (w) => h("span", { class: "chips" },
        (w.queues || []).map((q) => h("span", { class: "chip" }, q.name, h("b", {}, ` ×${q.concurrency}`)))) },
      { label: "Slots", class: "num", cell: (w) => num(w.concurrency) },
      { label: "Version", cell: (w) => h("span", { class: "mono small" }, w.version) },
      { label: "Started", cell: (w) => time(w.started_at, { compact: true }) },
      { label: "Last heartbeat", cell: (w) => {
        const late = now - new Date(w.last_seen_at).getTime() > LATE_MS;
        return h("span", { class: late ? "late" : "fresh", title: late ? "No heartbeat for over 30 s: it may be gone" : "" },
          h("i", { class: "dot" }), time(w.last_seen_at));
      } },
      { label: "ID", cell: (w) => h("span", { class: "mono small muted" }, w.id) },
    ], ws, { rowAttrs: (w) => ({ "data-worker": w.id }) })),
    h("p", { class: "muted small" }, `${num(ws.length)} worker(s). A worker not heard from for 30 s is marked late.`));
  }
  await refresh();
  return { refresh };
}
