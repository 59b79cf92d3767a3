// Jobs: filter by state (stored or derived), queue, kind and reference; cursor paging; retry
// or cancel the selected jobs or the whole filtered set, each after a confirmation.

import { api, qs } from "../api.js";
import { h, fill, num, time, empty, errorBox, confirmAction, act, stateBadge, STATES, DERIVED } from "../ui.js";

const PAGE = 50;

export async function mount(root, ctx) {
  const q = ctx.query;
  const filter = {
    state: q.get("status") || q.get("derived") || "",
    queue: q.get("queue") || "",
    kind: q.get("kind") || "",
    reference: q.get("reference") || "",
  };
  // Cursor stack: cursors[i] is the cursor that loads page i (page 0 has none).
  const cursors = [q.get("cursor") || ""];
  let page = 0;
  let lastJobs = [];
  const selected = new Set();

  const stateSel = h("select", { name: "state", id: "f-state" },
    h("option", { value: "" }, "any state"),
    h("optgroup", { label: "status" }, STATES.map((st) => h("option", { value: st }, st))),
    h("optgroup", { label: "derived" }, DERIVED.map((st) => h("option", { value: st }, st))));
  stateSel.value = filter.state;
  const queueIn = h("input", { name: "queue", id: "f-queue", placeholder: "any queue", value: filter.queue, list: "queue-names" });
  const kindIn = h("input", { name: "kind", id: "f-kind", placeholder: "any kind", value: filter.kind });
  const refIn = h("input", { name: "reference", id: "f-reference", placeholder: "type:id", value: filter.reference });
  const queueList = h("datalist", { id: "queue-names" });
  const form = h("form", { class: "filters", id: "job-filters", onsubmit: (ev) => { ev.preventDefault(); apply(); } },
    h("label", {}, "State", stateSel), h("label", {}, "Queue", queueIn, queueList),
    h("label", {}, "Kind", kindIn), h("label", {}, "Reference", refIn),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("button", { type: "button", class: "link", onclick: () => ctx.navigate("#/jobs") }, "Clear"));
  stateSel.addEventListener("change", apply);

  const bulkEl = h("div", { class: "bulk" });
  const listEl = h("div", { class: "card", id: "job-list" }, h("p", { class: "muted" }, "Loading jobs…"));
  const pager = h("div", { class: "pager" });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Jobs")), form, bulkEl, listEl, pager);

  function apply() {
    const st = stateSel.value;
    const params = {
      status: STATES.includes(st) ? st : "", derived: DERIVED.includes(st) ? st : "",
      queue: queueIn.value.trim(), kind: kindIn.value.trim(), reference: refIn.value.trim(),
    };
    ctx.navigate(`#/jobs${qs(params)}`, { replace: true });
  }

  function apiQuery(cursor) {
    const st = filter.state;
    return qs({
      status: STATES.includes(st) ? st : "", derived: DERIVED.includes(st) ? st : "",
      queue: filter.queue, kind: filter.kind, reference: filter.reference, limit: PAGE, cursor,
    });
  }

  let lastSig = "";
  let unchanged = 0;
  async function refresh(force = false) {
    let data;
    try {
      data = await api(`/v1/jobs${apiQuery(cursors[page])}`);
    } catch (e) {
      fill(listEl, errorBox(e, "jobs"));
      return;
    }
    // Re-render only when the page changed (or every tenth refresh, for the relative times),
    // so a row being selected or a link being clicked is not replaced under the user.
    const sig = JSON.stringify(data);
    if (sig === lastSig && !force && ++unchanged % 10 !== 0) return;
    lastSig = sig;
    lastJobs = data.jobs || [];
    for (const id of [...selected]) if (!lastJobs.some((j) => j.id === id)) selected.delete(id);
    if (data.next_cursor !== null && data.next_cursor !== undefined) cursors[page + 1] = String(data.next_cursor);
    else cursors.length = page + 1;
    renderList();
    renderPager();
    renderBulk();
  }

  function renderList() {
    if (!lastJobs.length) {
      const filtered = Object.values(filter).some(Boolean);
      fill(listEl, empty(filtered ? "No jobs match these filters" : "No jobs yet",
        filtered ? "Change or clear the filters above." : "Jobs appear here once they are enqueued."));
      return;
    }
    const can = ctx.session.canAct;
    const all = h("input", { type: "checkbox", title: "Select this page", checked: lastJobs.every((j) => selected.has(j.id)),
      onchange: (ev) => { for (const j of lastJobs) ev.target.checked ? selected.add(j.id) : selected.delete(j.id); renderList(); renderBulk(); } });
    fill(listEl, h("div", { class: "scroll" }, h("table", { class: "grid jobs" },
      h("thead", {}, h("tr", {}, can ? h("th", { class: "sel" }, all) : null,
        ["ID", "State", "Queue", "Kind", "Attempt", "Reference", "Created", "Run at / finished", "Last error"].map((t) => h("th", {}, t)))),
      h("tbody", {}, lastJobs.map((j) => h("tr", { "data-job": j.id, "data-status": j.status },
        can ? h("td", { class: "sel" }, h("input", { type: "checkbox", checked: selected.has(j.id),
          onchange: (ev) => { ev.target.checked ? selected.add(j.id) : selected.delete(j.id); renderBulk(); } })) : null,
        h("td", { class: "id" }, h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)),
        h("td", {}, stateBadge(j.status, j.derived)),
        h("td", {}, j.queue),
        h("td", { class: "mono" }, j.kind),
        h("td", { class: "num" }, `${j.attempt}/${j.max_attempts}`),
        h("td", { class: "mono small" }, j.reference ? `${j.reference.type}:${j.reference.id}` : ""),
        h("td", {}, time(j.created_at, { compact: true })),
        h("td", {}, j.finished_at ? time(j.finished_at, { compact: true }) : time(j.run_at, { compact: true })),
        h("td", { class: "err-cell", title: j.last_error || "" }, j.last_error ? firstLine(j.last_error) : "")))))));
  }

  function renderPager() {
    const hasNext = cursors.length > page + 1;
    fill(pager, 
      h("button", { disabled: page === 0, id: "page-prev", onclick: () => { page--; refresh(true); } }, "← Newer"),
      h("span", { class: "muted" }, `page ${page + 1} · ${num(lastJobs.length)} shown · newest first`),
      h("button", { disabled: !hasNext, id: "page-next", onclick: () => { page++; refresh(true); } }, "Older →"));
  }

  function renderBulk() {
    if (!ctx.session.canAct) return fill(bulkEl, );
    const ids = [...selected];
    const sel = lastJobs.filter((j) => selected.has(j.id));
    const retryable = sel.filter((j) => j.status === "failed" || j.status === "cancelled").map((j) => j.id);
    const cancellable = sel.filter((j) => j.status === "queued" || j.status === "running").map((j) => j.id);
    const desc = describe(filter);
    const st = filter.state;
    const parts = [];
    if (ids.length) {
      parts.push(h("span", { class: "muted" }, `${num(ids.length)} selected:`),
        h("button", { id: "retry-selected", disabled: !retryable.length, onclick: () => bulk("retry", { ids: retryable }, `${retryable.length} selected job(s)`) }, `Retry ${retryable.length}`),
        h("button", { id: "cancel-selected", class: "warn", disabled: !cancellable.length, onclick: () => bulk("cancel", { ids: cancellable }, `${cancellable.length} selected job(s)`) }, `Cancel ${cancellable.length}`));
    }
    // The filtered set: retry takes every failed job matching queue/kind/reference; cancel
    // takes one stored status. Derived views are not a filter the bulk endpoints know, so
    // they act through the selection only.
    const f = { queue: filter.queue || undefined, kind: filter.kind || undefined, reference: filter.reference || undefined };
    if (st === "failed" && lastJobs.length) {
      parts.push(h("button", { id: "retry-all", class: "primary", onclick: () => bulk("retry", f, `every failed job ${desc}`) }, "Retry all matching"));
    }
    if ((st === "queued" || st === "running") && lastJobs.length) {
      parts.push(h("button", { id: "cancel-all", class: "danger", onclick: () => bulk("cancel", { ...f, status: st }, `every ${st} job ${desc}`) }, "Cancel all matching"));
    }
    fill(bulkEl, ...parts);
  }

  async function bulk(action, body, what) {
    const ok = await confirmAction(action === "retry" ? "Retry jobs?" : "Cancel jobs?",
      action === "retry"
        ? `This puts ${what} back in its queue with a fresh attempt budget.`
        : `This cancels ${what}. Queued jobs stop at once; running jobs are asked to stop. This cannot be undone (retry creates a new attempt).`,
      { confirmLabel: action === "retry" ? "Retry" : "Cancel jobs", danger: action !== "retry" });
    if (!ok) return;
    await act(() => api(`/v1/jobs/${action}`, { method: "POST", body }),
      (r) => action === "retry" ? `Retried ${num(r?.retried ?? 0)} job(s)` : `Cancelled ${num(r?.cancelled ?? 0)} job(s)`);
    selected.clear();
    await refresh(true);
  }

  api("/v1/queues").then((r) => fill(queueList, ...(r.queues || []).map((x) => h("option", { value: x.name })))).catch(() => {});
  await refresh(true);
  return { refresh: () => refresh(false) };
}

function describe(f) {
  const parts = [];
  if (f.queue) parts.push(`in queue ${f.queue}`);
  if (f.kind) parts.push(`of kind ${f.kind}`);
  if (f.reference) parts.push(`with reference ${f.reference}`);
  return parts.length ? parts.join(", ") : "in every queue";
}

function firstLine(s) {
  const line = s.split("\n")[0];
  return line.length > 120 ? `${line.slice(0, 117)}…` : line;
}
