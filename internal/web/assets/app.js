// pxed web page: plain JavaScript, no build step. It reads pxed's JSON API
// (README "API") and follows GET /api/events; rows and the timeline are
// updated in place, never by reloading the page.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

// ---- state -----------------------------------------------------------------

const S = {
  machines: new Map(), // key (MAC, or address when the MAC is unknown) → machine
  view: [],            // the machines shown, filtered and sorted
  sortKey: "last_seen", sortDir: -1,
  query: "", stateFilter: "",
  selected: null,      // key of the machine in the detail panel
  timeline: [],        // its events
  inventory: false,    // GET /api/machines returns objects (the fleet inventory)
  profiles: null,      // names from GET /api/profiles, or null when absent
  noAction: new Set(), // actions this pxed does not have (404/405)
  rogues: new Map(),   // server%interface → {server, mac, interface, offered, count, last_seen}
  roguesAPI: null,     // GET /api/rogues answers (true), 404 (false), not asked yet (null)
  leases: [], leasesOK: true,
  token: localStorage.getItem("pxed.token") || "",
  dirty: false, resort: false,
  loadedAt: Date.now(),
  resyncs: 0,          // resync messages received (events the stream dropped)
};
window.pxedState = S; // for tests and curious operators

// ---- API -------------------------------------------------------------------

class APIError extends Error {
  constructor(status, msg, json) { super(msg); this.status = status; this.json = json; }
}

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  if (S.token) h.Authorization = "Bearer " + S.token;
  return h;
}

async function api(method, path, body) {
  const opt = { method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : null), cache: "no-store" };
  if (body !== undefined) opt.body = JSON.stringify(body);
  const r = await fetch(path, opt);
  const text = await r.text();
  let data = null, isJSON = false;
  try { data = text ? JSON.parse(text) : null; isJSON = true; } catch (_) { /* not JSON: a route pxed does not have */ }
  if (!r.ok) {
    if (r.status === 401) askToken("This pxed needs an API token.");
    const msg = (isJSON && data && data.error) || text.trim() || r.statusText;
    throw new APIError(r.status, msg, isJSON);
  }
  return data;
}

// macKey is a machine's key as a URL path element: a MAC in the boot URLs'
// dashed form; an address (a machine whose MAC is unknown) as it is.
const isMAC = (k) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(k);
const macKey = (m) => encodeURIComponent(isMAC(m) ? m.replaceAll(":", "-") : m);

// ---- formatting ------------------------------------------------------------

const STAGE_CLASS = {
  "dhcp-ack": "ok", "tftp-done": "ok", kernel: "ok", initrd: "ok", script: "ok", image: "ok", checkin: "ok",
  "loader-config": "ok", "pxe-menu-item": "ok", "machine-approved": "ok",
  "dhcp-nak": "bad", "tftp-error": "bad", "http-error": "bad", "unknown-arch": "bad", "dhcp-pool-exhausted": "bad",
  "claim-mismatch": "bad", "limit-refused": "bad", "rogue-server": "bad", "machine-denied": "bad", "dhcp-foreign": "bad",
  "dhcp-starvation": "bad",
  "machine-held": "warn", "dhcp-ignored": "warn", "pxe-menu-unknown": "warn", "boot-once": "warn",
  "dhcp-discover": "info", "dhcp-offer": "info", "dhcp-request": "info", "tftp-start": "info", "pxe-menu": "info",
  "machine-new": "info", "http": "info", "config-reload": "info",
};
const STATE_CLASS = { approved: "ok", pending: "warn", denied: "bad", new: "info" };
const PROGRESS = [
  ["DHCP", ["dhcp-offer", "dhcp-ack"], ["dhcp-nak", "dhcp-pool-exhausted", "unknown-arch"]],
  ["NBP", ["tftp-done", "loader-config"], ["tftp-error"]],
  ["Script", ["script"], []],
  ["Kernel", ["kernel", "image"], ["http-error"]],
  ["Initrd", ["initrd"], []],
  ["Check-in", ["checkin"], []],
];

function badge(text, cls) { return el("span", "badge " + (cls || ""), text); }
const isError = (stage) => STAGE_CLASS[stage] === "bad";

