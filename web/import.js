// ADIF import: the file (dropped or chosen) goes to POST /api/imports; the bar follows the job's
// progress events on /ws/imports (stored bytes of the file), then the summary lists rejected records.
import {$, api, el, session, shown} from "./lib.js";

const drop = $("#drop");
const fileInput = $("#import-file");
const bar = $("#import-progress");
const statusEl = $("#import-status");
const summary = $("#import-summary");
let jobId = null;
let socket = null;

function progress(ev) {
  if (ev.type !== "progress" || (jobId !== null && ev.id !== jobId)) return;
  if (ev.size_bytes) { bar.max = ev.size_bytes; bar.value = ev.bytes_done || 0; }
  statusEl.textContent = `${ev.status}: ${shown(ev.records_read || 0)} records read, ${shown(ev.inserted || 0)} stored`;
  if (["done", "failed"].includes(ev.status)) showSummary(ev.id);
}

// One socket while the view is used; it reopens if the server closes it.
function listen() {
  return new Promise((resolve) => {
    if (socket && socket.readyState === WebSocket.OPEN) { resolve(); return; }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${proto}//${location.host}/ws/imports`);
    socket.onmessage = (m) => progress(JSON.parse(m.data));
    socket.onopen = () => resolve();
    socket.onerror = () => resolve();  // the upload still works; the summary comes from GET
    socket.onclose = () => { socket = null; };
  });
}

async function showSummary(id) {
  const job = await api(`/api/imports/${id}`);
  bar.max = job.size_bytes || 1; bar.value = job.bytes_done || bar.max;
  const counts = ["records_read", "inserted", "duplicates", "merged", "rejected", "warned"]
    .filter(k => job[k] != null).map(k => `${k.replace("_", " ")} ${job[k]}`).join(", ");
  statusEl.textContent = `${job.filename || "import"} ${job.status}: ${counts}${job.error ? ` (${job.error})` : ""}`;
  const rejects = job.rejects || [];
  if (!rejects.length) { summary.replaceChildren(el("p", {}, "No record was rejected.")); return; }
  const head = el("tr", {}, ...["Record", "Byte", "Field", "Reason"].map(h => el("th", {scope: "col"}, h)));
  const rows = rejects.map(r => el("tr", {}, el("td", {}, shown(r.record)), el("td", {}, shown(r.offset)),
                                    el("td", {}, shown(r.field)), el("td", {}, shown(r.reason))));
  summary.replaceChildren(el("h3", {}, `Rejected records (${job.rejected})`),
    el("div", {className: "table-wrap", tabIndex: 0, role: "region", ariaLabel: "Rejected records"}, el("table", {id: "import-rejects"}, el("thead", {}, head), el("tbody", {}, ...rows))));
}

async function upload(file) {
  if (!session.me) { statusEl.textContent = "sign in first"; return; }
  jobId = null;
  summary.replaceChildren();
  bar.value = 0;
  await listen();
  statusEl.textContent = `uploading ${file.name}…`;
  const data = new FormData();
  data.append("file", file);
  const merge = $("#import-merge").checked ? "?merge=true" : "";
  try {
    const r = await fetch(`/api/imports${merge}`, {method: "POST", body: data});
    const body = await r.json();
    if (!r.ok) { statusEl.textContent = body.error; return; }
    jobId = body.id;
    statusEl.textContent = `${file.name}: ${body.status}`;
    const job = await api(`/api/imports/${jobId}`);  // it may have finished before the socket said so
    if (["done", "failed"].includes(job.status)) showSummary(jobId);
  } catch (err) {
    statusEl.textContent = `the upload failed: ${err.message}`;
  }
}

export function init() {
  fileInput.onchange = () => { if (fileInput.files[0]) upload(fileInput.files[0]); };
  drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files[0]) upload(ev.dataTransfer.files[0]);
  };
}

export const show = () => (session.me ? listen() : null);
