// Settings: the account's own (share_qsos, on the server) and this browser's (relay URL, pairing token,
// home grid: localStorage, kept across reloads).
import {$, api, kept, session, showError} from "./lib.js";

const form = $("#settings-form");
const share = $("#share-qsos");

async function load() {
  share.disabled = !session.me;
  if (!session.me) return;
  try { share.checked = (await api("/api/settings")).share_qsos; } catch (err) { showError(form, err); }
}

export function init() {
  kept.bind($("#relay-url"), "relayUrl");
  kept.bind($("#relay-token"), "relayToken");
  kept.bind($("#home-grid"), "homeGrid");
  form.addEventListener("submit", (ev) => ev.preventDefault());
  share.onchange = async () => {
    try {
      share.checked = (await api("/api/settings", {method: "PATCH", body: {share_qsos: share.checked}})).share_qsos;
      form.querySelector(".form-error").textContent = share.checked ? "Your new QSOs go out as spots." : "";
    } catch (err) { share.checked = !share.checked; showError(form, err); }
  };
  document.addEventListener("signin", load);
}

export const show = load;