function ago(t) {
  if (!t) return "—";
  const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}
function clock(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function bytes(n) {
  if (!n) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function dur(ns) {
  if (!ns) return "";
  const ms = ns / 1e6;
  return ms < 1000 ? ms.toFixed(0) + " ms" : (ms / 1000).toFixed(2) + " s";
}
function num(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

let toastTimer = 0;
function toast(msg, bad) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = "toast" + (bad ? " bad" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), bad ? 6000 : 2500);
}

// ---- virtual list ----------------------------------------------------------

// VList shows a long array in a scrolling box with only the visible rows in
// the DOM: a pool of row elements is reused as the list scrolls.
class VList {
  constructor(box, cls, render, onPick) {
    this.box = box; this.cls = cls; this.render = render; this.onPick = onPick;
    this.items = []; this.pool = []; this.space = box.firstElementChild;
    this.rowH = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--row")) || 34;
    box.addEventListener("scroll", () => this.draw(), { passive: true });
    new ResizeObserver(() => this.draw()).observe(box);
    box.addEventListener("click", (ev) => {
      const row = ev.target.closest(".row");
      if (row && row.item !== undefined && this.onPick) this.onPick(row.item);
    });
  }
  set(items) { this.items = items; this.space.style.height = items.length * this.rowH + "px"; this.draw(); }
  draw() {
    const top = this.box.scrollTop, h = this.box.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowH) - 5);
    const last = Math.min(this.items.length, Math.ceil((top + h) / this.rowH) + 5);
    const need = last - first;
    while (this.pool.length < need) {
      const r = el("div", "row " + this.cls);
      this.box.appendChild(r);
      this.pool.push(r);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const r = this.pool[i];
      if (i >= need) { r.hidden = true; r.item = undefined; continue; }
      const item = this.items[first + i];
      r.hidden = false;
      r.style.transform = "translateY(" + (first + i) * this.rowH + "px)";
      r.item = item;
      this.render(r, item);
    }
  }
  visible() { return this.pool.filter((r) => !r.hidden).map((r) => r.item); }
}

// ---- machines --------------------------------------------------------------

function normalize(x) {
  if (typeof x === "string") return { mac: x, _legacy: true };
  return x;
}

function upsert(m) {
  const key = m.mac;
  const old = S.machines.get(key);
  if (old && m._legacy) return old; // the list of MACs only: keep what events taught
  const merged = old ? Object.assign(old, m) : m;
  if (!old) S.machines.set(key, merged);
  merged._text = null;
  return merged;
}

async function loadMachines() {
  try {
    const list = (await api("GET", "/api/machines")) || [];
    S.inventory = list.length > 0 && typeof list[0] === "object";
    const seen = new Set();
    for (const x of list) seen.add(upsert(normalize(x)).mac);
    // Forgotten machines leave; rows known by address only (no MAC yet) stay.
    if (S.inventory) for (const k of [...S.machines.keys()]) if (!seen.has(k) && isMAC(k)) S.machines.delete(k);
    S.resort = true;
    schedule();
    if (S.selected) drawDetail(); // opened from the URL before the list came, or changed
  } catch (e) {
    if (e.status !== 401) toast("machines: " + e.message, true);
  }
}

function searchText(m) {
  if (m._text == null) {
    const labels = m.labels ? Object.entries(m.labels).map(([k, v]) => k + "=" + v).join(" ") : "";
    m._text = [m.mac, m.mac.replaceAll(":", "-"), m.uuid, m.address, m.hostname, m.arch, m.firmware, m.profile,
      m.effective_profile, m.state, m.last_stage, labels].filter(Boolean).join(" ").toLowerCase();
  }
  return m._text;
}

function matches(m) {
  if (S.stateFilter === "error") { if (!isError(m.last_stage)) return false; }
  else if (S.stateFilter && m.state !== S.stateFilter) return false;
  if (!S.query) return true;
  const t = searchText(m);
  return S.query.split(/\s+/).every((w) => t.includes(w));
}

