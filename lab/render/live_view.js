// The live view of a toy run that is training: the features of one seed on the circle or sphere with the
// center arrow, and the ‖s‖ curve so far, drawn on two canvases.
//
// Why a canvas and a queue rather than one Plotly figure per rerun: a Streamlit fragment reruns about 6
// times a second at best on a small machine (a trivial fragment measured 6.5/s in headless chromium), and
// a Plotly figure redrawn whole costs 0.2-1 s there. So each rerun hands over every epoch trained since the
// last one (`frames`), and this view plays them back at the run's pace; a rerun carrying frames already
// shown (same run, same epochs) changes nothing.
//
// data: {run, dim, epochs, speed (epochs/s, 0 = as fast as it trains), labels (class per point), colors,
//        center_color, frames: [[epoch, base64 int16 (N*dim, coordinate * 32767), ‖s‖ of all coordinates,
//        caption, (optional) s in the shown coordinates], ...], curve: {x, mean, lo, hi},
//        events: [[epoch, text], ...], threshold, status, title}
// Optional (the live Real images view): unit (the x axis' word, default "epoch"), extra: [{name, color, dash,
// y}] more lines on the curve's x, legend: [[class name, colour], ...], images: a data URI per point, shown on
// hover (sent once per run: the view keeps them).
export default function (component) {
  const { data, parentElement } = component;
  let view = parentElement.__labLive;
  if (!view || !view.root.isConnected) {
    view = parentElement.__labLive = makeView(parentElement);
  }
  view.receive(data || {});
}

const DRAIN_MS = 150;   // frames that arrive together are played within about one rerun (its first guess)
const MAX_QUEUE = 24;   // further behind than this, skip ahead: live means now

function decode(b64, dim) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const ints = new Int16Array(bytes.buffer);
  const out = new Float32Array(ints.length);
  for (let i = 0; i < ints.length; i++) out[i] = ints[i] / 32767;
  return out;
}

