// The page: one module per view, shown by the URL's #hash (so the back button and links work), the
// colour theme, and who is signed in. No framework, no build step.
import {$, kept, session} from "./lib.js";
import * as dns from "./dns.js";
import * as imports from "./import.js";
import * as logbook from "./logbook.js";
import * as qsl from "./qsl.js";
import * as settings from "./settings.js";
import * as signin from "./signin.js";
import * as solar from "./solar.js";
import * as spots from "./spots.js";

const VIEWS = {spots, logbook, import: imports, signin, qsl, solar, dns, settings};

function route() {
  const name = location.hash.slice(1) in VIEWS ? location.hash.slice(1) : "spots";
  for (const key of Object.keys(VIEWS)) $(`#view-${key}`).hidden = key !== name;
  document.querySelectorAll("nav a").forEach(a => {
    if (a.hash === `#${name}`) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  if (VIEWS[name].show) VIEWS[name].show();
}

// Theme: the system's unless chosen here; the button cycles system → dark → light.
const THEMES = ["system", "dark", "light"];
function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("#theme").setAttribute("aria-label", `Colour theme: ${theme === "system" ? "follows the system" : theme}`);
  $("#theme").title = $("#theme").getAttribute("aria-label");
}

applyTheme(kept.get("theme", "system"));
$("#theme").onclick = () => {
  const theme = THEMES[(THEMES.indexOf(kept.get("theme", "system")) + 1) % THEMES.length];
  kept.set("theme", theme);
  applyTheme(theme);
};

for (const view of Object.values(VIEWS)) view.init();
window.addEventListener("hashchange", route);
session.refresh().then(route);