function compare(a, b) {
  const k = S.sortKey;
  let x = a[k] || "", y = b[k] || "";
  if (k === "mac") { x = a.mac; y = b.mac; }
  if (x < y) return -S.sortDir;
  if (x > y) return S.sortDir;
  return a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0;
}

function rebuildView() {
  const v = [];
  let pending = 0;
  for (const m of S.machines.values()) {
    if (m.state === "pending") pending++;
    if (matches(m)) v.push(m);
  }
  const p = $("#pending");
  p.hidden = pending === 0;
  p.textContent = pending + " pending approval";
  v.sort(compare);
  S.view = v;
  $("#count").textContent = v.length === S.machines.size ? v.length + " machines"
    : v.length + " of " + S.machines.size + " machines";
}

let drawQueued = false;
function schedule() {
  S.dirty = true;
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    if (S.resort) { rebuildView(); S.resort = false; mlist.set(S.view); }
    else mlist.draw();
    S.dirty = false;
    fillVisible();
  });
}

function renderMachine(r, m) {
  if (!r.cells) {
    r.cells = [];
    for (let i = 0; i < 9; i++) r.appendChild((r.cells[i] = el("span")));
    r.cells[1].className = "mono";
    r.cells[2].className = "mono";
  }
  const c = r.cells;
  r.dataset.mac = m.mac;
  r.classList.toggle("sel", m.mac === S.selected);
  r.classList.toggle("fresh", m._flash > 0 && Date.now() - m._flash < 700);
  c[0].replaceChildren(m.state ? badge(m.state, STATE_CLASS[m.state]) : el("span", "muted", "—"));
  c[1].textContent = m.mac;
  c[2].textContent = m.address || "—";
  c[3].textContent = m.hostname || "—";
  c[4].textContent = m.arch || "—";
  c[5].textContent = m.firmware || "—";
  c[6].textContent = m.profile || m.effective_profile || "—";
  c[6].title = m.profile ? "" : m.effective_profile ? "from a selector or the default" : "";
  c[7].replaceChildren(m.last_stage ? badge(m.last_stage, STAGE_CLASS[m.last_stage]) : el("span", "muted", "—"));
  c[7].dataset.stage = m.last_stage || "";
  c[8].textContent = ago(m.last_seen);
  c[8].title = m.last_seen || "";
}

// fillVisible: with the MAC-only machine list (a pxed without the
// inventory), the visible rows learn their last stage from their timeline,
// a few requests at a time.
let filling = 0;
function fillVisible() {
  if (S.inventory) return;
  for (const m of mlist.visible()) {
    if (filling >= 4) return;
    if (!m || m._filled) continue;
    m._filled = true;
    filling++;
    api("GET", "/api/machines/" + macKey(m.mac) + "/timeline").then((tl) => {
      if (tl && tl.length) learnFrom(m, tl);
      mlist.draw();
    }).catch(() => {}).finally(() => { filling--; fillVisible(); });
  }
}

function learnFrom(m, tl) {
  const last = tl[tl.length - 1];
  if (!m.first_seen) m.first_seen = tl[0].time;
  if (!m.last_seen || m.last_seen < last.time) { m.last_seen = last.time; m.last_stage = last.stage; }
  for (let i = tl.length - 1; i >= 0; i--) if (tl[i].ip) { m.address = m.address || tl[i].ip; break; }
  m._text = null;
}

// ---- live events -----------------------------------------------------------

function applyEvent(e) {
  if (e.stage === "rogue-server") rogueFromEvent(e);
  if (e.stage === "rogue-server" && !e.mac) return; // about another server, not a machine
  const key = e.mac || e.ip;
  if (!key) return;
  let m = S.machines.get(key);
  if (!m) {
    m = { mac: key, first_seen: e.time, _filled: true };
    if (S.inventory) m.state = "new";
    S.machines.set(key, m);
    S.resort = true;
  }
  m.last_seen = e.time;
  m.last_stage = e.stage;
  m.last_event = e;
  if (e.ip) m.address = e.ip;
  m._flash = Date.now();
  m._text = null;
  if (S.sortKey === "last_seen" || S.sortKey === "last_stage" || S.sortKey === "address" || S.query || S.stateFilter) S.resort = true;
  if (key === S.selected) {
    S.timeline.push(e);
    if (S.timeline.length > 1000) S.timeline.splice(0, S.timeline.length - 1000);
    appendTimeline(e, true);
    drawProgress();
    drawFacts();
  }
  if (e.stage === "dhcp-ack" && $("#tab-leases").classList.contains("on")) loadLeasesSoon();
  schedule();
  unflashSoon();
}

