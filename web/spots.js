// Live DX spots from /ws/firehose. Each text frame is a JSON array of the spots of one tick; control
// messages (gap, reset, error, announce) are JSON objects. Spots leave out unknown keys.
import {$, el, kept, shown} from "./lib.js";

const MAX_ROWS = 200;
const tbody = $("#spots tbody");
const statusEl = $("#status");
const note = $("#note");
const selects = {band: $("#band"), mode: $("#mode"), cont: $("#cont")};
const pauseButton = $("#pause");
const ids = new Set();  // ids in the table: history and live frames may overlap after a filter change
let ws = null;
let lastId = 0;  // the newest id received: a reconnect resumes after it (`since`)
let retry = 1000;
let held = [];  // spots that arrived while paused

function filter() {
  const f = {};
  for (const [key, select] of Object.entries(selects)) if (select.value) f[key] = [select.value];
  return f;
}

const query = () => new URLSearchParams(filter()).toString();

function cell(text, cls) {
  return el("td", {className: cls || ""}, shown(text));
}

function addSpot(s) {
  lastId = Math.max(lastId, s.id);
  if (ids.has(s.id)) return;
  ids.add(s.id);
  const tr = el("tr", {className: "new"});
  tr.dataset.id = s.id;
  const khz = typeof s.freq === "number" ? s.freq.toFixed(1) : "";
  const tune = el("button", {type: "button", className: "link freq", title: "tune the radio"}, khz);
  tune.onclick = () => qsy(s.freq, s.mode);
  const dx = el("button", {type: "button", className: "link", title: `propagation to ${s.dx}`}, shown(s.dx));
  dx.onclick = () => { location.hash = "#solar"; document.dispatchEvent(new CustomEvent("path-to", {detail: s.dx})); };
  tr.append(cell((s.time || "").slice(11, 16)), el("td", {}, tune), el("td", {}, dx), cell(s.country, "wide"),
            cell(s.band), cell(s.mode), cell(s.comment, "wide"), cell(s.spotter, "wide"));
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_ROWS) {
    ids.delete(Number(tbody.rows[tbody.rows.length - 1].dataset.id));
    tbody.deleteRow(-1);
  }
}

function received(spots) {
  if (pauseButton.getAttribute("aria-pressed") === "true") held.push(...spots);
  else spots.forEach(addSpot);
}

// History comes from /api/spots (just the rows the table shows); the WebSocket then resumes after it.
let generation = 0;  // bumped by each filter change: an older filter's late history is dropped

async function loadHistory() {
  const mine = generation;
  const r = await fetch(`/api/spots?limit=${MAX_ROWS}&${query()}`);
  const body = await r.json();
  if (mine !== generation) return;
  body.spots.forEach(addSpot);
  lastId = Math.max(lastId, body.last_id);
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
    if (Array.isArray(msg)) { received(msg); return; }
    if (msg.type === "gap") note.textContent = `missed spots ${msg.from}–${msg.to} while away`;
    if (msg.type === "reset") { note.textContent = "the server's spot history was reset"; lastId = msg.last_id; }
    if (msg.type === "error") note.textContent = msg.error || "the server refused the filter";
    if (msg.type === "announce") note.textContent = `To ${msg.to} de ${msg.from}: ${msg.text}`;
  };
  ws.onclose = () => {
    statusEl.textContent = "reconnecting…"; statusEl.className = "status off";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

// A new filter: the table shows that filter's history again, and the firehose sends only its spots.
async function resubscribe() {
  generation += 1;
  tbody.replaceChildren();
  ids.clear();
  held = [];
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({subscribe: filter()}));
  try { await loadHistory(); } catch (e) { note.textContent = "could not load the history for this filter"; }
}

async function qsy(khz, mode) {
  const token = kept.get("relayToken");
  if (!token) { note.textContent = "set the relay's pairing token in Settings to tune by click"; return; }
  const url = new URL("/qsy", kept.get("relayUrl", "http://127.0.0.1:8089"));
  url.searchParams.set("freq", (khz / 1000).toFixed(6));
  if (mode === "SSB") mode = khz < 10000 ? "LSB" : "USB";  // the usual sideband below/above 10 MHz
  if (["CW", "USB", "LSB", "FM", "AM"].includes(mode)) url.searchParams.set("mode", mode);
  try {
    const r = await fetch(url, {headers: {"X-Relay-Token": token}, targetAddressSpace: "loopback"});
    const body = await r.json();
    note.textContent = r.ok ? `tuned to ${(khz / 1000).toFixed(3)} MHz` : `relay: ${body.message || body.error}`;
  } catch (e) {
    note.textContent = "the radio relay is not running on this computer";
  }
}

export function init() {
  Object.values(selects).forEach(s => { s.onchange = resubscribe; });
  pauseButton.onclick = () => {
    const paused = pauseButton.getAttribute("aria-pressed") !== "true";
    pauseButton.setAttribute("aria-pressed", String(paused));
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused) { held.forEach(addSpot); held = []; }
  };
  connect();
}
