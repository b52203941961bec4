// The page: one module per view, shown by the URL's #hash (so the back button and links work), the
// colour theme, and who is signed in. No framework, no build step.
import {$, kept, session} from "./lib.js";
import * as signin from "./signin.js";
import * as solar from "./solar.js";
import * as spots from "./spots.js";

// Spots (the first view), the header's sign-in state and the propagation a spot opens load at once;
// the other views' modules on first use, so the first load stays small.
const views = {spots: Promise.resolve(spots), signin: Promise.resolve(signin), solar: Promise.resolve(solar)};
const LATER = {logbook: "./logbook.js", import: "./import.js", qsl: "./qsl.js", dns: "./dns.js", settings: "./settings.js"};
const NAMES = [...Object.keys(views), ...Object.keys(LATER)];

function view(name) {
  if (!views[name]) views[name] = import(LATER[name]).then(module => { module.init(); return module; });
  return views[name];
}

async function route() {
  const name = NAMES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "spots";
  const module = await view(name);  // shown once its module works: no control before it does anything
  if (location.hash.slice(1) !== name && name !== "spots") return;  // another view was chosen meanwhile
  for (const key of NAMES) $(`#view-${key}`).hidden = key !== name;
  document.querySelectorAll("nav a").forEach(a => {
    if (a.hash === `#${name}`) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  if (module.show) module.show();
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

// Signed in: the user bus brings notifications and cluster announcements (bus.js), once per page.
let bus = null;
document.addEventListener("signin", event => {
  if (event.detail && !bus) bus = import("./bus.js").then(m => m.startBus($("#notices")));
});

[spots, signin, solar].forEach(module => module.init());
window.addEventListener("hashchange", route);
session.refresh().then(route);
