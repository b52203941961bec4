// Sign-in three ways (README: Sign-in and trust): the LoTW certificate on its own TLS listener, an
// e-mail code to the FCC licence address, a code in the QRZ biography. The header says who is signed in.
import {$, api, el, onSubmit, session} from "./lib.js";

const who = $("#who");
const signedIn = $("#signed-in");
let qrzClaim = null;
let emailCall = null;

function render(me) {
  if (!me) {
    who.replaceChildren(el("a", {href: "#signin"}, "Sign in"));
    signedIn.textContent = "Nobody is signed in.";
    return;
  }
  const out = el("button", {type: "button", className: "link"}, "Log out");
  out.onclick = () => logout("/api/auth/logout");
  who.replaceChildren(el("a", {href: "#signin", id: "who-call"}, me.callsign), ` (trust ${me.trust}) `, out);
  const everywhere = el("button", {type: "button"}, "Log out on every device");
  everywhere.onclick = () => logout("/api/auth/logout-everywhere");
  signedIn.replaceChildren(`Signed in as ${me.callsign} by ${me.method}, trust ${me.trust}. `, everywhere);
}

async function logout(path) {
  try { await api(path, {method: "POST"}); } catch (e) { /* a session that ended already */ }
  await session.refresh();
}

// The certificate is checked on another port; its answer sets this site's cookie. Look for it a while.
function watchCertificate() {
  let tries = 0;
  const timer = setInterval(async () => {
    if (await session.refresh() || ++tries > 60) clearInterval(timer);
  }, 2000);
}

async function showWays() {
  const ways = await api("/api/auth/ways");
  const cert = $("#cert-way");
  if (ways.certificate) {
    const link = el("a", {href: ways.certificate, target: "_blank", rel: "noopener", id: "cert-link"},
                    "Sign in with your LoTW certificate");
    link.onclick = watchCertificate;
    cert.replaceChildren(link, " (opens the certificate sign-in; this page notices when it is done)");
  } else {
    cert.textContent = "Not offered on this server.";
  }
  $("#email-form").hidden = !ways.email;
  $("#email-off").hidden = ways.email;
}

export function init() {
  document.addEventListener("signin", (ev) => render(ev.detail));
  onSubmit($("#email-form"), async (data) => {
    emailCall = data.get("callsign");
    const sent = await api("/api/auth/email", {method: "POST", body: {callsign: emailCall}});
    $("#email-form .form-error").textContent = `A code went to ${sent.sent_to}; it is valid for ${sent.expires_in / 60} minutes.`;
    $("#email-code").hidden = false;
    $("#email-code input").focus();
  });
  onSubmit($("#email-code"), async (data) => {
    await api("/api/auth/email/verify", {method: "POST", body: {callsign: emailCall, code: data.get("code")}});
    $("#email-code").hidden = true;
    await session.refresh();
  });
  onSubmit($("#qrz-form"), async (data) => {
    const started = await api("/api/auth/qrz", {method: "POST", body: {callsign: data.get("callsign")}});
    qrzClaim = {callsign: data.get("callsign"), claim: started.claim};
    $("#qrz-code").textContent = started.code;
    $("#qrz-page").href = started.page;
    $("#qrz-verify").hidden = false;
  });
  onSubmit($("#qrz-verify"), async () => {
    await api("/api/auth/qrz/verify", {method: "POST", body: qrzClaim});
    $("#qrz-verify").hidden = true;
    await session.refresh();
  });
}

export const show = () => showWays().catch(err => { signedIn.textContent = err.message; });