// unflashSoon redraws once the rows' flash is over (one timer, however
// many events arrive).
let unflashTimer = 0, lastFlash = 0;
function unflashSoon() {
  lastFlash = Date.now();
  if (unflashTimer) return;
  const tick = () => {
    const left = lastFlash + 750 - Date.now();
    if (left > 0) { unflashTimer = setTimeout(tick, left); return; }
    unflashTimer = 0;
    schedule();
  };
  unflashTimer = setTimeout(tick, 750);
}

function onMessage(type, data) {
  let v;
  try { v = JSON.parse(data); } catch (_) { return; }
  if (type === "" || type === "message") applyEvent(v);
  else if (type === "machine") {
    const m = upsert(normalize(v));
    m._flash = Date.now();
    S.inventory = true;
    S.resort = true;
    if (m.mac === S.selected) { drawFacts(); drawActions(); }
    schedule();
    unflashSoon();
  } else if (type === "resync") { S.resyncs++; resync(); }
}

// resync fetches the state again after events were missed. With the
// MAC-only list, the visible rows fetch their timelines again.
function resync() {
  if (!S.inventory) for (const m of S.machines.values()) m._filled = false;
  loadMachines();
  if (S.selected) select(S.selected, true);
}

// follow reads GET /api/events with fetch (an EventSource cannot send the
// Authorization header) and reconnects; after each (re)connection it
// fetches the state again, so nothing missed while away stays missing.
async function follow() {
  for (;;) {
    let ok = false;
    try {
      const r = await fetch("/api/events", { headers: headers({ Accept: "text/event-stream" }), cache: "no-store" });
      if (r.status === 401) askToken("The event stream needs an API token.");
      if (r.ok && r.body) {
        ok = true;
        setLive(true);
        resync();
        const rd = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await rd.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let type = "", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) type = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trimStart();
            }
            if (data) onMessage(type, data);
          }
        }
      }
    } catch (_) { /* reconnect below */ }
    setLive(false, ok ? "reconnecting…" : "no event stream");
    await new Promise((res) => setTimeout(res, ok ? 1000 : 5000));
  }
}

function setLive(on, text) {
  const p = $("#live");
  p.className = "pill" + (on ? "" : " off");
  p.textContent = on ? "live" : text;
}

// ---- detail: facts, actions, timeline -------------------------------------

async function select(key, refresh) {
  const changed = S.selected !== key;
  S.selected = key;
  if (changed) { S.timeline = []; drawDetail(); }
  mlist.draw();
  const m = S.machines.get(key);
  try {
    const tl = (await api("GET", "/api/machines/" + macKey(key) + "/timeline")) || [];
    if (S.selected !== key) return;
    S.timeline = tl;
    if (m && tl.length) learnFrom(m, tl);
  } catch (e) {
    if (S.selected !== key) return;
    if (e.status !== 404) toast("timeline: " + e.message, true);
    S.timeline = [];
  }
  if (S.inventory) {
    try {
      const one = await api("GET", "/api/machines/" + macKey(key));
      if (one && typeof one === "object") upsert(one);
    } catch (_) { /* the list's row is enough */ }
  }
  if (S.selected === key) drawDetail();
  if (!refresh) history.replaceState(null, "", "#" + key);
}

function drawDetail() {
  const d = $("#detail");
  const m = S.machines.get(S.selected);
  if (!m) { d.replaceChildren(el("div", "empty", "Select a machine to see its boot timeline.")); return; }
  const head = el("div", "dhead");
  const h2 = el("h2");
  h2.append(el("span", "", m.mac), el("span", "state-slot"));
  head.append(h2, el("dl", "facts"));
  const act = el("div", "actions");
  const prog = el("div", "progress");
  const tl = el("ol", "timeline");
  tl.id = "timeline";
  d.replaceChildren(head, act, prog, tl);
  drawFacts();
  drawActions();
  drawProgress();
  if (!S.timeline.length) tl.append(el("li", "muted", "No events kept for this machine yet."));
  for (const e of S.timeline) appendTimeline(e, false);
  tl.scrollTop = tl.scrollHeight;
}

