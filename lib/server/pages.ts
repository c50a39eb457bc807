/**
 * The dashboard's HTML: server-rendered template strings, one small inline
 * stylesheet and one inline script (EventSource). No build step; the call
 * page's player is wavesurfer.js, served from node_modules as an ES module.
 *
 * @module
 */
import type { CallPage, CallQuery, Segment, StoredCall } from "../store/db.ts";
import {
  type CallAudio,
  clock,
  describeQuality,
  EXPORT_FORMATS,
  formatDuration,
} from "../store/export.ts";
import { speakerName, TRACK_LABELS } from "../transcribe/engine.ts";
import { qualityWarnings } from "../recording/track_quality.ts";

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? "").replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

const e = escapeHtml;

const STYLE = `
:root { color-scheme: light; --fg:#1d2330; --muted:#6b7280; --line:#e5e7eb; --bg:#f7f8fa;
  --in:#e8f1ff; --in-b:#2563eb; --out:#ecfdf3; --out-b:#16a34a; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; align-items:center; gap:1rem; padding:.7rem 1.2rem; background:#111827; color:#fff; }
header.top a { color:#fff; text-decoration:none; font-weight:600; }
header.top form { margin-left:auto; }
main { max-width:1100px; margin:0 auto; padding:1rem 1.2rem 3rem; }
h1 { font-size:1.25rem; margin:.2rem 0 .6rem; } h2 { font-size:1.05rem; margin:1.4rem 0 .5rem; color:#374151; }
.muted { color:var(--muted); } .error { background:#fef2f2; color:#991b1b; border:1px solid #fecaca; padding:.5rem .8rem; border-radius:6px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.8rem 1rem; margin-bottom:.8rem; }
.card-head { display:flex; gap:.8rem; align-items:baseline; flex-wrap:wrap; margin-bottom:.5rem; }
.badge { font-size:.75rem; padding:.05rem .5rem; border-radius:999px; background:#e5e7eb; }
.badge.live { background:#dc2626; color:#fff; } .badge.completed { background:#d1fae5; } .badge.interrupted { background:#fde68a; }
.lanes { display:grid; grid-template-columns:1fr 1fr; gap:.8rem; }
.lane { min-height:3rem; }
.card .lane { max-height:16rem; overflow-y:auto; }
.lane h3 { margin:0 0 .3rem; font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.msg { border-radius:8px; padding:.35rem .6rem; margin:.3rem 0; border-left:3px solid; }
.lane[data-track=inbound] .msg { background:var(--in); border-color:var(--in-b); }
.lane[data-track=outbound] .msg { background:var(--out); border-color:var(--out-b); }
.msg time { display:block; font-size:.72rem; color:var(--muted); font-variant-numeric:tabular-nums; }
.msg.partial { opacity:.55; font-style:italic; background:#f3f4f6 !important; border-style:dashed; }
table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:8px; }
th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); font-size:.9rem; }
th { background:#f3f4f6; font-weight:600; } td.num { font-variant-numeric:tabular-nums; }
form.search { display:flex; gap:.5rem; flex-wrap:wrap; margin:.4rem 0 .8rem; }
input, button, .button { font:inherit; padding:.35rem .6rem; border:1px solid #d1d5db; border-radius:6px; background:#fff; color:inherit; }
button, .button { cursor:pointer; text-decoration:none; display:inline-block; }
.button.primary, button.primary { background:#111827; color:#fff; border-color:#111827; }
.downloads { display:flex; gap:.4rem; flex-wrap:wrap; }
.pager { display:flex; gap:.6rem; margin-top:.6rem; align-items:center; }
.msg.final { cursor:pointer; } .msg.current { outline:2px solid #f59e0b; box-shadow:0 0 0 3px #fde68a; }
.player-bar { display:flex; gap:.8rem; align-items:center; margin-bottom:.5rem; }
#waveform { border:1px solid var(--line); border-radius:6px; }
.warning { background:#fffbeb; color:#92400e; border:1px solid #fde68a; padding:.45rem .8rem; border-radius:6px; margin:.4rem 0; }
.levels { display:flex; gap:1.5rem; align-items:center; flex-wrap:wrap; }
.levels meter { width:10rem; vertical-align:middle; }
@media (max-width:700px) { .lanes { grid-template-columns:1fr; } }
`;