function makeView(parent) {
  const root = document.createElement("div");
  root.className = "lab-live";
  root.innerHTML = `
    <div class="lab-live-title" style="font:600 15px sans-serif;margin:2px 0 6px 0"></div>
    <div style="display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start">
      <canvas class="lab-live-sphere" title="Drag to turn the sphere" style="cursor:grab;touch-action:none"></canvas>
      <canvas class="lab-live-curve"></canvas>
    </div>
    <div class="lab-live-legend" style="font:12px sans-serif;margin-top:4px"></div>
    <div class="lab-live-status" style="font:13px sans-serif;opacity:.75;margin-top:4px"></div>
    <div class="lab-live-hover" style="position:fixed;display:none;pointer-events:none;background:#fff;
      border:1px solid #999;padding:3px;font:12px sans-serif;z-index:10"><img style="display:block;
      image-rendering:pixelated;width:84px;height:84px"><span></span></div>`;
  parent.appendChild(root);
  const v = {
    root, run: null, data: {}, queue: [], shown: null, lastShown: 0, lastEpoch: -1, frames: 0,
    drain: DRAIN_MS, lastArrival: 0,
    yaw: -0.8, pitch: 0.45, drag: null,
    title: root.querySelector(".lab-live-title"), status: root.querySelector(".lab-live-status"),
    sphere: root.querySelector(".lab-live-sphere"), curve: root.querySelector(".lab-live-curve"),
    legend: root.querySelector(".lab-live-legend"), hover: root.querySelector(".lab-live-hover"),
    images: null, screen: null,
  };
  v.receive = (d) => receive(v, d);
  const s = v.sphere;
  s.addEventListener("pointerdown", (e) => { v.drag = [e.clientX, e.clientY, v.yaw, v.pitch]; s.setPointerCapture(e.pointerId); });
  s.addEventListener("pointermove", (e) => {
    if (!v.drag) { hover(v, e); return; }
    v.yaw = v.drag[2] + (e.clientX - v.drag[0]) * 0.01;
    v.pitch = Math.max(-1.5, Math.min(1.5, v.drag[3] + (e.clientY - v.drag[1]) * 0.01));
    drawSphere(v);
  });
  s.addEventListener("pointerup", () => { v.drag = null; });
  s.addEventListener("pointerleave", () => { v.hover.style.display = "none"; });
  const tick = (now) => {
    if (!root.isConnected) return;  // unmounted: the loop ends with it
    play(v, now);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return v;
}

function receive(v, d) {
  if (d.run !== v.run) {  // a new run: forget the old one's frames
    v.run = d.run; v.queue = []; v.lastEpoch = -1; v.shown = null; v.images = null;
    v.root.dataset.run = String(d.run);  // which run this view shows (a class on one lesson link: one run)
    delete v.root.dataset.epoch;  // set again by the new run's first frame
  }
  v.data = d;
  if (d.images) v.images = d.images;
  if (d.legend && !v.legend.__set) {
    v.legend.__set = true;
    v.legend.innerHTML = d.legend.map(([name, color]) =>
      `<span style="white-space:nowrap;margin-right:10px"><span style="display:inline-block;width:10px;height:10px;` +
      `background:${color};margin-right:3px"></span>${name}</span>`).join("");
  }
  // The time between reruns that bring frames (a page's own run: ~0.15 s; a run a class watches: ~0.5 s)
  // is the time to play what each brings: at the run's pace, no burst then a wait.
  const now = performance.now();
  if ((d.frames || []).length) {
    if (v.lastArrival) v.drain = 0.7 * v.drain + 0.3 * Math.min(1000, Math.max(DRAIN_MS, now - v.lastArrival));
    v.lastArrival = now;
  }
  for (const f of d.frames || []) {
    if (f[0] > v.lastEpoch) { v.queue.push(f); v.lastEpoch = f[0]; }
  }
  if (v.queue.length > MAX_QUEUE) v.queue = v.queue.slice(-MAX_QUEUE);
  v.status.textContent = d.status || "";
  sizeCanvases(v);
  if (!v.queue.length) { drawSphere(v); drawCurve(v); }
}

function play(v, now) {
  if (!v.queue.length) return;
  const pace = v.data.speed ? 1000 / v.data.speed : 0;
  const interval = Math.min(pace || v.drain, v.drain / v.queue.length);
  if (v.shown && now - v.lastShown < interval) return;
  const f = v.queue.shift();
  v.shown = { epoch: f[0], z: decode(f[1], v.data.dim), sn: f[2], caption: f[3], s: f[4] || null };
  v.lastShown = now; v.frames += 1;
  v.title.textContent = `${v.data.unit || "epoch"} ${f[0]}/${v.data.epochs} · ‖s‖ ${f[2].toFixed(2)}` + (f[3] ? ` · ${f[3]}` : "");
  v.root.dataset.epoch = String(f[0]);
  v.root.dataset.frames = String(v.frames);
  drawSphere(v); drawCurve(v);
}

function sizeCanvases(v) {
  const width = Math.max(320, v.root.clientWidth || 800);
  const side = Math.min(460, Math.floor(width * 0.45));
  const dpr = window.devicePixelRatio || 1;
  const set = (c, w, h) => {
    if (c.__w === w && c.__h === h) return;
    c.__w = w; c.__h = h;
    c.style.width = w + "px"; c.style.height = h + "px";
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
  };
  set(v.sphere, side, side);
  set(v.curve, Math.max(300, Math.min(width - side - 24, 720)), side);
}

function project(v, x, y, z) {  // turn by yaw about the vertical axis, then pitch; depth > 0 faces us
  if (v.data.dim !== 3) return [x, y, 1];
  const cy = Math.cos(v.yaw), sy = Math.sin(v.yaw), cp = Math.cos(v.pitch), sp = Math.sin(v.pitch);
  const x1 = cy * x - sy * y, y1 = sy * x + cy * y;       // z is up
  return [x1, cp * z - sp * y1, cp * y1 + sp * z];
}

function drawSphere(v) {
  const c = v.sphere, g = c.getContext("2d"), w = c.__w || 400, h = c.__h || 400;
  const r = 0.44 * Math.min(w, h), cx = w / 2, cy = h / 2, d = v.data;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#bbb"; g.lineWidth = 1;
  g.beginPath(); g.arc(cx, cy, r, 0, 2 * Math.PI); g.stroke();
  if (d.dim === 3) {  // the equator, for depth
    g.strokeStyle = "#e2e2e2"; g.beginPath();
    for (let i = 0; i <= 64; i++) {
      const a = (i / 64) * 2 * Math.PI, p = project(v, Math.cos(a), Math.sin(a), 0);
      i ? g.lineTo(cx + r * p[0], cy - r * p[1]) : g.moveTo(cx + r * p[0], cy - r * p[1]);
    }
    g.stroke();
  }
  const f = v.shown;
  if (!f) {
    if (d.run) { g.fillStyle = "#888"; g.font = "14px sans-serif"; g.fillText("Starting…", cx - 30, cy); }
    return;  // no run yet (a view mounted before its first run): the empty sphere
  }
  const dim = d.dim, z = f.z, n = z.length / dim, labels = d.labels || [], colors = d.colors || ["#333"];
  let sx = 0, sy = 0, sz = 0;
  for (let i = 0; i < n; i++) { sx += z[i * dim]; sy += z[i * dim + 1]; sz += dim === 3 ? z[i * dim + 2] : 0; }
  const size = dim === 3 ? 2.6 : 3.2;
  v.screen = new Float32Array(3 * n);
  for (const front of dim === 3 ? [false, true] : [true]) {  // the far side first, faded
    g.globalAlpha = front ? 0.85 : 0.25;
    for (let i = 0; i < n; i++) {
      const x = z[i * dim], y = z[i * dim + 1], zz = dim === 3 ? z[i * dim + 2] : 0;
      const p = project(v, x, y, zz);
      if (dim === 3 && (p[2] >= 0) !== front) continue;
      v.screen[3 * i] = cx + r * p[0]; v.screen[3 * i + 1] = cy - r * p[1]; v.screen[3 * i + 2] = front ? 1 : 0;
      g.fillStyle = colors[labels[i] % colors.length];
      g.fillRect(cx + r * p[0] - size / 2, cy - r * p[1] - size / 2, size, size);
    }
  }
  g.globalAlpha = 1;
  const sv = f.s || [sx / n, sy / n, sz / n];  // s of all D in the shown directions, where the run sent it
  const s = project(v, sv[0], sv[1], dim === 3 ? sv[2] : 0);
  const tx = cx + r * s[0], ty = cy - r * s[1];
  g.strokeStyle = d.center_color || "#2ca02c"; g.fillStyle = g.strokeStyle; g.lineWidth = 4;
  g.beginPath(); g.moveTo(cx, cy); g.lineTo(tx, ty); g.stroke();
  g.beginPath(); g.arc(tx, ty, 5, 0, 2 * Math.PI); g.fill();
  g.font = "13px sans-serif"; g.fillText(`s (‖s‖ ${f.sn.toFixed(2)})`, Math.min(tx + 8, w - 90), Math.max(ty - 8, 14));
}

function drawCurve(v) {
  const c = v.curve, g = c.getContext("2d"), w = c.__w || 500, h = c.__h || 300, d = v.data;
  const left = 44, right = 12, top = 26, bottom = 34, pw = w - left - right, ph = h - top - bottom;
  const n = Math.max(1, d.epochs || 1), X = (e) => left + (pw * e) / n, Y = (y) => top + ph * (1 - y / 1.05);
  g.clearRect(0, 0, w, h);
  g.fillStyle = "#333"; g.font = "13px sans-serif"; g.fillText(d.title || "‖s‖", left, 16);
  g.strokeStyle = "#ccc"; g.lineWidth = 1; g.strokeRect(left, top, pw, ph);
  g.fillStyle = "#666"; g.font = "11px sans-serif";
  for (const y of [0, 0.5, 1]) { g.fillText(y.toFixed(1), 8, Y(y) + 4); }
  for (const e of [0, Math.round(n / 2), n]) { g.fillText(String(e), X(e) - 8, h - bottom + 14); }
  g.fillText(d.unit || "epoch", left + pw / 2 - 14, h - 4);
  if (d.threshold) {
    g.setLineDash([3, 3]); g.strokeStyle = "#999"; g.beginPath();
    g.moveTo(left, Y(d.threshold)); g.lineTo(left + pw, Y(d.threshold)); g.stroke(); g.setLineDash([]);
  }
  const cv = d.curve || { x: [] }, upto = v.shown ? v.shown.epoch : -1;
  let m = 0;
  while (m < cv.x.length && cv.x[m] <= upto) m++;  // the curve keeps pace with the frame on show
  if (m > 0) {
    g.fillStyle = "rgba(31,119,180,0.18)"; g.beginPath();
    for (let i = 0; i < m; i++) i ? g.lineTo(X(cv.x[i]), Y(cv.hi[i])) : g.moveTo(X(cv.x[i]), Y(cv.hi[i]));
    for (let i = m - 1; i >= 0; i--) g.lineTo(X(cv.x[i]), Y(cv.lo[i]));
    g.closePath(); g.fill();
    g.strokeStyle = "#1f77b4"; g.lineWidth = 2; g.beginPath();
    for (let i = 0; i < m; i++) i ? g.lineTo(X(cv.x[i]), Y(cv.mean[i])) : g.moveTo(X(cv.x[i]), Y(cv.mean[i]));
    g.stroke();
    let ly = top + ph - 8;
    for (const e of d.extra || []) {  // more readings on the same x, in [0, 1]
      g.strokeStyle = e.color; g.lineWidth = 1.5; g.setLineDash(e.dash ? [4, 3] : []); g.beginPath();
      for (let i = 0; i < Math.min(m, e.y.length); i++) i ? g.lineTo(X(cv.x[i]), Y(e.y[i])) : g.moveTo(X(cv.x[i]), Y(e.y[i]));
      g.stroke(); g.setLineDash([]);
      g.fillStyle = e.color; g.font = "11px sans-serif"; g.fillText(e.name, left + 6, ly); ly -= 13;
    }
  }
  g.font = "11px sans-serif";
  for (const [at, text] of d.events || []) {
    g.setLineDash([5, 4]); g.strokeStyle = "#d73027"; g.lineWidth = 1; g.beginPath();
    g.moveTo(X(at), top); g.lineTo(X(at), top + ph); g.stroke(); g.setLineDash([]);
    g.fillStyle = "#d73027"; g.fillText(text, Math.min(X(at) + 4, w - right - g.measureText(text).width), top + 12);
  }
}

function hover(v, e) {  // the image of the point under the pointer, where the run sent images
  const box = v.hover;
  if (!v.images || !v.screen || !v.shown) { box.style.display = "none"; return; }
  const rect = v.sphere.getBoundingClientRect(), x = e.clientX - rect.left, y = e.clientY - rect.top;
  let best = -1, bestD = 64;  // within 8 px; a point in front wins over one behind
  for (let i = 0; i < v.screen.length / 3; i++) {
    const dx = v.screen[3 * i] - x, dy = v.screen[3 * i + 1] - y, dd = dx * dx + dy * dy - 20 * v.screen[3 * i + 2];
    if (dd < bestD) { bestD = dd; best = i; }
  }
  if (best < 0 || !v.images[best]) { box.style.display = "none"; return; }
  box.querySelector("img").src = v.images[best];
  const legend = v.data.legend || [], label = (v.data.labels || [])[best];
  box.querySelector("span").textContent = legend[label] ? legend[label][0] : "";
  box.style.left = `${e.clientX + 12}px`; box.style.top = `${e.clientY + 12}px`; box.style.display = "block";
  v.root.dataset.hovered = String(best);
}