function drawFacts() {
  const m = S.machines.get(S.selected);
  const dl = $("#detail .facts");
  if (!m || !dl) return;
  const slot = $("#detail .state-slot");
  slot.replaceChildren(m.state ? badge(m.state, STATE_CLASS[m.state]) : "");
  const rows = [["Address", m.address], ["Hostname", m.hostname], ["UUID", m.uuid], ["Arch", m.arch], ["Firmware", m.firmware],
    ["Profile", m.profile ? m.profile : m.effective_profile ? m.effective_profile + " (by selector/default)" : ""],
    ["Boot once", m.boot_once ? m.boot_once.profile + " → then " + m.boot_once.then : ""],
    ["Labels", m.labels ? Object.entries(m.labels).map(([k, v]) => k + "=" + v).join(", ") : ""],
    ["First seen", m.first_seen ? new Date(m.first_seen).toLocaleString() : ""],
    ["Last seen", m.last_seen ? new Date(m.last_seen).toLocaleString() + " (" + ago(m.last_seen) + ")" : ""]];
  dl.replaceChildren();
  for (const [k, v] of rows) if (v) dl.append(el("dt", "", k), el("dd", k === "UUID" || k === "Address" ? "mono" : "", v));
}

function drawProgress() {
  const p = $("#detail .progress");
  if (!p) return;
  // The stages of the latest boot: a boot ends with its kernel, initrd,
  // image or check-in; the next DHCP discover starts another.
  const tl = S.timeline, FINAL = new Set(["kernel", "initrd", "image", "checkin"]);
  let start = 0;
  for (let i = 0; i < tl.length; i++) {
    if (!FINAL.has(tl[i].stage)) continue;
    for (let j = i + 1; j < tl.length; j++) if (tl[j].stage === "dhcp-discover") { start = j; break; }
  }
  const seen = new Set(tl.slice(start).map((e) => e.stage));
  p.replaceChildren();
  for (const [name, ok, bad] of PROGRESS) {
    const s = el("span", "", name);
    if (ok.some((x) => seen.has(x))) s.className = "done";
    else if (bad.some((x) => seen.has(x))) s.className = "failed";
    p.append(s);
  }
}

function appendTimeline(e, live) {
  const tl = $("#timeline");
  if (!tl) return;
  const first = tl.firstElementChild;
  if (first && first.classList.contains("muted")) first.remove();
  const stick = tl.scrollTop + tl.clientHeight >= tl.scrollHeight - 30;
  const li = el("li", live ? "new" : "");
  li.dataset.stage = e.stage;
  const t = el("time", "", clock(e.time));
  t.title = e.time;
  const d = el("div", "d", e.detail || "");
  const extra = [bytes(e.bytes), dur(e.duration), e.ip && e.stage.startsWith("dhcp") ? e.ip : ""].filter(Boolean).join(" · ");
  if (extra) d.append(el("span", "x", extra));
  li.append(t, el("span", "", ""), d);
  li.children[1].append(badge(e.stage, STAGE_CLASS[e.stage]));
  tl.append(li);
  while (tl.children.length > 600) tl.firstElementChild.remove();
  if (stick || live) tl.scrollTop = tl.scrollHeight;
}

function actionButton(name, label, cls, run) {
  if (S.noAction.has(name)) return null;
  const b = el("button", cls, label);
  b.dataset.action = name;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const out = await run();
      if (out && typeof out === "object" && out.mac) upsert(out);
      toast(label + ": done");
      S.resort = true;
      schedule();
      drawFacts();
      drawActions();
    } catch (e) {
      if ((e.status === 404 || e.status === 405) && !e.json) {
        S.noAction.add(name); // this pxed has no such endpoint
        toast(label + ": not available on this pxed", true);
        drawActions();
      } else if (e.status === 403) toast(label + ": the token is read-only; an admin token is needed", true);
      else if (e.status !== 401) toast(label + ": " + e.message, true);
    } finally { b.disabled = false; }
  });
  return b;
}