/** Client side: applies live events to lanes; the same code serves both pages. */
const SCRIPT = `
const clock = (ms) => { const t = Math.max(0, Math.round(ms)); const h = Math.floor(t/3600000), m = Math.floor(t/60000)%60, s = Math.floor(t/1000)%60;
  const p = (n, w=2) => String(n).padStart(w, "0"); return (h ? h + ":" + p(m) : p(m)) + ":" + p(s) + "." + p(t%1000, 3); };
const duration = (ms) => { const t = Math.round(ms/1000), h = Math.floor(t/3600), m = Math.floor(t/60)%60, s = t%60;
  return h ? h + ":" + String(m).padStart(2,"0") + ":" + String(s).padStart(2,"0") : m + ":" + String(s).padStart(2,"0"); };
function localTimes(root) { for (const el of root.querySelectorAll("time[datetime]")) { el.textContent = new Date(el.dateTime).toLocaleString(); } }
function lane(root, track) { return root.querySelector('.lane[data-track="' + track + '"]'); }
function stick(el) { const near = el.scrollHeight - el.scrollTop - el.clientHeight < 80; return () => { if (near) el.scrollTop = el.scrollHeight; }; }
function showPartial(root, d) {
  const l = lane(root, d.track); if (!l) return; const keep = stick(l);
  let p = l.querySelector(".msg.partial");
  if (!p) { p = document.createElement("div"); p.className = "msg partial"; l.append(p); }
  p.textContent = d.text; keep();
}
function showFinal(root, d) {
  const l = lane(root, d.track); if (!l) return; const keep = stick(l);
  l.querySelector(".msg.partial")?.remove();
  if (d.id !== undefined && l.querySelector('[data-seg="' + d.id + '"]')) return;
  const m = document.createElement("div"); m.className = "msg final"; m.dataset.seg = d.id; m.dataset.start = d.startMs; m.dataset.end = d.endMs;
  const t = document.createElement("time"); t.textContent = clock(d.startMs) + " – " + clock(d.endMs);
  m.append(t, document.createTextNode(d.text));
  const later = [...l.querySelectorAll(".msg.final")].find((x) => Number(x.dataset.start) > d.startMs);
  l.insertBefore(m, later ?? null); keep();
}
function tick() {
  for (const el of document.querySelectorAll("[data-live-since]")) el.textContent = duration(Date.now() - Date.parse(el.dataset.liveSince));
}
setInterval(tick, 1000); tick(); localTimes(document);
`;

function layout(title: string, body: string, script = "", loggedIn = false): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)}</title><style>${STYLE}</style></head>
<body><header class="top"><a href="/">callscribe</a><span class="muted">transcripts</span>${
    loggedIn ? `<form method="post" action="/logout"><button>Log out</button></form>` : ""
  }</header>
<main>${body}</main>${script ? `<script>${SCRIPT}\n${script}</script>` : ""}</body></html>`;
}

function lanes(segments: Segment[]): string {
  const lane = (track: "inbound" | "outbound") =>
    `<div class="lane" data-track="${track}"><h3>${TRACK_LABELS[track]}${
      track === "inbound" ? " (phone)" : " (laptop)"
    }</h3>${
      segments.filter((s) => s.track === track).map((s) =>
        `<div class="msg final" data-seg="${s.id}" data-start="${s.startMs}" data-end="${s.endMs}"><time>${
          clock(s.startMs)
        } – ${clock(s.endMs)}</time>${
          // Who spoke within the track and the language, when the engine gave them: "(B, es) ".
          s.speaker || s.language
            ? e(speakerName(s).slice(TRACK_LABELS[track].length + 1)) + " "
            : ""}${e(s.text)}</div>`
      ).join("")
    }</div>`;
  return `<div class="lanes">${lane("inbound")}${lane("outbound")}</div>`;
}

const parties = (call: { from: string | null; to: string | null }) =>
  `${e(call.from ?? "unknown")} → ${e(call.to ?? "unknown")}`;

function activeCard(call: StoredCall, segments: Segment[]): string {
  return `<section class="card" data-call="${e(call.callSid)}"><div class="card-head">
