// Member DNS: the user's records under the member zone (GET/POST/DELETE /api/dns/records). The server
// checks each record (and PowerDNS may refuse it); its message shows beside the field it names.
import {$, api, el, onSubmit, session, shown} from "./lib.js";

const zone = $("#dns-zone");
const tbody = $("#dns-records tbody");
const form = $("#dns-form");

function row(r) {
  const drop = el("button", {type: "button", className: "link"}, "Delete");
  drop.setAttribute("aria-label", `Delete ${r.type} ${r.name}`);
  drop.onclick = async () => {
    try { await api(`/api/dns/records/${r.id}`, {method: "DELETE"}); } catch (err) { zone.textContent = err.message; }
    await load();
  };
  const state = r.published === false ? el("span", {className: "field-error"}, ` ${shown(r.error)}`) : null;
  return el("tr", {}, el("td", {}, shown(r.name)), el("td", {}, shown(r.type)), el("td", {className: "content"}, shown(r.content), state),
            el("td", {}, shown(r.ttl)), el("td", {}, drop));
}

async function load() {
  if (!session.me) { tbody.replaceChildren(); zone.textContent = ""; return; }
  try {
    const body = await api("/api/dns/records");
    zone.textContent = `Your names: ${body.your_name} and below, in ${body.zone} (${body.records.length} of ${body.quota} records).`;
    tbody.replaceChildren(...body.records.map(row));
  } catch (err) {
    zone.textContent = err.message;
  }
}

export function init() {
  onSubmit(form, async (data) => {
    const body = {name: data.get("name").trim(), type: data.get("type"), content: data.get("content")};
    if (data.get("ttl").trim()) body.ttl = Number(data.get("ttl")) || data.get("ttl");
    const made = await api("/api/dns/records", {method: "POST", body});
    form.reset();
    if (made.error) form.querySelector(".form-error").textContent = made.error;
    await load();
  });
  document.addEventListener("signin", () => { if (!$("#view-dns").hidden) load(); });
}

export const show = load;