function profileSelect(withNone, extra) {
  const s = el("select");
  if (withNone) s.append(new Option(withNone, ""));
  for (const x of extra || []) s.append(new Option(x, x));
  for (const p of S.profiles || []) s.append(new Option(p, p));
  return s;
}

function drawActions() {
  const a = $("#detail .actions");
  const m = S.machines.get(S.selected);
  if (!a || !m) return;
  a.replaceChildren();
  if (!S.inventory) {
    a.append(el("span", "hint", "Actions appear when this pxed keeps a machine inventory."));
    return;
  }
  const path = "/api/machines/" + macKey(m.mac);
  const parts = [];
  if (m.state !== "approved") parts.push(actionButton("approve", "Approve", "primary", () => api("POST", path + "/approve")));
  if (m.state !== "denied") parts.push(actionButton("deny", "Deny", "danger", () => api("POST", path + "/deny")));
  if (S.profiles && S.profiles.length) {
    const ps = profileSelect("(selector/default)");
    ps.value = m.profile || "";
    ps.title = "profile";
    const b = actionButton("assign", "Assign", "ghost", () => api("PATCH", path, { profile: ps.value || null }));
    if (b) parts.push(el("span", "sep"), ps, b);
    const once = profileSelect(null);
    once.title = "boot once";
    const then = profileSelect(null, ["default", "local"]);
    then.title = "then";
    const bo = actionButton("boot-once", "Boot once", "ghost", () => api("POST", path + "/boot-once", { profile: once.value, then: then.value }));
    if (bo) parts.push(el("span", "sep"), once, el("span", "hint", "then"), then, bo);
  }
  parts.push(el("span", "sep"));
  parts.push(actionButton("forget", "Forget", "ghost", async () => {
    if (!confirm("Forget " + m.mac + "? Its inventory row and timeline go.")) throw new APIError(0, "cancelled", true);
    await api("DELETE", path);
    S.machines.delete(m.mac);
    S.selected = null;
    drawDetail();
    return null;
  }));
  a.append(...parts.filter(Boolean));
}

async function loadProfiles() {
  try {
    const p = await api("GET", "/api/profiles");
    S.profiles = (p || []).map((x) => (typeof x === "string" ? x : x.name)).filter(Boolean).sort();
  } catch (_) { S.profiles = null; }
  drawActions();
}

// ---- rogue servers ---------------------------------------------------------

// rogueFromEvent: a rogue-server event makes the page fetch GET
// /api/rogues again (once for a burst); a pxed without it gets a warning
// built from the event.
let rogueTimer = 0;
function rogueFromEvent(e) {
  if (S.roguesAPI !== false) {
    clearTimeout(rogueTimer);
    rogueTimer = setTimeout(loadRogues, 300);
    return;
  }
  if (!e.ip) return; // the copy on the answered client's timeline
  const r = S.rogues.get(e.ip) || { server: e.ip, count: 0 };
  r.count++;
  r.last_seen = e.time;
  r.detail = e.detail;
  S.rogues.set(e.ip, r);
  drawRogues();
}

async function loadRogues() {
  try {
    const list = (await api("GET", "/api/rogues")) || [];
    S.roguesAPI = true;
    S.rogues.clear();
    for (const r of list) S.rogues.set(r.server + "%" + (r.interface || ""), r);
    drawRogues();
  } catch (e) {
    // 404: detection off, or a pxed without it: events are the only source.
    if (e.status === 404) S.roguesAPI = false;
  }
}

function drawRogues() {
  const box = $("#rogues");
  box.hidden = S.rogues.size === 0;
  box.replaceChildren();
  for (const r of S.rogues.values()) {
    const line = el("div");
    line.append("⚠ Another DHCP server answers PXE clients: ", el("b", "", r.server));
    if (r.mac) line.append(" (" + r.mac + (r.interface ? " on " + r.interface : "") + ")");
    const o = r.offered || {};
    const what = [o.yiaddr && "address " + o.yiaddr, o.siaddr && "next-server " + o.siaddr, o.file && "file " + o.file,
      o.vendor_class && o.vendor_class].filter(Boolean).join(", ") || r.detail;
    if (what) line.append(" offered " + what);
    line.append(" — seen " + (r.count || 1) + "×, last " + ago(r.last_seen));
    box.append(line);
  }
}

