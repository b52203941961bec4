// Live DX spots from /ws/firehose. Each text frame is a JSON array of the spots of one tick;
// control messages (gap, subscribed, error, announce) are JSON objects.
"use strict";
const MAX_ROWS = 200;
const tbody = document.querySelector("#spots tbody");
const statusEl = document.getElementById("status");
const note = document.getElementById("note");
const bandSel = document.getElementById("band");
const modeSel = document.getElementById("mode");
const relayUrl = document.getElementById("relay-url");
const relayToken = document.getElementById("relay-token");
let ws = null;
let lastId = 0;
let retry = 1000;

relayUrl.value = localStorage.getItem("relayUrl") || relayUrl.value;
relayToken.value = localStorage.getItem("relayToken") || "";
relayUrl.oninput = () => localStorage.setItem("relayUrl", relayUrl.value);  // every keystroke: a reload keeps it
relayToken.oninput = () => localStorage.setItem("relayToken", relayToken.value);

function filter() {
  const f = {};
  if (bandSel.value) f.band = [bandSel.value];
  if (modeSel.value) f.mode = [modeSel.value];
  return f;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

const shown = new Set();  // ids in the table: history and live frames may overlap after a filter change

function addSpot(s) {
  if (shown.has(s.id)) return;
  shown.add(s.id);
  const tr = document.createElement("tr");
  tr.className = "new";
  tr.dataset.id = s.id;
  const freq = cell(s.freq.toFixed(1), "freq");
  freq.title = "tune the radio";
  freq.onclick = () => qsy(s.freq, s.mode);
  const dx = cell(s.dx, "dx");
  dx.title = "propagation to " + s.dx;
  dx.onclick = () => { propTo.value = s.dx; showPropagation(); };
  tr.append(cell(s.time.slice(11, 16)), freq, dx, cell(s.country, "wide"), cell(s.band),
            cell(s.mode), cell(s.comment, "wide"), cell(s.spotter, "wide"));
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_ROWS) {
    shown.delete(Number(tbody.rows[tbody.rows.length - 1].dataset.id));
    tbody.deleteRow(-1);
  }
  lastId = Math.max(lastId, s.id);
}

function query() {
  return new URLSearchParams(filter()).toString().replace(/%2C/g, ",");
}

// History comes from /api/spots (just the rows the table shows); the WebSocket then resumes after it.
async function loadHistory() {
  const r = await fetch(`/api/spots?limit=${MAX_ROWS}&${query()}`);
  const body = await r.json();
  body.spots.forEach(addSpot);
  lastId = Math.max(lastId, body.last_id);
}

// Propagation: MUF by UTC hour from the home grid to a locator or to a spot's DX (its country).
const homeGrid = document.getElementById("home-grid");
const propTo = document.getElementById("prop-to");
const propInfo = document.getElementById("prop-info");
const propChart = document.getElementById("prop-chart");
homeGrid.value = localStorage.getItem("homeGrid") || "";
homeGrid.oninput = () => localStorage.setItem("homeGrid", homeGrid.value);
document.getElementById("prop-form").onsubmit = (ev) => { ev.preventDefault(); showPropagation(); };

async function showPropagation() {
  document.getElementById("prop").open = true;
  if (!homeGrid.value) { propInfo.textContent = "enter your grid locator first"; homeGrid.focus(); return; }
  const q = new URLSearchParams({from: homeGrid.value, to: propTo.value});
  const r = await fetch(`/api/propagation?${q}`);
  const body = await r.json();
  if (!r.ok) { propInfo.textContent = body.error; propChart.replaceChildren(); return; }
  const i = body.inputs;
  propInfo.textContent = `${body.from} to ${body.to}, ${body.distance_km} km, ${body.method}; ` +
    `SFI ${i.flux}${i.kp != null ? `, Kp ${i.kp}` : ""}${i.stale ? " (stale)" : ""}` +
    `${body.storm ? " - geomagnetic storm: expect worse" : ""}`;
  drawMuf(body.hours);
}

function drawMuf(hours) {
  const ns = "http://www.w3.org/2000/svg";
  const top = Math.max(30, ...hours.map(h => h.muf));
  const parts = [];
  hours.forEach((h, n) => {
    const height = 120 * h.muf / top;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", 20 * n + 2); bar.setAttribute("y", 130 - height);
    bar.setAttribute("width", 16); bar.setAttribute("height", height);
    const tip = document.createElementNS(ns, "title");
    tip.textContent = `${String(h.hour).padStart(2, "0")} UTC: MUF ${h.muf} MHz, best ${h.best_band || "none"}`;
    bar.append(tip);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 20 * n + 4); label.setAttribute("y", 145);
    label.textContent = h.hour % 3 ? "" : String(h.hour);
    parts.push(bar, label);
  });
  propChart.replaceChildren(...parts);
}

async function connect() {
  if (!lastId) {
    try { await loadHistory(); } catch (e) { /* the WebSocket still brings live spots */ }
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const since = lastId ? `&since=${lastId}` : "";  // resume after what the table shows, else live only
  ws = new WebSocket(`${proto}//${location.host}/ws/firehose?${query()}${since}`);
  ws.onopen = () => { statusEl.textContent = "live"; statusEl.className = "status on"; retry = 1000; };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (Array.isArray(msg)) { msg.forEach(addSpot); return; }
    if (msg.type === "gap") note.textContent = `missed spots ${msg.from}–${msg.to} while away`;
    if (msg.type === "error") note.textContent = msg.error || "the server refused the filter";
    if (msg.type === "announce") note.textContent = `To ${msg.to} de ${msg.from}: ${msg.text}`;
  };
  ws.onclose = () => {
    statusEl.textContent = "reconnecting…"; statusEl.className = "status off";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30000);
  };
}

// A new filter: the table shows that filter's history again, and the firehose sends only its spots.
async function resubscribe() {
  tbody.replaceChildren();
  shown.clear();
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({subscribe: filter()}));
  try { await loadHistory(); } catch (e) { note.textContent = "could not load the history for this filter"; }
}
bandSel.onchange = resubscribe;
modeSel.onchange = resubscribe;

async function qsy(khz, mode) {
  if (!relayToken.value) { document.getElementById("relay-settings").open = true; return; }
  const url = new URL("/qsy", relayUrl.value);
  url.searchParams.set("freq", (khz / 1000).toFixed(6));
  if (mode === "SSB") mode = khz < 10000 ? "LSB" : "USB";  // the usual sideband below/above 10 MHz
  if (["CW", "USB", "LSB", "FM", "AM"].includes(mode)) url.searchParams.set("mode", mode);
  try {
    const r = await fetch(url, {headers: {"X-Relay-Token": relayToken.value}, targetAddressSpace: "loopback"});
    const body = await r.json();
    note.textContent = r.ok ? `tuned to ${(khz / 1000).toFixed(3)} MHz` : `relay: ${body.message || body.error}`;
  } catch (e) {
    note.textContent = "the radio relay is not running on this computer";
  }
}

connect();
// Signed in: the user bus brings notifications and cluster announcements (web/bus.js).
fetch("/api/me").then(r => r.ok && import("/web/bus.js").then(m => m.startBus(document.getElementById("notices"))));