<span class="badge live">live</span><strong>${parties(call)}</strong><span class="muted">${
    e(call.direction)
  }</span><span class="num" data-live-since="${
    new Date(call.startedAt).toISOString()
  }"></span><a href="/calls/${encodeURIComponent(call.callSid)}">open call</a></div>${
    lanes(segments)
  }</section>`;
}

function historyRow(call: StoredCall): string {
  return `<tr data-call="${e(call.callSid)}"><td><time datetime="${
    new Date(call.startedAt).toISOString()
  }">${new Date(call.startedAt).toISOString()}</time></td><td>${e(call.from ?? "")}</td><td>${
    e(call.to ?? "")
  }</td><td>${e(call.direction)}</td><td class="num">${
    call.durationMs === null ? "" : formatDuration(call.durationMs)
  }</td><td><span class="badge ${e(call.status)}">${
    e(call.status)
  }</span></td><td class="num">${call.segmentCount}</td><td><a href="/calls/${
    encodeURIComponent(call.callSid)
  }">view</a></td></tr>`;
}

/** What the dashboard shows. */
export interface DashboardView {
  active: StoredCall[];
  activeSegments: Map<string, Segment[]>;
  history: CallPage;
  query: CallQuery;
  params: URLSearchParams;
  lastEventId: string;
  error?: string;
  loggedIn?: boolean;
  /** Webhook deliveries that failed and that wait to be sent, when webhooks are on. */
  webhooks?: { failed: number; pending: number };
}

