// uaedge console: plain JavaScript on the REST API (/api/v1), no build step and no
// third-party code. Every page is a function of the hash route that draws into #view and
// returns what to stop when the page is left (timers, event streams). Text from the
// gateway goes in through textContent only, never as HTML.
"use strict";

const ROW = 28; // px, the virtual table's row height (app.css --row)
const POLL_MS = 2000;
const TREND_POINTS = 2000; // the most points a trend keeps

const state = { session: null };

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces an element's children; null, undefined and false leave no trace (the DOM's own
// replaceChildren would write "null").
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function svg(tag, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    if (state.session && state.session.csrf_token) init.headers["X-CSRF-Token"] = state.session.csrf_token;
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch("/api/v1/" + path, init);
  } catch (e) {
    return { ok: false, status: 0, body: { error: "unreachable", message: "the gateway does not answer: " + e.message } };
  }
  let body = null;
  try { body = await response.json(); } catch (_) { body = { message: response.statusText }; }
  if (response.status === 401 && !options.login) {
    state.session = null;
    showLogin();
  }
  return { ok: response.ok, status: response.status, body };
}

const tagUrl = (path) => path.split("/").map(encodeURIComponent).join("/");
const qualityClass = (q) => "q-" + (q || "bad").replace(/\(.*$/, "").toLowerCase();

function formatValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const p = v.toPrecision(6);
    // Trailing zeros of a fraction only: 120000.4 stays "120000", 1.50000 becomes "1.5".
    return p.includes(".") && !p.includes("e") ? p.replace(/\.?0+$/, "") : p;
  }
  return String(v);
}

function formatTime(t) {
  if (!t) return "—";
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function message(kind, text) { return h("div", { class: "message " + kind, role: kind === "error" ? "alert" : "status" }, text); }

// A modal question; resolves to the comment (or "") when confirmed, null when cancelled.
function confirmDialog(text, { comment = false, ok = "Confirm" } = {}) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = ok;
  document.getElementById("confirm-comment-label").hidden = !comment;
  const box = document.getElementById("confirm-comment");
  box.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? box.value : null), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// Follows /api/v1/events with `filter`; handlers by event name. The browser reconnects
// by itself; `onopen` runs on every (re)connection, so a page reloads its snapshot there.
// A stream the server refused (busy, logged out) is not retried by the browser: then
// `lost` runs, and the page says so and checks the session.
function follow(filter, handlers) {
  const q = new URLSearchParams(filter).toString();
  const source = new EventSource("/api/v1/events" + (q ? "?" + q : ""));
  for (const [name, fn] of Object.entries(handlers)) {
    if (name === "open") source.onopen = fn;
    else if (name !== "lost") source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      if (handlers.lost) handlers.lost();
      loadSession().then((r) => { if (r.status === 401) showLogin("Your session ended; log in again."); });
    }
  };
  return () => source.close();
}

// A banner for a page whose live updates stopped.
function staleBanner(view) {
  if (!view.querySelector(".message.stale")) {
    view.prepend(h("div", { class: "message error stale", role: "alert" }, "Live updates stopped (too many open pages, or the gateway restarted): reload the page."));
  }
}

// ---------------------------------------------------------------- session

async function loadSession() {
  const r = await api("session", { login: true });
  state.session = r.ok ? r.body : null;
  const who = document.getElementById("who");
  const out = document.getElementById("logout");
  if (state.session) {
    who.textContent = state.session.user + " (" + state.session.role + ")";
    out.hidden = !state.session.csrf_token;
  } else {
    who.textContent = "";
    out.hidden = true;
  }
  return r;
}

function closeDialog() {
  const dialog = document.getElementById("confirm");
  if (dialog.open) dialog.close("cancel");
}

function showLogin(note) {
  closeDialog();
  stopPage();
  const view = document.getElementById("view");
  const error = h("div");
  const user = h("input", { name: "user", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card login", onsubmit: async (e) => {
    e.preventDefault();
    const r = await api("login", { body: { user: user.value, password: password.value }, login: true });
    if (r.ok) {
      await loadSession();
      route();
    } else {
      put(error, message("error", r.body.message || "login failed"));
    }
  } },
    h("h1", {}, "Log in to uaedge"),
    note ? message("note", note) : null,
    h("label", {}, "User", user),
    h("label", {}, "Password", password),
    error,
    h("button", { type: "submit", class: "primary" }, "Log in"));
  put(view, form);
  user.focus();
}

