// Sower web UI: talks to the daemon through the Transmission RPC (list,
// add, start, stop, remove) and Sower's API (torrent page), polling once
// a second. The session token comes from the RPC's 409 handshake and is
// sent with every state-changing request (CSRF protection).
"use strict";
let session = "";
let selected = null;
const $ = (id) => document.getElementById(id);

async function rpc(method, args) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await fetch("/transmission/rpc", {
      method: "POST",
      headers: { "X-Transmission-Session-Id": session, "Content-Type": "application/json" },
      body: JSON.stringify({ method, arguments: args || {} }),
    });
    if (r.status === 409) { session = r.headers.get("X-Transmission-Session-Id"); continue; }
    if (!r.ok) throw new Error("HTTP " + r.status);
    const j = await r.json();
    if (j.result !== "success") throw new Error(j.result);
    return j.arguments;
  }
  throw new Error("session handshake failed");
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: { "X-Transmission-Session-Id": session, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const r = await fetch("/api/v1/" + path, opts);
  if (r.status === 409) { session = r.headers.get("X-Transmission-Session-Id"); return api(path, body); }
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}

function size(n) {
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function eta(s) {
  if (s < 0) return "∞";
  if (s === 0) return "";
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
  return h ? h + "h" + m + "m" : m + "m" + (s % 60) + "s";
}
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function say(text) { $("msg").textContent = text; }

async function refresh() {
  let list;
  try { list = await api("torrents"); } catch (e) { say(e.message); return; }
  const body = $("list").tBodies[0];
  body.replaceChildren();
  let down = 0, up = 0;
  for (const t of list) {
    down += t.download_rate; up += t.upload_rate;
    const tr = el("tr");
    tr.dataset.hash = t.info_hash;
    if (t.info_hash === selected) tr.className = "sel";
    tr.append(el("td", t.name));
    const p = el("td"), bar = el("div", undefined, "bar"), fill = el("div");
    fill.style.width = (t.progress * 100).toFixed(1) + "%";
    bar.append(fill); p.append(bar, " " + (t.progress * 100).toFixed(1) + "%");
    tr.append(p, el("td", t.state + (t.error ? ": " + t.error : "")),
      el("td", size(t.download_rate) + "/s", "num"), el("td", size(t.upload_rate) + "/s", "num"),
      el("td", t.ratio.toFixed(2), "num"), el("td", eta(t.eta), "num"));
    const act = el("td");
    const toggle = el("button", t.paused ? "Start" : "Stop");
    toggle.onclick = (ev) => { ev.stopPropagation(); rpc(t.paused ? "torrent-start" : "torrent-stop", { ids: [t.id] }).then(refresh, (e) => say(e.message)); };
    const rm = el("button", "Remove");
    rm.onclick = (ev) => {
      ev.stopPropagation();
      const del = confirm("Also delete the downloaded data of " + t.name + "?");
      rpc("torrent-remove", { ids: [t.id], "delete-local-data": del }).then(refresh, (e) => say(e.message));
      if (selected === t.info_hash) { selected = null; $("detail").hidden = true; }
    };
    act.append(toggle, " ", rm);
    tr.append(act);
    tr.onclick = () => { selected = t.info_hash; refresh(); };
    body.append(tr);
  }
  $("totals").textContent = list.length + " torrents · ↓ " + size(down) + "/s · ↑ " + size(up) + "/s";
  if (selected) showDetail(selected);
}

function drawPieces(d) {
  const c = $("pieces"), ctx = c.getContext("2d");
  c.width = c.clientWidth || 800;
  const n = d.piece_count, w = c.width, h = c.height;
  ctx.fillStyle = "#c9c9c9"; ctx.fillRect(0, 0, w, h);
  if (!n) return;
  const have = d.have ? Uint8Array.from(atob(d.have), (ch) => ch.charCodeAt(0)) : new Uint8Array(0);
  // One column per pixel: its colour is the share of its pieces we have.
  for (let x = 0; x < w; x++) {
    const a = Math.floor(x * n / w), b = Math.max(a + 1, Math.floor((x + 1) * n / w));
    let got = 0;
    for (let i = a; i < b; i++) if (have[i >> 3] & (0x80 >> (i & 7))) got++;
    if (got) {
      ctx.fillStyle = "rgba(60,138,51," + (got / (b - a)).toFixed(2) + ")";
      ctx.fillRect(x, 0, 1, h);
    }
  }
}

async function showDetail(hash) {
  let d;
  try { d = await api("torrents/" + hash); } catch (e) { say(e.message); return; }
  $("detail").hidden = false;
  $("d-name").textContent = d.name;
  $("d-summary").textContent = d.state + " · " + size(d.completed) + " of " + size(d.wanted) +
    " · availability " + d.availability.toFixed(2) + " · " + d.piece_count + " pieces of " + size(d.piece_size) +
    (d.error ? " · " + d.error : "");
  drawPieces(d);
  const ss = $("d-superseed");
  ss.checked = !!d.super_seed;
  ss.onchange = () => api("torrents/" + hash + "/super-seed", { enabled: ss.checked }).then(refresh, (e) => say(e.message));
  const fb = $("files").tBodies[0];
  fb.replaceChildren();
  (d.files || []).forEach((f, i) => {
    const tr = el("tr");
    const sel = el("select");
    [["0", "skip"], ["1", "normal"], ["2", "high"]].forEach(([v, label]) => {
      const o = el("option", label); o.value = v; if (+v === f.priority) o.selected = true; sel.append(o);
    });
    sel.onchange = () => setPriority(d, i, +sel.value);
    const pc = el("td"); pc.append(sel);
    tr.append(el("td", f.path), el("td", size(f.length), "num"),
      el("td", f.length ? (100 * f.completed / f.length).toFixed(1) + "%" : "100%", "num"), pc);
    fb.append(tr);
  });
  const pb = $("peers").tBodies[0];
  pb.replaceChildren();
  for (const p of d.peerlist || []) {
    const tr = el("tr");
    tr.append(el("td", p.Addr), el("td", p.Client), el("td", p.Flags), el("td", (p.Progress * 100).toFixed(0) + "%", "num"),
      el("td", size(p.DownloadRate) + "/s", "num"), el("td", size(p.UploadRate) + "/s", "num"));
    pb.append(tr);
  }
  const tb = $("trackers").tBodies[0];
  tb.replaceChildren();
  const count = (n) => n < 0 ? "?" : String(n);
  const when = (iso) => { const t = Date.parse(iso); return t > 0 ? new Date(t).toLocaleTimeString() : ""; };
  for (const ts of d.tracker_stats || []) {
    const tr = el("tr");
    tr.append(el("td", String(ts.tier)), el("td", ts.url), el("td", count(ts.seeders), "num"), el("td", count(ts.leechers), "num"),
      el("td", count(ts.downloaded), "num"), el("td", ts.last_result ? when(ts.last_announce) + " " + ts.last_result : "not yet"),
      el("td", when(d.next_announce)));
    tb.append(tr);
  }
}

// setPriority sends the whole per-file list; the API's indices count only
// real files here, as the page lists them, and padding keeps "normal".
async function setPriority(d, i, p) {
  const prio = d.files.map((f) => f.priority);
  prio[i] = p;
  try { await rpc("torrent-set", { ids: [d.id], [p === 0 ? "files-unwanted" : "files-wanted"]: [i], ...(p === 2 ? { "priority-high": [i] } : p === 1 ? { "priority-normal": [i] } : {}) }); }
  catch (e) { say(e.message); }
  refresh();
}

$("add-magnet").onsubmit = async (ev) => {
  ev.preventDefault();
  const url = $("magnet").value.trim();
  if (!url) return;
  try { await rpc("torrent-add", { filename: url }); $("magnet").value = ""; say(""); } catch (e) { say(e.message); }
  refresh();
};
$("file").onchange = async () => {
  const f = $("file").files[0];
  if (!f) return;
  if (f.size > 64 << 20) { say(f.name + " is larger than the 64 MiB .torrent limit"); return; }
  const buf = new Uint8Array(await f.arrayBuffer());
  let bin = "";
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
  try { await rpc("torrent-add", { metainfo: btoa(bin) }); say(""); } catch (e) { say(f.name + ": " + e.message); }
  $("file").value = "";
  refresh();
};

refresh();
setInterval(refresh, 1000);