/** `GET /`: live calls on top, history with search below. */
export function dashboardPage(view: DashboardView): string {
  const p = (name: string) => e(view.params.get(name) ?? "");
  const filtered = ["q", "number", "since", "until"].some((k) => view.params.get(k));
  const limit = view.query.limit ?? 25;
  const offset = view.query.offset ?? 0;
  const pageLink = (to: number) => {
    const params = new URLSearchParams(view.params);
    params.set("offset", String(to));
    return `?${e(params.toString())}`;
  };
  const body = `
<h1>Calls</h1>
${view.error ? `<p class="error">${e(view.error)}</p>` : ""}${
    view.webhooks ? webhookSummary(view.webhooks) : ""
  }
<h2>Active calls</h2>
<div id="active">${
    view.active.map((c) => activeCard(c, view.activeSegments.get(c.callSid) ?? [])).join("")
  }</div>
<p id="no-active" class="muted"${view.active.length ? " hidden" : ""}>No call in progress.</p>
<h2>History</h2>
<form class="search" method="get" action="/">
<input type="search" name="q" placeholder="Words spoken…" value="${
    p("q")
  }" aria-label="Search transcripts">
<input name="number" placeholder="Phone number" value="${p("number")}" aria-label="Phone number">
<label class="muted">from <input type="date" name="since" value="${p("since")}"></label>
<label class="muted">to <input type="date" name="until" value="${p("until")}"></label>
<button class="primary">Search</button>${filtered ? ` <a class="button" href="/">Clear</a>` : ""}
</form>
<table><thead><tr><th>Started</th><th>From</th><th>To</th><th>Direction</th><th>Duration</th><th>Status</th><th>Lines</th><th></th></tr></thead>
<tbody id="history" data-filtered="${filtered ? "1" : ""}">${
    view.history.calls.map(historyRow).join("")
  }</tbody></table>
${
    view.history.calls.length === 0
      ? `<p class="muted">${filtered ? "No call matches." : "No calls yet."}</p>`
      : ""
  }
<div class="pager">${
    offset > 0 ? `<a class="button" href="${pageLink(Math.max(0, offset - limit))}">Newer</a>` : ""
  }<span class="muted">${view.history.total} call(s)</span>${
    offset + limit < view.history.total
      ? `<a class="button" href="${pageLink(offset + limit)}">Older</a>`
      : ""
  }</div>`;
  const script = `
const active = document.getElementById("active");
const card = (sid) => active.querySelector('[data-call="' + CSS.escape(sid) + '"]');
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
function newCard(d) {
  if (card(d.callSid)) return card(d.callSid);
  const s = document.createElement("section"); s.className = "card"; s.dataset.call = d.callSid;
  s.innerHTML = '<div class="card-head"><span class="badge live">live</span><strong>' + esc(d.from ?? "unknown") + " → " + esc(d.to ?? "unknown") +
    '</strong><span class="muted">' + esc(d.direction) + '</span><span class="num" data-live-since="' + esc(d.startedAt) + '"></span><a href="/calls/' +
    encodeURIComponent(d.callSid) + '">open call</a></div><div class="lanes"><div class="lane" data-track="inbound"><h3>Inbound (phone)</h3></div>' +
    '<div class="lane" data-track="outbound"><h3>Outbound (laptop)</h3></div></div>';
  active.prepend(s); document.getElementById("no-active").hidden = true; return s;
}
async function ended(d) {
  card(d.callSid)?.remove(); document.getElementById("no-active").hidden = active.children.length > 0;
  const history = document.getElementById("history");
  if (history.dataset.filtered || history.querySelector('[data-call="' + CSS.escape(d.callSid) + '"]')) return;
  const r = await fetch("/api/calls/" + encodeURIComponent(d.callSid)); if (!r.ok) return; const c = await r.json();
  const tr = document.createElement("tr"); tr.dataset.call = c.callSid;
  tr.innerHTML = '<td><time datetime="' + esc(c.startedAt) + '"></time></td><td>' + esc(c.from) + "</td><td>" + esc(c.to) + "</td><td>" + esc(c.direction) +
    '</td><td class="num">' + (c.durationMs == null ? "" : duration(c.durationMs)) + '</td><td><span class="badge ' + esc(c.status) + '">' + esc(c.status) +
    '</span></td><td class="num">' + c.segmentCount + '</td><td><a href="/calls/' + encodeURIComponent(c.callSid) + '">view</a></td>';
  history.prepend(tr); localTimes(tr);
}
const source = new EventSource("/api/events?since=${encodeURIComponent(view.lastEventId)}");
source.addEventListener("call-started", (m) => newCard(JSON.parse(m.data)));
source.addEventListener("partial", (m) => { const d = JSON.parse(m.data); const c = card(d.callSid); if (c) showPartial(c, d); });
source.addEventListener("final", (m) => { const d = JSON.parse(m.data); const c = card(d.callSid); if (c) showFinal(c, d); });
source.addEventListener("call-ended", (m) => ended(JSON.parse(m.data)));
`;
  return layout("callscribe — calls", body, script, view.loggedIn);
}

/** Webhook counts, with a link to the failed ones and a button that retries them. */
function webhookSummary(counts: { failed: number; pending: number }): string {
  return `<form class="search" id="webhooks" method="post" action="/webhooks/retry"><strong>Webhooks</strong>
<span${
    counts.failed ? ' class="error"' : ""
  }><span class="num" data-webhooks-failed>${counts.failed}</span> failed</span>
<span class="muted"><span class="num" data-webhooks-pending>${counts.pending}</span> waiting</span>${
    counts.failed
      ? ` <a href="/api/webhooks/deliveries?status=failed">list</a> <button>Retry failed</button>`
      : ""
  }</form>`;
}

/** What a call page shows. */
export interface CallView {
  call: StoredCall;
  active: boolean;
  segments: Segment[];
  lastEventId: string;
  /** The recording and audio quality (none while the call is live). */
  audio?: CallAudio;
}

