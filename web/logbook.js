// The logbook: /api/qsos with the search form's filters, keyset pages (`next` cursors), and a form that
// adds or edits one QSO (ADIF field names; the server's checks show beside the field).
import {$, api, clearErrors, el, onSubmit, session, shown} from "./lib.js";

const PAGE = 50;
const search = $("#qso-search");
const form = $("#qso-form");
const tbody = $("#qsos tbody");
const pageInfo = $("#qso-page");
const older = $("#qso-older");
let cursors = [null];  // the cursor of each page seen: [newest, 2nd, ...]; the last one is shown
let next = null;
let editing = null;  // the QSO being edited (null: adding one)

function filters() {
  const q = new URLSearchParams({limit: PAGE});
  for (const [k, v] of new FormData(search)) if (v.trim()) q.set(k, v.trim());
  return q;
}

const when = (q) => `${shown(q.qso_date).replace(/(\d{4})(\d\d)(\d\d)/, "$1-$2-$3")} ${shown(q.time_on).slice(0, 4)}`;
const pair = (sent, rcvd) => (sent || rcvd ? `${sent || "-"}/${rcvd || "-"}` : "");

function row(q) {
  const edit = el("button", {type: "button", className: "link"}, "Edit");
  edit.setAttribute("aria-label", `Edit the QSO with ${q.call}`);
  edit.onclick = () => openForm(q);
  const drop = el("button", {type: "button", className: "link"}, "Delete");
  drop.setAttribute("aria-label", `Delete the QSO with ${q.call}`);
  drop.onclick = () => remove(q);
  const tr = el("tr", {},
    el("td", {}, when(q)), el("td", {className: "call"}, shown(q.call)), el("td", {}, shown(q.band)),
    el("td", {}, shown(q.mode)), el("td", {className: "wide"}, shown(q.freq)),
    el("td", {className: "wide"}, pair(q.rst_sent, q.rst_rcvd)), el("td", {className: "wide"}, shown(q.country)),
    el("td", {}, pair(q.qsl_sent, q.qsl_rcvd)), el("td", {}, pair(q.lotw_qsl_sent, q.lotw_qsl_rcvd)),
    el("td", {}, pair(q.eqsl_qsl_sent, q.eqsl_qsl_rcvd)), el("td", {className: "actions"}, edit, " ", drop));
  tr.dataset.id = q.id;
  return tr;
}

async function load() {
  if (!session.me) { tbody.replaceChildren(); return; }
  const q = filters();
  const cursor = cursors[cursors.length - 1];
  if (cursor) q.set("cursor", cursor);
  const body = await api(`/api/qsos?${q}`);
  tbody.replaceChildren(...body.qsos.map(row));
  next = body.next;
  older.disabled = !next;
  pageInfo.textContent = body.qsos.length ? `page ${cursors.length}, ${body.qsos.length} QSOs` : "no QSOs found";
}

function openForm(q) {
  editing = q;
  clearErrors(form);
  form.reset();
  $("#qso-form-title").textContent = q ? `Edit the QSO with ${q.call}` : "Add a QSO";
  if (q) for (const input of form.elements) if (input.name) input.value = shown(q[input.name]);
  form.hidden = false;
  form.elements.call.focus();
}

async function remove(q) {
  if (!confirm(`Delete the QSO with ${q.call} on ${when(q)}?`)) return;
  try { await api(`/api/qsos/${q.id}`, {method: "DELETE"}); await load(); }
  catch (err) { pageInfo.textContent = err.message; }
}

export function init() {
  onSubmit(search, async () => { cursors = [null]; await load(); });
  onSubmit(form, async (data) => {
    const body = {};
    for (const [name, value] of data) {
      const v = value.trim();
      const before = editing ? shown(editing[name]) : "";
      if (v === before) continue;  // an edit sends only what changed; empty removes a field
      body[name] = v === "" ? null : v;
    }
    if (editing) await api(`/api/qsos/${editing.id}`, {method: "PATCH", body});
    else await api("/api/qsos", {method: "POST", body});
    form.hidden = true;
    await load();
  });
  form.querySelector(".cancel").onclick = () => { form.hidden = true; };
  $("#qso-add").onclick = () => openForm(null);
  older.onclick = () => { if (next) { cursors.push(next); load(); } };
  $("#qso-newest").onclick = () => { cursors = [null]; load(); };
  document.addEventListener("signin", () => { cursors = [null]; if (!$("#view-logbook").hidden) load(); });
}

export const show = () => load().catch(err => { pageInfo.textContent = err.message; });
