// The throughput chart: per-bucket succeeded and failed jobs as stacked bars, and the
// failure rate as a line on its own axis, drawn as inline SVG (no chart library).

import { s, h, num } from "./ui.js";

const W = 760, H = 220, L = 48, R = 44, T = 14, B = 28;

/** Picks a round axis maximum at or above `v`. */
function niceMax(v) {
  if (v <= 0) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const hhmm = (d) => `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;

/** An <svg> of the buckets ([{start, succeeded, failed}], oldest first). */
export function throughputChart(buckets) {
  const n = buckets.length;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": "Jobs finished per minute over the last hour: succeeded and failed, and the failure rate" });
  if (!n) return svg;
  const max = niceMax(Math.max(...buckets.map((b) => b.succeeded + b.failed)));
  const pw = W - L - R, ph = H - T - B;
  const bw = pw / n;
  const y = (v) => T + ph - (v / max) * ph;
  const yr = (r) => T + ph - r * ph;

  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i, yy = y(v);
    svg.append(s("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "gridline" }),
      s("text", { x: L - 6, y: yy + 4, class: "axis", "text-anchor": "end" }, num(Math.round(v * 10) / 10)),
      s("text", { x: W - R + 6, y: yr(i / 4) + 4, class: "axis rate" }, `${i * 25}%`));
  }
  const labelEvery = Math.max(1, Math.ceil(n / 6));
  const points = [];
  buckets.forEach((b, i) => {
    const x = L + i * bw;
    const total = b.succeeded + b.failed;
    const d = new Date(b.start);
    const g = s("g", { class: "bar" },
      s("title", {}, `${hhmm(d)} UTC: ${num(b.succeeded)} succeeded, ${num(b.failed)} failed` +
        (total ? ` (${((b.failed / total) * 100).toFixed(1)}% failed)` : "")),
      s("rect", { x: x + 1, width: Math.max(1, bw - 2), y: y(b.succeeded), height: y(0) - y(b.succeeded), class: "ok" }),
      s("rect", { x: x + 1, width: Math.max(1, bw - 2), y: y(total), height: y(b.succeeded) - y(total), class: "fail" }),
      // An invisible full-height target so the tooltip shows on empty minutes too.
      s("rect", { x, width: bw, y: T, height: ph, class: "hit" }));
    svg.append(g);
    if (i % labelEvery === 0) {
      svg.append(s("text", { x: x + bw / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, hhmm(d)));
    }
    if (total) points.push(`${(x + bw / 2).toFixed(1)},${yr(b.failed / total).toFixed(1)}`);
  });
  if (points.length > 1) svg.append(s("polyline", { points: points.join(" "), class: "rate-line" }));
  for (const p of points) {
    const [cx, cy] = p.split(",");
    svg.append(s("circle", { cx, cy, r: 2.2, class: "rate-dot" }));
  }
  svg.append(s("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), class: "baseline" }));
  return svg;
}

/** The legend and totals under the chart. */
export function chartLegend(buckets) {
  const ok = buckets.reduce((a, b) => a + b.succeeded, 0);
  const bad = buckets.reduce((a, b) => a + b.failed, 0);
  const rate = ok + bad ? ((bad / (ok + bad)) * 100).toFixed(1) : "0.0";
  return h("div", { class: "legend" },
    h("span", {}, h("i", { class: "sw ok" }), `succeeded ${num(ok)}`),
    h("span", {}, h("i", { class: "sw fail" }), `failed ${num(bad)}`),
    h("span", {}, h("i", { class: "sw rate" }), `failure rate ${rate}%`),
    h("span", { class: "muted" }, "per minute, last hour, UTC"));
}