/** The player: two waveform lanes (left inbound, right outbound), segments as regions. */
function playerCard(url: string, durationMs: number): string {
  return `<div id="player" class="card" data-src="${e(url)}"><div class="player-bar">
<button id="play" class="primary" disabled>Play</button>
<span class="num" style="white-space:nowrap"><span id="player-time">00:00.000</span> / ${
    e(clock(durationMs))
  }</span>
<span class="muted">space plays and pauses · click a line to hear it · top lane ${TRACK_LABELS.inbound}, bottom ${TRACK_LABELS.outbound}</span>
<a class="button" href="${e(url)}" download>Download WAV</a></div>
<div id="waveform" aria-label="Recording waveform"></div></div>`;
}

/** Each track's quality figures and the warnings for tracks that look broken. */
function qualityCard(audio: CallAudio): string {
  if (!audio.quality) return "";
  const quality = audio.quality;
  const rows = (["inbound", "outbound"] as const).map((track) =>
    `<tr data-track="${track}"><td>${TRACK_LABELS[track]}</td><td class="num">${
      e(describeQuality(quality[track]))
    }</td></tr>`
  ).join("");
  const warnings = qualityWarnings(quality).map((w) => `<p class="warning">⚠ ${e(w)}</p>`)
    .join("");
  return `<div id="quality" class="card"><h2 style="margin-top:0">Audio quality</h2>${warnings}
<table><tbody>${rows}</tbody></table></div>`;
}

/** The player's script: wavesurfer.js with regions; the current line follows playback. */
const PLAYER_SCRIPT = `
import WaveSurfer from "/assets/wavesurfer.esm.js";
import RegionsPlugin from "/assets/regions.esm.js";
const box = document.getElementById("player");
const regions = RegionsPlugin.create();
const player = WaveSurfer.create({
  container: "#waveform", url: box.dataset.src, height: 64, barWidth: 2, barGap: 1, cursorColor: "#111827", normalize: true,
  splitChannels: [{ waveColor: "#93b4f5", progressColor: "#2563eb" }, { waveColor: "#86d9a8", progressColor: "#16a34a" }],
  plugins: [regions],
});
window.callscribePlayer = player;
const lines = [...document.querySelectorAll("#conversation .msg.final")].map((el) => ({
  el, start: Number(el.dataset.start) / 1000, end: Number(el.dataset.end) / 1000,
  channel: el.closest(".lane").dataset.track === "inbound" ? 0 : 1,
}));
const play = document.getElementById("play");
const time = document.getElementById("player-time");
player.on("decode", () => {
  for (const l of lines) {
    regions.addRegion({ start: l.start, end: Math.max(l.end, l.start + 0.05), channelIdx: l.channel, drag: false, resize: false,
      color: l.channel === 0 ? "rgba(37,99,235,.16)" : "rgba(22,163,74,.16)" });
  }
});
player.on("ready", () => { play.disabled = false; box.dataset.ready = "1"; });
player.on("play", () => { play.textContent = "Pause"; });
player.on("pause", () => { play.textContent = "Play"; });
player.on("timeupdate", (t) => {
  time.textContent = clock(t * 1000);
  for (const l of lines) {
    const now = t >= l.start && t < l.end;
    if (now === l.el.classList.contains("current")) continue;
    l.el.classList.toggle("current", now);
    if (now && player.isPlaying()) l.el.scrollIntoView({ block: "nearest" });
  }
});
play.addEventListener("click", () => player.playPause());
for (const l of lines) l.el.addEventListener("click", () => { player.setTime(l.start); });
document.addEventListener("keydown", (event) => {
  if (event.code !== "Space" || event.target.closest?.("input, textarea, select, button, a")) return;
  event.preventDefault(); player.playPause();
});
`;

