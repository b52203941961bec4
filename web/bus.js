// The user bus (/websocket): notifications and cluster announcements for a signed-in page, and a
// small form to announce or talk. The session cookie authenticates it (same-site Origin).
const MAX_NOTICES = 50;

function line(text, kind) {
  const p = document.createElement("p");
  p.className = "notice " + kind;
  p.textContent = `${new Date().toISOString().slice(11, 16)} ${text}`;
  return p;
}

function describe(m) {
  switch (m.type) {
    case "hello": return [`bus: signed in as ${m.call}`, "info"];
    case "import": return m.status === "running"
      ? [`import ${m.id}: ${m.records_read} records, ${Math.round(100 * m.bytes_done / (m.size_bytes || 1))}%`, "progress"]
      : [`import ${m.id} ${m.status}: ${m.inserted} new, ${m.duplicates} duplicates, ${m.rejected} rejected` +
         (m.error ? ` (${m.error})` : ""), m.status === "done" ? "info" : "error"];
    case "qsl": return [m.text, "info"];
    case "sync_failed": return [`${m.service} sync failed: ${m.error}`, "error"];
    case "announce": return [`${m.to === "WX" ? "WX" : "To " + m.to} de ${m.from}: ${m.text}`, "announce"];
    case "talk": return [`${m.to} de ${m.from}: ${m.text}`, "talk"];
    case "error": return [`not sent: ${m.error}`, "error"];
    default: return null;  // "sent" and types this page does not know
  }
}

export function startBus(section) {
  const list = document.createElement("div");
  const form = document.createElement("form");
  form.innerHTML = `<label>To <input name="to" size="8" placeholder="ALL or a call" autocomplete="off"></label>
    <label>Text <input name="text" maxlength="200" required autocomplete="off"></label>
    <button type="submit">Send</button>`;
  section.hidden = false;
  section.append(form, list);
  let ws = null;
  let retry = 1000;
  let progress = null;  // one line per running import, updated in place

  function show(m) {
    const shown = describe(m);
    if (!shown) return;
    const p = line(...shown);
    if (m.type === "import") {
      if (progress && progress.dataset.job == m.id) progress.remove();
      progress = m.status === "running" ? p : null;
      p.dataset.job = m.id;
    }
    list.prepend(p);
    while (list.children.length > MAX_NOTICES) list.lastChild.remove();
  }

  form.onsubmit = (ev) => {
    ev.preventDefault();
    const to = form.to.value.trim().toUpperCase();
    const message = !to || to === "ALL" ? {type: "announce", text: form.text.value, full: to === "ALL"}
      : {type: "talk", to, text: form.text.value};
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(message)); form.text.value = ""; }
    else show({type: "error", error: "the bus is reconnecting, try again in a moment"});
  };

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/websocket`);
    ws.onopen = () => { retry = 1000; };
    ws.onmessage = (ev) => show(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      if (ev.code === 1008 || ev.code === 1009) show({type: "error", error: ev.reason});
      setTimeout(connect, retry + Math.random() * 500);
      retry = Math.min(retry * 2, 60000);
    };
  }
  connect();
}