// ---- metrics ---------------------------------------------------------------

const METRICS = [
  ["Machines", ["pxed_events_machines"], "gauge"],
  ["DHCP replies", ["pxed_dhcp_replies_total", "pxed_dhcp6_replies_total"]],
  ["DHCP ignored", ["pxed_dhcp_ignored_total", "pxed_dhcp6_ignored_total"]],
  ["TFTP done", ["pxed_tftp_transfers_ok_total"]],
  ["TFTP failed", ["pxed_tftp_transfers_failed_total"], "bad"],
  ["TFTP active", ["pxed_tftp_transfers_active"], "gauge"],
  ["TFTP bytes", ["pxed_tftp_bytes_total"], "bytes"],
  ["HTTP errors", ["pxed_http_errors_total"], "bad"],
  ["Pool exhausted", ["pxed_dhcp_pool_exhausted_total", "pxed_dhcp6_pool_exhausted_total"], "bad"],
  ["Rogue replies", ["pxed_rogue_dhcp_replies_total"], "bad"],
];
let lastMetrics = null;

async function loadMetrics() {
  let text;
  try {
    const r = await fetch("/metrics", { headers: headers({ Accept: "text/plain" }), cache: "no-store" });
    if (!r.ok) return;
    text = await r.text();
  } catch (_) { return; }
  const vals = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const sp = line.lastIndexOf(" ");
    const name = line.slice(0, sp).replace(/\{.*\}$/, "");
    vals.set(name, (vals.get(name) || 0) + parseFloat(line.slice(sp + 1)));
  }
  const now = Date.now();
  const box = $("#metrics");
  box.replaceChildren();
  for (const [label, names, kind] of METRICS) {
    const present = names.filter((n) => vals.has(n));
    if (!present.length) continue;
    const v = present.reduce((s, n) => s + vals.get(n), 0);
    const tile = el("div", "metric" + (kind === "bad" && v > 0 ? " bad" : ""));
    tile.dataset.metric = names[0];
    const val = el("div", "v", kind === "bytes" ? bytes(v) || "0" : num(v));
    if (lastMetrics && kind !== "gauge") {
      const prev = present.reduce((s, n) => s + (lastMetrics.vals.get(n) || 0), 0);
      const rate = (v - prev) / ((now - lastMetrics.at) / 1000);
      if (rate > 0) val.append(el("span", "r", (kind === "bytes" ? bytes(rate) : rate.toFixed(rate < 10 ? 1 : 0)) + "/s"));
    }
    tile.append(el("div", "k", label), val);
    box.append(tile);
  }
  lastMetrics = { vals, at: now };
}

// ---- leases ----------------------------------------------------------------

let leaseTimer = 0;
function loadLeasesSoon() { clearTimeout(leaseTimer); leaseTimer = setTimeout(loadLeases, 500); }

async function loadLeases() {
  const note = $("#lnote");
  try {
    S.leases = (await api("GET", "/api/leases")) || [];
    note.hidden = true;
  } catch (e) {
    S.leases = [];
    note.textContent = e.message;
    note.hidden = false;
  }
  drawLeases();
}

function drawLeases() {
  const q = $("#lq").value.trim().toLowerCase();
  const v = S.leases.filter((l) => !q || [l.address, l.mac, l.hostname, l.state, l.client].join(" ").toLowerCase().includes(q));
  v.sort((a, b) => (a.address < b.address ? -1 : 1));
  $("#lcount").textContent = v.length + " leases";
  llist.set(v);
}