/** `GET /calls/:sid`: the conversation, live while the call lasts, and its downloads. */
export function callPage(view: CallView): string {
  const { call } = view;
  const sid = encodeURIComponent(call.callSid);
  const status = view.active ? "live" : call.status;
  const recording = view.active ? null : view.audio?.recording;
  const levels = view.active
    ? `<div id="levels" class="card levels"><strong>Level now</strong>${
      (["inbound", "outbound"] as const).map((track) =>
        `<label data-track="${track}">${
          TRACK_LABELS[track]
        } <meter min="-96" max="0" low="-50" value="-96"></meter> <span class="num">–</span></label>`
      ).join("")
    }</div>`
    : "";
  const body = `
<p><a href="/">← All calls</a></p>
<div class="card"><div class="card-head"><h1>${parties(call)}</h1>
<span id="status" class="badge ${e(status)}">${e(status)}</span></div>
<p class="muted">${e(call.direction)} · started <time datetime="${
    new Date(call.startedAt).toISOString()
  }">${new Date(call.startedAt).toISOString()}</time> · duration <span id="duration" class="num"${
    view.active ? ` data-live-since="${new Date(call.startedAt).toISOString()}"` : ""
  }>${call.durationMs === null ? "" : formatDuration(call.durationMs)}</span> · engine ${
    e(call.engine ?? "unknown")
  } · <code>${e(call.callSid)}</code></p>
<div class="downloads">${
    EXPORT_FORMATS.map((f) =>
      `<a class="button" data-format="${f}" href="/api/calls/${sid}/transcript.${f}" download>Download ${f.toUpperCase()}</a>`
    ).join("")
  }</div></div>
${levels}${recording ? playerCard(recording.url, recording.durationMs) : ""}${
    view.active || !view.audio ? "" : qualityCard(view.audio)
  }
<div id="conversation" class="card">${lanes(view.segments)}</div>`;
  const script = view.active
    ? `
const conversation = document.getElementById("conversation");
const source = new EventSource("/api/calls/${sid}/events?since=${
      encodeURIComponent(view.lastEventId)
    }");
source.addEventListener("partial", (m) => showPartial(conversation, JSON.parse(m.data)));
source.addEventListener("final", (m) => showFinal(conversation, JSON.parse(m.data)));
const levelSource = new EventSource("/api/calls/${sid}/levels");
levelSource.addEventListener("level", (m) => {
  const d = JSON.parse(m.data);
  for (const track of ["inbound", "outbound"]) {
    const label = document.querySelector('#levels [data-track="' + track + '"]'); if (!label) continue;
    const db = d[track]; label.querySelector("meter").value = db ?? -96;
    label.querySelector("span").textContent = db === null ? "no audio" : db <= -50 ? "silent (" + db.toFixed(0) + " dBFS)" : db.toFixed(0) + " dBFS";
  }
});
source.addEventListener("call-ended", (m) => {
  const d = JSON.parse(m.data); const el = document.getElementById("duration");
  delete el.dataset.liveSince; el.textContent = duration(d.durationMs);
  const s = document.getElementById("status"); const st = d.status ?? "completed"; s.textContent = st; s.className = "badge " + st;
  for (const p of conversation.querySelectorAll(".msg.partial")) p.remove();
  const levels = document.getElementById("levels");
  if (levels) levels.innerHTML = ${
      view.audio?.recording
        ? `'<a href="">The call ended: reload to play its recording</a>'`
        : `'<span class="muted">The call ended (not recorded).</span>'`
    };
  levelSource.close();
  source.close();
});`
    : " ";
  // A module runs after the page's classic script, whose helpers (clock) it uses.
  const player = recording ? `<script type="module">${PLAYER_SCRIPT}</script>` : "";
  return layout(`callscribe — ${call.from ?? call.callSid}`, body + player, script);
}

/** The login form (shown with 401 when a token is needed). */
export function loginPage(message?: string): string {
  return layout(
    "callscribe — log in",
    `<div class="card" style="max-width:26rem;margin:3rem auto"><h1>Log in</h1>
<p class="muted">This dashboard needs the DASHBOARD_TOKEN set on the server.</p>
${message ? `<p class="error">${e(message)}</p>` : ""}
<form method="post" action="/login"><p><input type="password" name="token" autocomplete="current-password" placeholder="Dashboard token" aria-label="Dashboard token" required autofocus style="width:100%"></p>
<p><button class="primary">Log in</button></p></form></div>`,
  );
}

/** Unknown call page. */
export function notFoundPage(sid: string): string {
  return layout(
    "callscribe — not found",
    `<p><a href="/">← All calls</a></p><p class="error">No call with SID ${e(sid)}.</p>`,
  );
}
