// Solar data (NOAA SWPC: SFI, Kp, sunspots, with their age) and the MUF by UTC hour for a path from the
// home grid to a locator or to a callsign's country, drawn as an inline SVG bar chart.
import {$, ago, api, el, kept} from "./lib.js";

const now = $("#solar-now");
const from = $("#prop-from");
const to = $("#prop-to");
const info = $("#prop-info");
const chart = $("#prop-chart");
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

async function loadSolar() {
  try {
    const s = await api("/api/solar");
    const part = (name, item) => (item ? `${name} ${item.value} (${ago(item.time)})` : `${name} unknown`);
    now.textContent = `${part("SFI", s.flux)}, ${part("Kp", s.kp)}, ${part("sunspots", s.ssn)}` +
      (s.stale ? `. Stale: NOAA data last fetched ${ago(s.fetched_at)}.` : ".");
  } catch (err) {
    now.textContent = err.message;
  }
}

async function showPath() {
  if (!from.value) { info.textContent = "enter your grid locator (From) first"; from.focus(); return; }
  const q = new URLSearchParams({from: from.value, to: to.value, path: $("#prop-path").value});
  try {
    const body = await api(`/api/propagation?${q}`);
    const i = body.inputs;
    info.textContent = `${body.from} to ${body.to}, ${body.distance_km} km, ${body.method}; ` +
      `SFI ${i.flux}${i.kp != null ? `, Kp ${i.kp}` : ""}${i.stale ? " (stale)" : ""}` +
      `${body.storm ? " - geomagnetic storm: expect worse" : ""}`;
    draw(body.hours);
  } catch (err) {
    info.textContent = err.message;
    draw([]);
  }
}

function draw(hours) {
  const top = Math.max(30, ...hours.map(h => h.muf));
  const parts = [chart.querySelector("title")];
  for (const mhz of [10, 20, 30]) {
    const y = 140 - 125 * mhz / top;
    parts.push(svg("line", {x1: 24, x2: 500, y1: y, y2: y, class: "grid"}), svg("text", {x: 0, y: y + 3}, String(mhz)));
  }
  hours.forEach((h, n) => {
    const height = 125 * h.muf / top;
    const bar = svg("rect", {x: 26 + 19.5 * n, y: 140 - height, width: 15, height});
    bar.append(svg("title", {}, `${String(h.hour).padStart(2, "0")} UTC: MUF ${h.muf} MHz, best ${h.best_band || "none"}`));
    parts.push(bar);
    if (h.hour % 3 === 0) parts.push(svg("text", {x: 28 + 19.5 * n, y: 155}, String(h.hour)));
  });
  chart.replaceChildren(...parts);
}

export function init() {
  kept.bind(from, "homeGrid");
  $("#prop-form").addEventListener("submit", (ev) => { ev.preventDefault(); showPath(); });
  document.addEventListener("path-to", (ev) => { homeGrid(); to.value = ev.detail; showPath(); });
}

// The home grid is one setting, also in Settings: take its latest value.
const homeGrid = () => { from.value = kept.get("homeGrid", from.value); };

export const show = () => { homeGrid(); return loadSolar(); };
