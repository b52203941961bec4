// QSL syncs: each service's health said in words, the new confirmations, and the user's own logins
// (sent once, stored sealed on the server, never shown again).
import {$, ago, api, el, onSubmit, session} from "./lib.js";

const health = $("#qsl-health");
const notices = $("#qsl-notices");

function inWords(s) {
  if (!s.linked) return `${s.name}: not linked. Save your ${s.name} login below to fetch confirmations.`;
  const counts = `${s.confirmations ?? 0} confirmations, ${s.unmatched ?? 0} not matched to a QSO`;
  if (s.error) {
    return `${s.name}: failing (${s.failures ?? 1} times since the last success, ${ago(s.last_success)}): ${s.error}. ${counts}.`;
  }
  if (!s.last_success) return `${s.name}: linked, waiting for the first sync. ${counts}.`;
  const next = s.next_run ? `; next ${new Date(s.next_run).toUTCString().slice(17, 22)} UTC` : "";
  return `${s.name}: working, last success ${ago(s.last_success)}${next}. ${counts}.`;
}

async function load() {
  if (!session.me) { health.replaceChildren(); notices.replaceChildren(); return; }
  try {
    const status = await api("/api/qsl/status");
    health.replaceChildren(...status.services.map(s => el("li", {className: s.error ? "bad" : ""}, inWords(s))));
    notices.replaceChildren(...(status.notifications.length
      ? status.notifications.map(n => el("li", {}, `${ago(n.created_at)}: ${n.message}`))
      : [el("li", {}, "No new confirmations.")]));
  } catch (err) {
    health.replaceChildren(el("li", {}, err.message));
  }
}

// A login form per service: user, password, Save, Remove.
function loginForm(service, name) {
  const field = (label, props) => el("label", {}, `${label} `, el("input", {required: true, ...props}));
  return el("form", {id: `qsl-${service}`, className: "bar"}, el("span", {}, name),
    field("User", {name: "username", autocomplete: "off"}),
    field("Password", {name: "password", type: "password", autocomplete: "new-password"}),
    el("button", {type: "submit"}, "Save"), el("button", {type: "button", className: "remove"}, "Remove"),
    el("p", {className: "form-error", role: "alert"}));
}

export function init() {
  for (const [service, name] of [["lotw", "LoTW"], ["eqsl", "eQSL"]]) {
    const form = loginForm(service, name);
    $("#qsl-logins").append(form);
    onSubmit(form, async (data) => {
      await api(`/api/qsl/credentials/${service}`, {method: "PUT",
        body: {username: data.get("username"), password: data.get("password")}});
      form.reset();
      form.querySelector(".form-error").textContent = "Saved; the first sync starts shortly.";
      await load();
    });
    form.querySelector(".remove").onclick = async () => {
      try {
        await api(`/api/qsl/credentials/${service}`, {method: "DELETE"});
        form.querySelector(".form-error").textContent = "Removed.";
      } catch (err) { form.querySelector(".form-error").textContent = err.message; }
      await load();
    };
  }
  $("#qsl-seen").onclick = async () => { await api("/api/qsl/notifications/seen", {method: "POST"}); await load(); };
  document.addEventListener("signin", () => { if (!$("#view-qsl").hidden) load(); });
}

export const show = load;
