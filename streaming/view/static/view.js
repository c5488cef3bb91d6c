// ictal view: EEG traces, probability trend, CSA and alarm list of one bed (streaming/view/server.py routes).
// State for tests on document.body.dataset: ready ("1" once traces and trend are drawn), traces (series
// drawn with samples), trendPoints, alarms (rows), state (the bed's monitored state), pageStart (EEG page s).
"use strict";

const BANANA = [
  ["Fp1", "F7"], ["F7", "T3"], ["T3", "T5"], ["T5", "O1"],
  ["Fp2", "F8"], ["F8", "T4"], ["T4", "T6"], ["T6", "O2"],
  ["Fp1", "F3"], ["F3", "C3"], ["C3", "P3"], ["P3", "O1"],
  ["Fp2", "F4"], ["F4", "C4"], ["C4", "P4"], ["P4", "O2"],
  ["Fz", "Cz"], ["Cz", "Pz"],
];
const FILTER_PAD_S = 2.0;  // EEG fetched before the page so the display filters have settled

const S = {
  meta: null, bed: null, trend: new Map(), csa: new Map(), events: [], state: null,
  eegEnd: 0, eegStart: 0, pageStart: 0, follow: true, eegPlot: null, eegLabels: [], trendPlot: null,
  loadingEeg: false, eegAgain: false, selectedAlarm: null,
};

const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

function showError(e) { $("error").textContent = String(e); }

// -- display filters (RBJ biquads, applied forward on the fetched span) ---------------------------
function biquad(kind, f0, fs, q) {
  const w = 2 * Math.PI * f0 / fs, cw = Math.cos(w), alpha = Math.sin(w) / (2 * q);
  let b, a;
  if (kind === "lp") { b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]; }
  else if (kind === "hp") { b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]; }
  else { b = [1, -2 * cw, 1]; }
  a = [1 + alpha, -2 * cw, 1 - alpha];
  return { b0: b[0] / a[0], b1: b[1] / a[0], b2: b[2] / a[0], a1: a[1] / a[0], a2: a[2] / a[0] };
}

function applyFilter(x, f) {  // NaN (a gap) stays NaN; the filter starts afresh after it
  const y = new Float64Array(x.length);
  let x1 = 0, x2 = 0, y1 = 0, y2 = 0, fresh = true;
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i])) { y[i] = NaN; fresh = true; continue; }
    if (fresh) {  // start from the value held (no step at the start for a low-pass or notch)
      x1 = x2 = x[i]; y1 = y2 = f.kind === "hp" ? 0 : x[i]; fresh = false;
    }
    const v = f.b0 * x[i] + f.b1 * x1 + f.b2 * x2 - f.a1 * y1 - f.a2 * y2;
    x2 = x1; x1 = x[i]; y2 = y1; y1 = v; y[i] = v;
  }
  return y;
}

function displayFilters(fs) {
  const out = [];
  const hp = parseFloat($("hp").value), lp = parseFloat($("lp").value), notch = parseFloat($("notch").value);
  if (hp > 0) out.push(Object.assign(biquad("hp", hp, fs, Math.SQRT1_2), { kind: "hp" }));
  if (lp > 0 && lp < fs / 2) out.push(Object.assign(biquad("lp", lp, fs, Math.SQRT1_2), { kind: "lp" }));
  if (notch > 0 && notch < fs / 2) out.push(Object.assign(biquad("notch", notch, fs, 30), { kind: "notch" }));
  return out;
}

// -- EEG ------------------------------------------------------------------------------------------
function montageTraces(page) {
  const idx = Object.fromEntries(page.channels.map((c, i) => [c, i]));
  if ($("montage").value === "banana") {
    return BANANA.map(([a, b]) => ({
      label: `${a}-${b}`, data: page.data[idx[a]].map((v, i) => {
        const w = page.data[idx[b]][i];
        return v == null || w == null ? null : v - w;  // null: a gap
      }),
    }));
  }
  return page.channels.map((c, i) => ({ label: c, data: page.data[i] }));
}

