// What every view shares: JSON calls with the server's error shape, small DOM helpers, inline form
// errors, and who is signed in.

export class ApiError extends Error {
  constructor(status, message, field) { super(message); this.status = status; this.field = field; }
}

// A call to the JSON API; the session cookie goes along. Errors raise ApiError with the server's words.
export async function api(path, {method = "GET", body} = {}) {
  const options = {method, headers: {}};
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, options);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || `${r.status} ${r.statusText}`, data && data.field);
  return data;
}

// el("td", {className: "x"}, "text", child): an element; null and undefined children are left out.
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const c of children) if (c != null) node.append(c);
  return node;
}

// Spots and QSOs leave out unknown values: show those as empty, never "undefined".
export const shown = (value) => (value == null ? "" : String(value));

export const $ = (selector, root = document) => root.querySelector(selector);

// Forms: a server error goes beside the field it names (aria-invalid, aria-describedby), else at the end.
export function clearErrors(form) {
  form.querySelectorAll(".field-error").forEach(e => e.remove());
  form.querySelectorAll("[aria-invalid]").forEach(e => { e.removeAttribute("aria-invalid"); e.removeAttribute("aria-describedby"); });
  const general = form.querySelector(".form-error");
  if (general) general.textContent = "";
}

export function showError(form, err) {
  clearErrors(form);
  const input = err.field && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
  if (input) {
    const id = `${form.id}-${err.field}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.closest("label").after(el("span", {id, className: "field-error"}, err.message));
    input.focus();
  } else {
    form.querySelector(".form-error").textContent = err.message || String(err);
  }
}

// A form's submit runs `action`; its errors are shown in the form.
export function onSubmit(form, action) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    try { await action(new FormData(form)); } catch (err) { showError(form, err); }
  });
}

// Values this browser keeps across reloads (the relay, the home grid, the theme).
export const kept = {
  get: (key, fallback = "") => localStorage.getItem(key) ?? fallback,
  set: (key, value) => localStorage.setItem(key, value),
  bind(input, key) {  // every keystroke: a reload right after typing keeps it
    input.value = kept.get(key, input.value);
    input.addEventListener("input", () => kept.set(key, input.value));
  },
};

// Who is signed in (null: nobody); views listen for "signin" to reload.
export const session = {
  me: null,
  async refresh() {
    try { session.me = await api("/api/me"); } catch (e) { session.me = null; }
    document.body.classList.toggle("anonymous", !session.me);
    document.dispatchEvent(new CustomEvent("signin", {detail: session.me}));
    return session.me;
  },
};

export function ago(iso) {
  if (!iso) return "never";
  const minutes = Math.round((Date.now() - new Date(iso)) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 120) return `${minutes} min ago`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h ago`;
  return `${Math.round(minutes / 1440)} days ago`;
}