function renderLease(r, l) {
  if (!r.cells) {
    r.cells = [];
    for (let i = 0; i < 7; i++) r.appendChild((r.cells[i] = el("span")));
    r.cells[1].className = r.cells[3].className = r.cells[5].className = "mono";
  }
  const c = r.cells;
  c[0].replaceChildren(badge(l.address.includes(":") ? "IPv6" : "IPv4", l.address.includes(":") ? "info" : ""));
  c[1].textContent = l.address;
  c[2].replaceChildren(badge(l.state, { bound: "ok", offered: "info", expired: "", released: "", declined: "bad" }[l.state]));
  c[3].textContent = l.mac || "—";
  c[4].textContent = l.hostname || "—";
  c[5].textContent = l.client;
  c[6].textContent = l.expires ? new Date(l.expires).toLocaleString() : "—";
}

// ---- token -----------------------------------------------------------------

function askToken(why) {
  const d = $("#token-dlg");
  if (d.open) return;
  if (why) $("#token-dlg p").firstChild.textContent = why + " ";
  $("#token-in").value = S.token;
  d.showModal();
}

// ---- wiring ----------------------------------------------------------------

let mlist, llist;

function init() {
  mlist = new VList($("#mlist"), "mgrid", renderMachine, (m) => select(m.mac));
  llist = new VList($("#llist"), "lgrid", renderLease, (l) => {
    if (l.mac && S.machines.has(l.mac)) { showTab("machines"); select(l.mac); }
  });
  $("#q").addEventListener("input", (ev) => { S.query = ev.target.value.trim().toLowerCase(); S.resort = true; schedule(); });
  $("#state-filter").addEventListener("change", (ev) => { S.stateFilter = ev.target.value; S.resort = true; schedule(); });
  $("#lq").addEventListener("input", drawLeases);
  $("#mhead").addEventListener("click", (ev) => {
    const k = ev.target.dataset.sort;
    if (!k) return;
    if (S.sortKey === k) S.sortDir = -S.sortDir;
    else { S.sortKey = k; S.sortDir = k === "last_seen" ? -1 : 1; }
    for (const s of $("#mhead").children) s.className = s.dataset.sort === k ? "sorted" + (S.sortDir < 0 ? " desc" : "") : "";
    S.resort = true;
    schedule();
  });
  $("#mlist").addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    ev.preventDefault();
    const i = S.view.findIndex((m) => m.mac === S.selected) + (ev.key === "ArrowDown" ? 1 : -1);
    if (i >= 0 && i < S.view.length) {
      select(S.view[i].mac);
      const box = $("#mlist"), y = i * mlist.rowH;
      if (y < box.scrollTop || y > box.scrollTop + box.clientHeight - mlist.rowH) box.scrollTop = y - box.clientHeight / 2;
    }
  });
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#token-btn").addEventListener("click", () => askToken());
  $("#pending").addEventListener("click", () => {
    showTab("machines");
    $("#state-filter").value = S.stateFilter = "pending";
    S.resort = true;
    schedule();
  });
  document.addEventListener("keydown", (ev) => { // "/" searches, as on many sites
    if (ev.key === "/" && !/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName) && !$("#token-dlg").open) {
      ev.preventDefault();
      $(document.querySelector("#tab-leases.on") ? "#lq" : "#q").focus();
    }
  });
  $("#token-dlg").addEventListener("close", () => {
    const v = $("#token-dlg").returnValue;
    if (v === "save") S.token = $("#token-in").value.trim();
    if (v === "clear") S.token = "";
    if (v === "save" || v === "clear") {
      if (S.token) localStorage.setItem("pxed.token", S.token); else localStorage.removeItem("pxed.token");
      $("#token-btn").textContent = S.token ? "Token ✓" : "Token";
      resync();
      loadProfiles();
    }
  });
  $("#token-btn").textContent = S.token ? "Token ✓" : "Token";

  follow();
  loadProfiles();
  loadRogues();
  loadMetrics();
  setInterval(loadMetrics, 5000);
  setInterval(loadRogues, 30000);
  setInterval(() => { if (!document.hidden) mlist.draw(); }, 10000); // "… ago"
  if (location.hash.length > 1) select(decodeURIComponent(location.hash.slice(1)));
}

function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("on", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("on", t.id === "tab-" + name);
  if (name === "leases") loadLeases();
  else mlist.draw();
}

document.addEventListener("DOMContentLoaded", init);