function pageSeconds() { return parseFloat($("page").value); }

async function loadEeg() {
  if (!S.bed) return;
  if (S.loadingEeg) { S.eegAgain = true; return; }
  S.loadingEeg = true;
  try {
    const dur = pageSeconds();
    const start = S.pageStart;
    const page = await getJSON(`/api/beds/${encodeURIComponent(S.bed)}/eeg?start_s=${start - FILTER_PAD_S}` +
                               `&duration_s=${dur + FILTER_PAD_S}`);
    drawEeg(page, start, dur);
  } catch (e) { showError(e); }
  S.loadingEeg = false;
  if (S.eegAgain) { S.eegAgain = false; loadEeg(); }
}

function drawEeg(page, start, dur) {
  const traces = montageTraces(page);
  const n = traces.length, gain = parseFloat($("gain").value), fs = page.fs_hz;
  const filters = displayFilters(fs);
  const nIn = page.data.length ? page.data[0].length : 0;
  const skip = Math.max(0, Math.min(nIn, Math.round((start - page.t0_s) * fs)));
  const xs = [];
  for (let i = skip; i < nIn; i++) xs.push(page.t0_s + i / fs);
  const series = traces.map((tr, k) => {
    let y = Float64Array.from(tr.data, (v) => (v == null ? NaN : v));
    for (const f of filters) y = applyFilter(y, f);
    const base = n - k;
    const out = new Array(nIn - skip);
    for (let i = skip; i < nIn; i++) out[i - skip] = Number.isNaN(y[i]) ? null : base + y[i] / gain;
    return out;
  });
  const labels = traces.map((t) => t.label);
  const el = $("eeg");
  const width = el.clientWidth || 900;
  if (!S.eegPlot || S.eegLabels.join() !== labels.join()) {
    if (S.eegPlot) S.eegPlot.destroy();
    S.eegLabels = labels;
    S.eegPlot = new uPlot({
      width, height: 26 * n + 40, legend: { show: false }, cursor: { y: false },
      scales: { x: { time: false }, y: { range: [0, n + 1] } },
      axes: [
        { label: "stream time (s)", size: 40 },
        { splits: () => labels.map((_, k) => n - k), values: (u, vals) => vals.map((v) => labels[n - v] || ""),
          size: 60, grid: { show: false } },
      ],
      series: [{}].concat(labels.map(() => ({ stroke: "#111", width: 1, points: { show: false } }))),
      hooks: { draw: [drawEegMarks] },
    }, [xs].concat(series), el);
  } else {
    S.eegPlot.setData([xs].concat(series));
  }
  S.eegPlot.setScale("x", { min: start, max: start + dur });
  const drawn = series.filter((s) => s.some((v) => v != null)).length;
  document.body.dataset.traces = String(drawn);
  document.body.dataset.pageStart = start.toFixed(3);
  $("where").textContent = `${start.toFixed(1)}-${(start + dur).toFixed(1)} s` +
    ` (held ${S.eegStart.toFixed(1)} to ${S.eegEnd.toFixed(1)} s)`;
  markReady();
}

function alarmSpans() {
  const spans = [];
  const open = new Map();
  for (const e of S.events) {
    if (e.kind === "onset") open.set(e.onset_s, { onset_s: e.onset_s, offset_s: null, peak: e.peak, reason: null });
    else if (e.kind === "offset") {
      const a = open.get(e.onset_s) || { onset_s: e.onset_s, peak: e.peak };
      a.offset_s = e.offset_s; a.peak = Math.max(a.peak || 0, e.peak || 0); a.reason = e.reason;
      open.set(e.onset_s, a);
    }
  }
  for (const a of open.values()) spans.push(a);
  spans.sort((a, b) => a.onset_s - b.onset_s);
  return spans;
}