// ---------------------------------------------------------------- dashboard

function dashboard(view) {
  let last = null;
  const cards = h("div", { class: "cards" });
  const devices = h("div", { class: "panel" });
  const endpoints = h("div", { class: "panel" });
  put(view, h("h1", {}, "Gateway"), cards, devices, endpoints);
  const card = (title, big, sub, id) => h("div", { class: "card", "data-card": id }, h("h2", {}, title), h("div", { class: "big" }, big), h("div", { class: "sub" }, sub));
  async function refresh() {
    const [s, d] = await Promise.all([api("status"), api("devices")]);
    if (!s.ok || !d.ok) return;
    const st = s.body, list = d.body.devices;
    const now = performance.now();
    const samples = list.reduce((a, x) => a + x.samples_in, 0);
    const rate = last ? Math.max(0, (samples - last.samples) / ((now - last.t) / 1000)) : null;
    last = { samples, t: now };
    const sp = st.sparkplug;
    put(cards, 
      card("Devices", st.devices.connected + " / " + st.devices.total, "connected", "devices"),
      card("Samples/s", rate === null ? "…" : Math.round(rate).toLocaleString(), st.tags.toLocaleString() + " tags", "rate"),
      card("Active alarms", String(st.alarms.active), st.alarms.checks + " checks", "alarms"),
      card("OPC UA sessions", st.opcua.running ? String(st.opcua.sessions) : "off", st.opcua.connections_open + " connections", "opcua"),
      sp ? card("Broker", sp.mqtt_connected ? "connected" : "down", sp.broker, "broker")
        : card("Broker", "off", "no sparkplug: section", "broker"),
      sp ? card("Primary host", sp.primary_host_id ? (sp.primary_host_online ? "online" : "offline") : "—",
        sp.primary_host_id || "none configured", "host") : null,
      sp ? card("Store backlog", sp.backlog_records.toLocaleString(), (sp.backlog_bytes / 1024).toFixed(0) + " KiB, " + sp.records_dropped + " dropped", "backlog") : null,
      card("Config", st.config.sha256.slice(0, 12), st.last_reload ? "last reload: " + st.last_reload.outcome : "not reloaded since start", "config"),
    );
    const rows = list.map((x) => h("tr", { "data-device": x.name },
      h("td", {}, h("a", { href: "#/device/" + encodeURIComponent(x.name) }, x.name)),
      h("td", {}, x.driver),
      h("td", {}, h("span", { class: "badge " + (x.connected ? "up" : "down") }, x.connected ? "connected" : "down")),
      h("td", {}, x.tags.toLocaleString()),
      h("td", {}, x.bad_tags ? h("span", { class: "q-bad" }, String(x.bad_tags)) : "0"),
      h("td", {}, x.samples_in.toLocaleString()),
      h("td", {}, String(x.reconnects)),
      h("td", {}, x.last_error || "")));
    put(devices, h("h2", {}, "Devices"), h("table", {},
      h("thead", {}, h("tr", {}, ["Device", "Driver", "Link", "Tags", "Bad", "Samples in", "Reconnects", "Last error"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
    put(endpoints, h("h2", {}, "OPC UA endpoints"), st.opcua.endpoints.length
      ? h("table", {}, h("tbody", {}, st.opcua.endpoints.map((e) => h("tr", {}, h("td", {}, e.url), h("td", {}, e.security_policy), h("td", {}, e.security_mode)))))
      : h("p", { class: "sub" }, "The OPC UA server is off."));
  }
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------- device page

const COLUMNS = [
  ["name", "Tag"], ["value", "Value"], ["units", "Units"], ["quality", "Quality"], ["source_time", "Source time"], ["description", "Description"],
];

function devicePage(view, name) {
  let tags = [];          // every tag of the device, as the API gives them
  const byPath = new Map();
  let shown = [];         // filtered and sorted
  let sort = { key: "name", desc: false };
  let filter = "";
  let dirtyOrder = false, frame = 0, stopped = false;
  const head = h("div", { class: "vt-head", role: "row" });
  const spacer = h("div", { class: "vt-spacer" });
  const body = h("div", { class: "vt-body", role: "rowgroup" }, spacer);
  const count = h("span", { class: "count", id: "tag-count" });
  const search = h("input", { type: "search", placeholder: "Filter tags by name…", "aria-label": "Filter tags", oninput: () => { filter = search.value.toLowerCase(); reorder(); } });
  const info = h("div", { class: "toolbar" });
  const pool = [];
  put(view, h("h1", {}, "Device ", name), info, h("div", { class: "toolbar" }, search, count), h("div", { class: "vt", role: "table" }, head, body));

  for (const [key, label] of COLUMNS) {
    head.append(h("button", { type: "button", "data-sort": key, onclick: () => {
      sort = { key, desc: sort.key === key ? !sort.desc : false };
      reorder();
    } }, label));
  }

  function compare(a, b) {
    const x = a[sort.key], y = b[sort.key];
    let c;
    if (typeof x === "number" && typeof y === "number") c = x - y;
    else c = String(x ?? "").localeCompare(String(y ?? ""), undefined, { numeric: true });
    return sort.desc ? -c : c;
  }

  function reorder() {
    shown = filter ? tags.filter((t) => t.name.toLowerCase().includes(filter)) : tags.slice();
    shown.sort(compare);
    spacer.style.height = shown.length * ROW + "px";
    count.textContent = shown.length.toLocaleString() + " of " + tags.length.toLocaleString() + " tags";
    for (const b of head.querySelectorAll("button")) {
      b.classList.toggle("sorted", b.dataset.sort === sort.key);
      b.classList.toggle("desc", b.dataset.sort === sort.key && sort.desc);
    }
    draw();
  }

  // Only the rows in view (and a few around) exist; scrolling moves them.
  function draw() {
    frame = 0;
    const first = Math.max(0, Math.floor(body.scrollTop / ROW) - 5);
    const last = Math.min(shown.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW) + 5);
    let used = 0;
    for (let i = first; i < last; i++, used++) {
      let row = pool[used];
      if (!row) {
        row = h("div", { class: "vt-row", role: "row", onclick: () => { location.hash = "#/tag/" + encodeURIComponent(row.dataset.path); } },
          ...COLUMNS.map(([key]) => h("span", { class: key, role: "cell" })));
        pool.push(row);
        spacer.append(row);
      }
      const t = shown[i];
      row.hidden = false;
      row.style.transform = "translateY(" + i * ROW + "px)";
      row.dataset.path = t.path;
      const [n, v, u, q, st, d] = row.children;
      n.textContent = t.name;
      v.textContent = formatValue(t.value);
      u.textContent = t.units || "";
      q.textContent = t.quality;
      q.className = "quality " + qualityClass(t.quality);
      st.textContent = formatTime(t.source_time);
      d.textContent = t.description || "";
    }
    for (let i = used; i < pool.length; i++) pool[i].hidden = true;
  }

  const schedule = () => { if (!frame && !stopped) frame = requestAnimationFrame(draw); };
  body.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);

  async function loadInfo() {
    const d = await api("devices/" + encodeURIComponent(name));
    if (stopped) return false;
    if (!d.ok) { put(view, message("error", d.body.message)); return false; }
    const x = d.body;
    put(info,
      h("span", { class: "badge " + (x.connected ? "up" : "down") }, x.connected ? "connected" : "down"),
      h("span", {}, x.driver), h("span", { class: "count" }, x.reconnects + " reconnects"),
      x.last_error ? h("span", { class: "q-bad" }, x.last_error) : null);
    return true;
  }

  // Changes that arrive while a snapshot loads are kept, and applied over it where they
  // are newer; a load overtaken by a later one is dropped.
  let generation = 0;
  let pending = null;
  async function load() {
    const mine = ++generation;
    pending = new Map();
    if (!(await loadInfo()) || mine !== generation) return;
    const all = [];
    let after = "";
    for (;;) {
      const r = await api("tags?device=" + encodeURIComponent(name) + "&limit=10000" + (after ? "&after=" + encodeURIComponent(after) : ""));
      if (stopped || mine !== generation) return;
      if (!r.ok) { put(view, message("error", r.body.message)); return; }
      all.push(...r.body.tags.filter((t) => !t.alarm));
      if (!r.body.next) break;
      after = r.body.next;
    }
    tags = all;
    byPath.clear();
    for (const t of tags) byPath.set(t.path, t);
    for (const c of pending.values()) apply(c);
    pending = null;
    reorder();
  }

  function apply(c) {
    const t = byPath.get(c.path);
    if (!t || (t.source_time && c.source_time && c.source_time < t.source_time)) return;
    t.value = c.value; t.quality = c.quality; t.source_time = c.source_time;
  }

  // Values change in place; the order is redone at most once a second when the sort
  // depends on them.
  const resort = setInterval(() => { if (dirtyOrder) { dirtyOrder = false; reorder(); } }, 1000);
  let opened = false;
  load();
  const stop = follow({ device: name }, {
    // The first opening comes with the load above; a reopening may have missed changes.
    open: () => { if (opened) load(); opened = true; },
    tags: (changes) => {
      for (const c of changes) {
        if (pending) pending.set(c.path, c);
        apply(c);
      }
      if (sort.key !== "name" && sort.key !== "units" && sort.key !== "description") dirtyOrder = true;
      schedule();
    },
    device: () => loadInfo(),
    reload: () => load(),
    lost: () => staleBanner(view),
  });
  return () => { stopped = true; stop(); clearInterval(resort); window.removeEventListener("resize", schedule); };
}

// ---------------------------------------------------------------- tag page

function tagPage(view, path) {
  let points = []; // { t: ms, v: number }
  let tag = null;
  let stopped = false;
  // The gateway's clock, as its newest time and when this browser learnt it: a laptop's
  // clock may be off by minutes, so "now" on the trend is the gateway's.
  let anchor = null;
  const gatewayNow = () => anchor ? anchor.t + (Date.now() - anchor.at) : Date.now();
  const learn = (t) => { if (!anchor || t > anchor.t) anchor = { t, at: Date.now() }; };
  const now = h("div", { class: "value-now" });
  const props = h("dl", { class: "props" });
  const chart = svg("svg", { class: "trend", viewBox: "0 0 800 280", role: "img", "aria-label": "trend" });
  const trendNote = h("div");
  const writePanel = h("div", { class: "panel", hidden: true });
  put(view, h("h1", {}, path), h("div", { class: "panel" }, now, props), h("div", { class: "panel" }, h("h2", {}, "Trend, last 10 minutes"), chart, trendNote), writePanel);

  const numeric = (v) => typeof v === "number" ? v : typeof v === "boolean" ? (v ? 1 : 0) : null;

  function show(t) {
    now.textContent = formatValue(t.value) + (t.units ? " " + t.units : "");
    now.className = "value-now " + qualityClass(t.quality);
    const rows = [["Quality", t.quality], ["Source time", t.source_time || "—"],
      ["Type", t.type], ["Units", t.units || "—"], ["Writable", t.writable ? "yes" : "no"], ["Historized", t.historized ? "yes" : "no"], ["Description", t.description || "—"]];
    put(props, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-prop": k.toLowerCase().replace(" ", "-") }, v)]));
  }

  function drawTrend() {
    const end = gatewayNow();
    const cutoff = end - 600_000;
    points = points.filter((p) => p.t >= cutoff).slice(-TREND_POINTS);
    // Drawn at the element's own width, so that text is not stretched.
    const W = Math.max(300, Math.round(chart.getBoundingClientRect().width) || 800), H = 280, L = 60, B = 24, T = 10, R = 10;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    put(chart);
    if (points.length === 0) { chart.append(svg("text", { x: L, y: H / 2 }, "Waiting for values…")); return; }
    // The newest value holds until now.
    const held = points.concat(end > points[points.length - 1].t ? [{ t: end, v: points[points.length - 1].v }] : []);
    let lo = Math.min(...held.map((p) => p.v)), hi = Math.max(...held.map((p) => p.v));
    if (lo === hi) { lo -= 1; hi += 1; }
    const t0 = held[0].t, t1 = Math.max(held[held.length - 1].t, t0 + 1);
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (v) => T + (hi - v) / (hi - lo) * (H - T - B);
    chart.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }), svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    for (const v of [lo, (lo + hi) / 2, hi]) chart.append(svg("text", { x: 4, y: y(v) + 4 }, formatValue(+v.toPrecision(4))));
    chart.append(svg("text", { x: L, y: H - 6 }, formatTime(new Date(t0).toISOString())), svg("text", { x: W - R - 90, y: H - 6 }, formatTime(new Date(t1).toISOString())));
    // A value holds until the next one: steps, not slopes.
    const steps = held.flatMap((p, i) => {
      const here = x(p.t).toFixed(1) + "," + y(p.v).toFixed(1);
      return i === 0 ? [here] : [x(p.t).toFixed(1) + "," + y(held[i - 1].v).toFixed(1), here];
    });
    chart.append(svg("polyline", { class: "line", points: steps.join(" ") }));
  }

  function writeForm(t) {
    const input = t.type === "bool"
      ? h("select", { name: "value", "aria-label": "New value" }, h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"))
      : h("input", { name: "value", "aria-label": "New value", value: t.value ?? "", size: 14 });
    if (t.type === "bool") input.value = t.value ? "true" : "false";
    const result = h("div");
    const role = state.session ? state.session.role : "viewer";
    const send = async (e) => {
      e.preventDefault();
      const raw = input.value.trim();
      let value = raw;
      if (t.type === "bool") value = raw === "true";
      else if (t.type !== "string" && t.type !== "datetime" && raw !== "" && !isNaN(Number(raw))) value = Number(raw);
      if (await confirmDialog("Write " + JSON.stringify(value) + " to " + path + "? The device receives it at once.", { ok: "Write" }) === null) return;
      put(result, message("note", "Writing…"));
      const r = await api("tags/" + tagUrl(path), { body: { value } });
      put(result, r.ok
        ? message("ok", "The device took " + formatValue(r.body.value) + " (was " + formatValue(r.body.previous) + ").")
        : message("error", "Refused: " + (r.body.message || r.status)));
    };
    put(writePanel, h("h2", {}, "Write"),
      role === "viewer" ? message("note", "You are logged in as a viewer: the gateway refuses your writes.") : null,
      h("form", { class: "inline", onsubmit: send }, input, t.units ? h("span", {}, t.units) : null, h("button", { type: "submit", class: "primary" }, "Write…")),
      result);
    writePanel.hidden = false;
  }

  async function load() {
    const r = await api("tags/" + tagUrl(path));
    if (stopped) return;
    if (!r.ok) { put(view, message("error", r.body.message)); return; }
    tag = r.body;
    if (tag.source_time) learn(Date.parse(tag.source_time));
    show(tag);
    if (tag.writable && writePanel.hidden) writeForm(tag);
    const hist = await api("history?tag=" + encodeURIComponent(path) + "&seconds=600");
    if (stopped) return;
    if (hist.ok) {
      points = hist.body.points.map((p) => ({ t: Date.parse(p.time), v: numeric(p.value) })).filter((p) => p.v !== null);
      if (points.length) learn(points[points.length - 1].t);
      put(trendNote);
    } else {
      put(trendNote, message("note", "No history for this tag (" + hist.body.message + "); the trend shows the values since this page opened."));
    }
    drawTrend();
  }

  const slash = path.indexOf("/");
  let opened = false;
  load();
  const stop = follow({ device: path.slice(0, slash), prefix: path }, {
    open: () => { if (opened) load(); opened = true; },
    tags: (changes) => {
      let mine = false;
      for (const c of changes) {
        if (c.path !== path || !tag) continue;
        mine = true;
        Object.assign(tag, { value: c.value, quality: c.quality, source_time: c.source_time });
        const v = numeric(c.value);
        if (c.source_time) learn(Date.parse(c.source_time));
        if (v !== null && c.source_time) points.push({ t: Date.parse(c.source_time), v });
      }
      if (mine) { show(tag); drawTrend(); }
    },
    reload: () => load(),
    lost: () => staleBanner(view),
  });
  return () => { stopped = true; stop(); };
}

// ---------------------------------------------------------------- alarms

function alarmsPage(view) {
  const list = h("div", { class: "panel" });
  const result = h("div");
  put(view, h("h1", {}, "Alarms"), result, list);
  async function acknowledge(a) {
    const comment = await confirmDialog("Acknowledge " + a.key + "?", { comment: true, ok: "Acknowledge" });
    if (comment === null) return;
    const r = await api("alarms/acknowledge", { body: { key: a.key, comment } });
    put(result, r.ok ? message("ok", "Acknowledged " + a.key + ".") : message("error", "Refused: " + (r.body.message || r.status)));
    refresh();
  }
  // One request at a time, and one more after it when events came meanwhile: a storm of
  // alarm events costs two requests, not one each.
  let busy = false, again = false, stopped = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try { await fetchList(); } finally {
      busy = false;
      if (again && !stopped) { again = false; refresh(); }
    }
  }
  async function fetchList() {
    const r = await api("alarms");
    if (stopped) return;
    if (!r.ok) { put(list, message("error", r.body.message)); return; }
    const alarms = r.body.alarms.slice().sort((a, b) => (b.active - a.active) || (a.acked - b.acked) || b.severity - a.severity);
    put(list, alarms.length === 0 ? h("p", {}, "No alarm is active or waiting for acknowledgement.") : h("table", {},
      h("thead", {}, h("tr", {}, ["Alarm", "State", "Severity", "Since", "Message", "Comment", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, alarms.map((a) => h("tr", { "data-alarm": a.key },
        h("td", {}, h("a", { href: "#/tag/" + encodeURIComponent(a.device + "/" + a.tag) }, a.device + "/" + a.tag), " · ", a.check),
        h("td", {}, h("span", { class: "badge " + (a.active ? "bad" : "off") }, a.active ? "active" : "inactive"), " ",
          h("span", { class: "badge " + (a.acked ? "good" : "warn") }, a.acked ? "acknowledged" : "unacknowledged")),
        h("td", {}, String(a.severity)),
        h("td", {}, formatTime(a.active_time)),
        h("td", {}, a.message),
        h("td", {}, a.comment ? a.comment + (a.user ? " (" + a.user + ")" : "") : ""),
        h("td", {}, a.acked ? "" : h("button", { type: "button", onclick: () => acknowledge(a) }, "Acknowledge…")))))));
  }
  refresh();
  const stop = follow({}, { alarm: refresh, open: refresh, lost: () => staleBanner(view) });
  const timer = setInterval(refresh, 10 * POLL_MS);
  return () => { stopped = true; stop(); clearInterval(timer); };
}

// ---------------------------------------------------------------- config

function configPage(view) {
  let stopped = false;
  const result = h("div");
  const admin = state.session && state.session.role === "admin";
  async function reload() {
    if (await confirmDialog("Re-read the config file and apply it, as `systemctl reload uaedge` does?", { ok: "Reload" }) === null) return;
    put(result, message("note", "Reloading…"));
    const r = await api("reload", { body: {} });
    if (stopped) return;
    if (r.status === 202) { put(result, message("note", r.body.message)); return; }
    if (r.status === 0) {
      put(result, message("note", "The gateway did not answer: a reload that changes `web:` restarts this server. The dashboard's Config card shows the outcome."));
      return;
    }
    if (!r.ok) { put(result, message("error", "Refused: " + (r.body.message || r.status))); return; }
    const o = r.body;
    put(result, o.outcome === "refused"
      ? h("div", { class: "message error", role: "alert" }, "The new file was refused; the running config stays:",
        h("ul", {}, o.errors.map((e) => h("li", {}, e.file + ":" + e.line + ":" + e.column + ": " + e.key + ": " + e.message))))
      : message("ok", o.outcome === "applied" ? "Applied." : "The file is unchanged."));
    show();
  }
  function show() {
    api("config").then((r) => {
      if (stopped) return;
      if (!r.ok) { put(view, h("h1", {}, "Config"), result, message("error", r.body.message)); return; }
      const c = r.body;
      put(view, h("h1", {}, "Config"),
        h("div", { class: "toolbar" }, h("span", {}, c.file, " · sha256 ", h("code", {}, c.sha256.slice(0, 16)), " · read-only; passwords masked"),
          admin ? h("button", { type: "button", class: "primary", onclick: reload }, "Reload config…") : null),
        result,
        c.running ? null : message("error", "The file was changed since the gateway applied it: what runs differs until a reload."),
        h("pre", { class: "config" }, c.text));
    });
  }
  put(view, h("h1", {}, "Config"), message("note", "Loading…"));
  show();
  return () => { stopped = true; };
}

// ---------------------------------------------------------------- routing

let stopPage = () => {};

function route() {
  closeDialog();
  stopPage();
  stopPage = () => {};
  const view = document.getElementById("view");
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  let arg = "";
  try { arg = decodeURIComponent(rest.join("/")); } catch (_) { arg = rest.join("/"); }
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("current", a.dataset.nav === (page || "dashboard"));
  if (!state.session) { showLogin(); return; }
  const pages = { "": dashboard, device: devicePage, tag: tagPage, alarms: alarmsPage, config: configPage };
  const draw = pages[page];
  if (!draw) { put(view, message("error", "No such page.")); return; }
  const stop = draw(view, arg);
  stopPage = () => { stop(); stopPage = () => {}; };
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("logout").addEventListener("click", async () => {
    await api("logout", { body: {} });
    state.session = null;
    await loadSession();
    showLogin("Logged out.");
  });
  window.addEventListener("hashchange", route);
  await loadSession();
  route();
});
