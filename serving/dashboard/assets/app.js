// lambdalake dashboard: plain browser code, no dependencies. It polls the
// query API and draws an SVG bar chart: buckets before the boundary B come
// from batch views, buckets at or after B from the speed layer.
"use strict";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 3000;
const SVGNS = "http://www.w3.org/2000/svg";
let views = [];
let timer = null;

function headers() {
  const tok = $("token").value.trim();
  return tok ? { Authorization: "Bearer " + tok } : {};
}

async function getJSON(path) {
  const r = await fetch(path, { headers: headers() });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${r.status}: ${body.error || r.statusText}`);
  return body;
}

function status(msg, isError) {
  const s = $("status");
  s.textContent = msg;
  s.className = "status" + (isError ? " error" : "");
}

function parseStep(s) { // "1m", "5m", "1h"
  const m = /^(\d+)([smhd])$/.exec(s || "");
  if (!m) return 60;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

function fmtStep(sec) {
  if (sec % 3600 === 0) return sec / 3600 + "h";
  if (sec % 60 === 0) return sec / 60 + "m";
  return sec + "s";
}

function fillSelect(sel, items, keep) {
  const old = keep ? sel.value : null;
  sel.innerHTML = "";
  for (const [value, label] of items) {
    const o = document.createElement("option");
    o.value = value; o.textContent = label;
    sel.appendChild(o);
  }
  if (old && items.some(([v]) => v === old)) sel.value = old;
}

function currentView() { return views.find((v) => v.name === $("view").value); }

function onViewChange() {
  const v = currentView();
  if (!v) return;
  fillSelect($("metric"), v.metrics.map((m) => [m.name, `${m.name} (${m.agg})`]), true);
  const g = parseStep(v.granularity);
  const steps = [1, 5, 15, 60].map((k) => g * k).filter((s) => s <= 3600 && 3600 % s === 0);
  fillSelect($("step"), steps.map((s) => [fmtStep(s), fmtStep(s)]), true);
  if (!$("step").dataset.touched) {
    // Default: about 60–120 bars over the range.
    const hours = Number($("range").value);
    const want = (hours * 3600) / 90;
    const best = steps.reduce((a, s) => (Math.abs(s - want) < Math.abs(a - want) ? s : a), steps[0]);
    $("step").value = fmtStep(best);
  }
  fillSelect($("group"), [["", "(total)"], ...v.dimensions.map((d) => [d, d])], true);
}

async function loadViews() {
  const body = await getJSON("/v1/views");
  views = body.views || [];
  fillSelect($("view"), views.map((v) => [v.name, v.name]), true);
  onViewChange();
}

async function refresh() {
  clearTimeout(timer);
  try {
    if (views.length === 0) await loadViews();
    const v = currentView();
    if (!v) { status("no views configured"); return; }
    const step = parseStep($("step").value);
    const now = Date.now();
    const to = Math.ceil(now / (step * 1000)) * step * 1000;
    const from = to - Number($("range").value) * 3600 * 1000;
    const q = new URLSearchParams({ from: String(from), to: String(to), step: $("step").value, metrics: $("metric").value });
    if ($("group").value) q.set("group_by", $("group").value);
    const ans = await getJSON(`/v1/views/${encodeURIComponent(v.name)}/query?${q}`);
    draw(ans, from, to, step * 1000);
    const gaps = (ans.gaps || []).length;
    status(`${ans.rows.length} rows · boundary ${ans.boundary || "none yet"} · ${gaps ? gaps + " gaps" : "no gaps"} · updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    status("query failed: " + e.message, true);
  }
  loadJobs();
  timer = setTimeout(refresh, REFRESH_MS);
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function draw(ans, from, to, stepMs) {
  const svg = $("chart");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = svg.clientWidth || 900, H = svg.clientHeight || 360;
  const pad = { l: 60, r: 12, t: 16, b: 28 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const metric = $("metric").value;
  const group = $("group").value;
  const boundary = ans.boundary ? Date.parse(ans.boundary) : null;

  // Stack groups per bucket: one bar per bucket, segments per group.
  const buckets = new Map();
  for (const row of ans.rows) {
    const t = Date.parse(row.t);
    const val = Number(row[metric]) || 0;
    const b = buckets.get(t) || { total: 0, parts: [] };
    b.parts.push({ key: group ? String(row[group]) : "", val });
    b.total += val;
    buckets.set(t, b);
  }
  let maxY = 0;
  for (const b of buckets.values()) maxY = Math.max(maxY, b.total);
  if (maxY === 0) maxY = 1;
  const x = (t) => pad.l + ((t - from) / (to - from)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / maxY) * (H - pad.t - pad.b);
  const bw = Math.max(1, x(from + stepMs) - x(from) - 1);

  const axis = el("g", { class: "axis" }, svg);
  el("line", { x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }, axis);
  for (let i = 0; i <= 4; i++) {
    const v = (maxY * i) / 4;
    el("line", { x1: pad.l - 4, y1: y(v), x2: pad.l, y2: y(v) }, axis);
    const tx = el("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, axis);
    tx.textContent = v >= 1000 ? (v / 1000).toFixed(1) + "k" : String(Math.round(v * 100) / 100);
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const t = from + ((to - from) * i) / ticks;
    const tx = el("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, axis);
    tx.textContent = new Date(t).toISOString().slice(11, 16) + "Z";
  }

  const bars = el("g", { class: "bars" }, svg);
  for (const [t, b] of [...buckets.entries()].sort((a, c) => a[0] - c[0])) {
    const source = boundary !== null && t < boundary ? "batch" : "speed";
    let acc = 0;
    b.parts.sort((p, q) => (p.key < q.key ? -1 : 1));
    for (const p of b.parts) {
      const r = el("rect", {
        class: `bar ${source}`, x: x(t), width: bw,
        y: y(acc + p.val), height: Math.max(0, y(acc) - y(acc + p.val)),
        "data-t": new Date(t).toISOString(), "data-source": source,
      }, bars);
      const title = el("title", {}, r);
      title.textContent = `${new Date(t).toISOString()} ${p.key} ${metric}=${p.val} (${source})`;
      acc += p.val;
    }
  }
  if (boundary !== null && boundary >= from && boundary <= to) {
    el("line", { class: "boundary", x1: x(boundary), x2: x(boundary), y1: pad.t - 6, y2: H - pad.b }, svg);
    const lab = el("text", { class: "boundary-label", x: x(boundary) + 4, y: pad.t + 4 }, svg);
    lab.textContent = "B " + ans.boundary.slice(11, 16) + "Z";
  }
  $("approx").textContent = (ans.approximate || []).includes(metric) ? `· ${metric} is approximate (HLL) where rolled up` : "";
}

async function loadJobs() {
  const tbody = $("jobs").querySelector("tbody");
  try {
    const body = await getJSON("/v1/jobs?limit=15");
    tbody.innerHTML = "";
    for (const r of body.runs || []) {
      const tr = document.createElement("tr");
      const took = ((Date.parse(r.end) - Date.parse(r.start)) / 1000).toFixed(2) + " s";
      const cells = [r.job, r.runner, r.slot ? r.slot.slice(11, 19) : "manual", r.start.slice(0, 19) + "Z", took, r.outcome, r.items, r.error || ""];
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = String(c);
        if (i === 5) td.className = r.outcome;
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    }
    if (!tbody.children.length) tbody.innerHTML = '<tr><td colspan="8">no runs yet</td></tr>';
  } catch (e) {
    tbody.innerHTML = `<tr><td colspan="8">job history unavailable: ${e.message}</td></tr>`;
  }
}

$("token").value = localStorage.getItem("lambdalake.token") || "";
$("token").addEventListener("change", () => { localStorage.setItem("lambdalake.token", $("token").value); views = []; refresh(); });
$("view").addEventListener("change", () => { onViewChange(); refresh(); });
$("step").addEventListener("change", () => { $("step").dataset.touched = "1"; refresh(); });
for (const id of ["metric", "range", "group"]) $(id).addEventListener("change", refresh);
refresh();