function drawEegMarks(u) {
  const ctx = u.ctx;
  ctx.save();
  for (const a of alarmSpans()) {
    const x = u.valToPos(a.onset_s, "x", true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.strokeStyle = "rgba(200,0,0,0.9)"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    ctx.fillStyle = "rgba(200,0,0,0.9)"; ctx.font = "bold 12px sans-serif";
    ctx.fillText("onset", x + 3, u.bbox.top + 12);
  }
  ctx.restore();
}

// -- trend and CSA --------------------------------------------------------------------------------
function trendData() {
  const ts = [...S.trend.keys()].sort((a, b) => a - b);
  const bin = S.meta.trend_bin_s;
  const xs = [], ps = [];
  for (let i = 0; i < ts.length; i++) {
    if (i > 0 && ts[i] - ts[i - 1] > bin * 1.5) { xs.push(ts[i - 1] + bin); ps.push(null); } // gap
    xs.push(ts[i]); ps.push(S.trend.get(ts[i]).p);
  }
  const on = S.meta.thresholds.tau_on, off = S.meta.thresholds.tau_off;
  return [xs, ps, xs.map(() => on ?? null), xs.map(() => off ?? null)];
}

function drawTrend() {
  const data = trendData();
  const el = $("trend");
  if (!S.trendPlot) {
    S.trendPlot = new uPlot({
      width: el.clientWidth || 900, height: 170, legend: { show: false }, cursor: { y: false },
      scales: { x: { time: false, range: trendRange }, y: { range: [0, 1] } },
      axes: [{ label: "stream time (s)", size: 40 }, { size: 60, label: "p(seizure)", values: (u, v) => v.map((x) => x.toFixed(1)) }],
      series: [{}, { stroke: "#111", width: 1.5, points: { show: false } },
        { stroke: "#d32f2f", dash: [6, 4], width: 1, points: { show: false } },
        { stroke: "#f57c00", dash: [2, 3], width: 1, points: { show: false } }],
      hooks: { drawClear: [drawTrendSpans], draw: [drawPageBox, drawCsa], ready: [hookTrendClick] },
    }, data, el);
  } else {
    S.trendPlot.setData(data);
  }
  document.body.dataset.trendPoints = String(data[0].length);
  markReady();
}

function trendRange() {  // the EEG held (and any later probability): the trend and CSA share it
  const ts = [...S.trend.keys()];
  const hi = Math.max(S.eegEnd, ts.length ? Math.max(...ts) + S.meta.trend_bin_s : -Infinity);
  const lo = Math.min(S.eegStart, ts.length ? Math.min(...ts) : Infinity);
  return Number.isFinite(lo) && Number.isFinite(hi) && hi > lo ? [lo, hi] : [0, 1];
}

function drawTrendSpans(u) {
  const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
  const bin = S.meta.trend_bin_s;
  ctx.save();
  ctx.fillStyle = "rgba(120,120,120,0.35)";
  for (const [t, v] of S.trend) {
    if (v.usable) continue;
    const x0 = u.valToPos(t, "x", true), x1 = u.valToPos(t + bin, "x", true);
    ctx.fillRect(x0, top, Math.max(1, x1 - x0), h);
  }
  ctx.fillStyle = "rgba(211,47,47,0.22)";
  const end = Math.max(S.eegEnd, ...S.trend.keys());
  for (const a of alarmSpans()) {
    const x0 = u.valToPos(a.onset_s, "x", true), x1 = u.valToPos(a.offset_s ?? end, "x", true);
    ctx.fillRect(x0, top, Math.max(2, x1 - x0), h);
  }
  ctx.restore();
}

function drawPageBox(u) {
  const ctx = u.ctx, x0 = u.valToPos(S.pageStart, "x", true), x1 = u.valToPos(S.pageStart + pageSeconds(), "x", true);
  ctx.save(); ctx.strokeStyle = "#1565c0"; ctx.lineWidth = 2;
  ctx.strokeRect(x0, u.bbox.top + 1, Math.max(2, x1 - x0), u.bbox.height - 2); ctx.restore();
}

function hookTrendClick(u) {
  u.over.addEventListener("click", () => {
    if (u.cursor.left == null || u.cursor.left < 0) return;
    jumpTo(u.posToVal(u.cursor.left, "x") - pageSeconds() / 2);
  });
}

function csaColor(v, lo, hi) {  // dark blue -> green -> yellow -> red
  const t = Math.max(0, Math.min(1, (v - lo) / (hi - lo || 1)));
  const stops = [[13, 8, 135], [33, 145, 140], [253, 231, 37], [220, 40, 30]];
  const s = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(s)), f = s - i;
  const c = stops[i].map((a, k) => Math.round(a + f * (stops[i + 1][k] - a)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function drawCsa(u) {
  const canvas = $("csa");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  const freqs = S.meta.csa_freqs_hz, epoch = S.meta.csa_epoch_s;
  const cols = [...S.csa.entries()];
  if (!cols.length) return;
  let lo = Infinity, hi = -Infinity;
  for (const [, row] of cols) for (const v of row) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const left = u.bbox.left / dpr, plotW = u.bbox.width / dpr;
  const rowH = h / freqs.length;
  ctx.save(); ctx.beginPath(); ctx.rect(left, 0, plotW, h); ctx.clip();
  for (const [t, row] of cols) {
    const x0 = u.valToPos(t, "x"), x1 = u.valToPos(t + epoch, "x");
    if (x1 < 0 || x0 > plotW) continue;
    for (let k = 0; k < row.length; k++) {
      ctx.fillStyle = csaColor(row[k], lo, hi);
      ctx.fillRect(left + x0, h - (k + 1) * rowH, Math.max(1, x1 - x0 + 0.5), rowH + 0.5);
    }
  }
  ctx.restore();
  ctx.fillStyle = "#000"; ctx.font = "10px sans-serif";
  for (const f of [1, 5, 10, 20, 30]) {
    const k = freqs.findIndex((x) => x >= f);
    if (k >= 0) ctx.fillText(`${f} Hz`, 4, h - k * rowH - 2);
  }
  document.body.dataset.csaColumns = String(cols.length);
}

// -- alarms, quality, state -----------------------------------------------------------------------
function drawLists() {
  const rows = $("alarm-rows");
  rows.innerHTML = "";
  alarmSpans().forEach((a, i) => {
    const tr = document.createElement("tr");
    tr.className = "alarm" + (S.selectedAlarm === a.onset_s ? " selected" : "");
    tr.dataset.onset = String(a.onset_s);
    tr.innerHTML = `<td>${i + 1}</td><td>${a.onset_s.toFixed(1)}</td>` +
      `<td>${a.offset_s == null ? "open" : a.offset_s.toFixed(1) + (a.reason ? ` (${a.reason})` : "")}</td>` +
      `<td>${a.peak == null ? "" : a.peak.toFixed(2)}</td>`;
    tr.addEventListener("click", () => { S.selectedAlarm = a.onset_s; jumpTo(a.onset_s - pageSeconds() * 0.3); drawLists(); });
    rows.appendChild(tr);
  });
  document.body.dataset.alarms = String(alarmSpans().length);
  const q = S.events.filter((e) => e.kind === "signal_quality");
  $("quality").innerHTML = q.length ? q.map((e) =>
    `<div>${(e.stream_time_s ?? 0).toFixed(1)} s: ${e.reason || ""} ${e.detail ? "- " + e.detail : ""}</div>`).join("")
    : "<div>no signal-quality event</div>";
  const st = S.state;
  $("state").textContent = st ? st.state : "unknown";
  $("state").className = "state " + (st ? st.state : "");
  $("state-reason").textContent = st && st.reason ? st.reason : "";
  document.body.dataset.state = st ? st.state : "";
}

function jumpTo(start) {
  S.follow = false;
  $("follow").checked = false;
  S.pageStart = start;
  loadEeg();
  if (S.trendPlot) S.trendPlot.redraw(false);
}

function merge(snap) {
  snap.trend.t_s.forEach((t, i) => S.trend.set(t, { p: snap.trend.p[i], usable: snap.trend.usable[i] }));
  snap.csa.t_s.forEach((t, i) => S.csa.set(t, snap.csa.power_db[i]));
  S.events = snap.events;
  S.state = snap.state;
  S.eegEnd = snap.eeg_end_s;
  S.eegStart = snap.eeg_start_s;
  const oldest = S.eegEnd - S.meta.minutes * 60;
  for (const t of [...S.trend.keys()]) if (t < oldest) S.trend.delete(t);
  for (const t of [...S.csa.keys()]) if (t < oldest) S.csa.delete(t);
}

function markReady() {
  const d = document.body.dataset;
  if (parseInt(d.traces || "0") > 0 && parseInt(d.trendPoints || "0") > 0) d.ready = "1";
}

async function selectBed(bed) {
  S.bed = bed; S.trend.clear(); S.csa.clear(); S.events = []; S.selectedAlarm = null;
  document.querySelectorAll("#beds button").forEach((b) => b.classList.toggle("current", b.dataset.bed === bed));
  const snap = await getJSON(`/api/beds/${encodeURIComponent(bed)}/snapshot`);
  merge(snap);
  S.pageStart = S.meta.mode === "offline" ? S.eegStart : S.eegEnd - pageSeconds();
  S.follow = S.meta.mode !== "offline";
  $("follow").checked = S.follow;
  drawTrend(); drawLists(); loadEeg();
}

function bedButtons(beds) {
  const box = $("beds");
  if ([...box.children].map((b) => b.dataset.bed).join() === beds.join()) return;
  box.innerHTML = "";
  for (const bed of beds) {
    const b = document.createElement("button");
    b.textContent = bed; b.dataset.bed = bed;
    b.addEventListener("click", () => selectBed(bed).catch(showError));
    box.appendChild(b);
  }
  document.querySelectorAll("#beds button").forEach((b) => b.classList.toggle("current", b.dataset.bed === S.bed));
}

function live() {
  const es = new EventSource("/api/updates");
  es.onmessage = (msg) => {
    const upd = JSON.parse(msg.data);
    S.meta.thresholds = upd.thresholds || S.meta.thresholds;
    bedButtons(upd.beds_list);
    if (!S.bed && upd.beds_list.length) { selectBed(upd.beds_list[0]).catch(showError); return; }
    const snap = upd.beds[S.bed];
    if (!snap) return;
    merge(snap);
    drawTrend(); drawLists();
    if (S.follow) { S.pageStart = S.eegEnd - pageSeconds(); loadEeg(); }
  };
  es.onerror = () => { $("error").textContent = "live updates interrupted; reconnecting"; };
  es.onopen = () => { $("error").textContent = ""; };
}

async function main() {
  S.meta = await getJSON("/api/meta");
  $("mode").textContent = S.meta.mode === "offline" ? "offline file (scored through the daemon path)" : "live";
  $("recording").textContent = S.meta.recording ? `recording: ${S.meta.recording}` : "";
  bedButtons(S.meta.beds);
  if (S.meta.beds.length) await selectBed(S.meta.beds[0]);
  for (const id of ["montage", "gain", "hp", "lp", "notch", "page"]) $(id).addEventListener("change", loadEeg);
  $("back").addEventListener("click", () => jumpTo(S.pageStart - pageSeconds()));
  $("fwd").addEventListener("click", () => jumpTo(S.pageStart + pageSeconds()));
  $("follow").addEventListener("change", () => {
    S.follow = $("follow").checked;
    if (S.follow) { S.pageStart = S.eegEnd - pageSeconds(); loadEeg(); }
  });
  window.addEventListener("resize", () => {
    if (S.eegPlot) S.eegPlot.setSize({ width: $("eeg").clientWidth, height: S.eegPlot.height });
    if (S.trendPlot) S.trendPlot.setSize({ width: $("trend").clientWidth, height: 170 });
  });
  if (S.meta.mode === "live") live();
}

main().catch(showError);
