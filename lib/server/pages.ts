/**
 * The dashboard's HTML: server-rendered template strings, every outside
 * value escaped. No inline script or style (the Content-Security-Policy
 * allows neither): the pages load `static/dashboard.css`,
 * `static/dashboard.ts` (EventSource) and, for a recording, `static/player.ts`
 * (wavesurfer.js, served from node_modules as an ES module), and pass what
 * the scripts need in `<body data-…>`. No build step: the server strips the
 * scripts' types as it serves them (`browser_assets.ts`).
 *
 * @module
 */
import type { CallPage, CallQuery, Segment, StoredCall } from "../store/db.ts";
import {
  type CallAudio,
  describeQuality,
  EXPORT_FORMATS,
  mergeByTime,
} from "../export/transcript_export.ts";
import { clock, formatDuration } from "../text/time_format.ts";
import { speakerName, TRACK_LABELS } from "../transcribe/engine.ts";
import { qualityWarnings } from "../recording/track_quality.ts";
import { SIDE_LABELS } from "./static/side_labels.ts";

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? "").replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

const e = escapeHtml;

/** The pages' files, by their paths under `/assets/` (see `browser_assets.ts`). */
const DASHBOARD_CSS = "server/static/dashboard.css";
const DASHBOARD_SCRIPT = "server/static/dashboard.ts";
const PLAYER_SCRIPT = "server/static/player.ts";
const SOFTPHONE_SCRIPT = "server/static/softphone.ts";

/** What a page's `<body data-…>` tells its script, and which scripts it loads. */
interface PageOptions {
  /** `data-*` attributes of `<body>` (values escaped here). */
  data?: Record<string, string>;
  /** Scripts by their paths under /assets/ (ES modules, run in order after the page is parsed). */
  scripts?: string[];
  loggedIn?: boolean;
}

function layout(title: string, body: string, options: PageOptions = {}): string {
  const data = Object.entries(options.data ?? {}).map(([key, value]) =>
    ` data-${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}="${e(value)}"`
  ).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)}</title><link rel="stylesheet" href="/assets/${DASHBOARD_CSS}">${
    (options.scripts ?? []).map((path) =>
      `<script type="module" src="/assets/${e(path)}"></script>`
    )
      .join("")
  }</head>
<body${data}><header class="top"><a href="/">callscribe</a><span class="muted">transcripts</span>${
    options.loggedIn ? `<form method="post" action="/logout"><button>Log out</button></form>` : ""
  }</header>
<main>${body}</main></body></html>`;
}

/**
 * The conversation: both tracks' lines in one list ordered by start time,
 * like a chat (the phone party on the left, the laptop on the right), each
 * line marked with its side, its speaker and language when the engine gave
 * them, and its times. `dashboard.ts` inserts live lines in the same order.
 */
function conversation(segments: Segment[]): string {
  return `<ol class="lines" aria-label="Conversation">${
    mergeByTime(segments).map((s) =>
      `<li class="msg final" data-track="${s.track}" data-seg="${s.id}" data-start="${s.startMs}" data-end="${s.endMs}"><div class="meta"><span class="who">${
        SIDE_LABELS[s.track]
      }</span>${
        // Who spoke within the track and the language, when the engine gave them: "B, es".
        s.speaker || s.language
          ? `<span class="speaker">${
            e(speakerName(s).slice(TRACK_LABELS[s.track].length + 2, -1))
          }</span>`
          : ""}<time>${clock(s.startMs)} – ${clock(s.endMs)}</time></div>${e(s.text)}</li>`
    ).join("")
  }</ol>`;
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
    conversation(segments)
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
<section id="dial-out" class="card softphone" hidden></section>
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
  return layout("callscribe — calls", body, {
    data: { page: "dashboard", lastEventId: view.lastEventId },
    scripts: [DASHBOARD_SCRIPT, SOFTPHONE_SCRIPT],
    loggedIn: view.loggedIn,
  });
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
  /** This response's CSP nonce, for the player's `<style>` (wavesurfer's shadow DOM). */
  styleNonce?: string;
  /** The page offers to log out. */
  loggedIn?: boolean;
}

/** The player: two waveform lanes (left inbound, right outbound), segments as regions. */
function playerCard(url: string, durationMs: number, styleNonce = ""): string {
  return `<div id="player" class="card" data-src="${e(url)}" data-style-nonce="${
    e(styleNonce)
  }"><div class="player-bar">
<button id="play" class="primary" disabled>Play</button>
<span class="num nowrap"><span id="player-time">00:00.000</span> / ${e(clock(durationMs))}</span>
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
  const warnings = qualityWarnings(quality, audio.laptopInput).map((w) =>
    `<p class="warning">⚠ ${e(w)}</p>`
  )
    .join("");
  return `<div id="quality" class="card"><h2 class="flush">Audio quality</h2>${warnings}
<table><tbody>${rows}</tbody></table></div>`;
}

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
${levels}${
    // The browser softphone's mount point (static/softphone.ts builds it).
    view.active
      ? `<section id="softphone" class="card softphone" data-call="${
        e(call.callSid)
      }" hidden></section>`
      : ""}${recording ? playerCard(recording.url, recording.durationMs, view.styleNonce) : ""}${
    view.active || !view.audio ? "" : qualityCard(view.audio)
  }
<div id="conversation" class="card">${conversation(view.segments)}</div>`;
  return layout(`callscribe — ${call.from ?? call.callSid}`, body, {
    data: {
      page: "call",
      lastEventId: view.lastEventId,
      // A live page loads its player when the call ends: with this response's style nonce.
      ...(view.active ? { callSid: call.callSid, styleNonce: view.styleNonce ?? "" } : {}),
    },
    // The player after the page's script (module scripts run in order).
    scripts: recording
      ? [DASHBOARD_SCRIPT, PLAYER_SCRIPT]
      : view.active
      ? [DASHBOARD_SCRIPT, SOFTPHONE_SCRIPT]
      : [DASHBOARD_SCRIPT],
    loggedIn: view.loggedIn,
  });
}

/** The login form (shown with 401 when a token is needed). */
export function loginPage(message?: string): string {
  return layout(
    "callscribe — log in",
    `<div class="card login"><h1>Log in</h1>
<p class="muted">This dashboard needs its token: DASHBOARD_TOKEN, or the one the server generated (in its DATA_DIR, file dashboard-token). Or open the login link the server printed on its console.</p>
${message ? `<p class="error">${e(message)}</p>` : ""}
<form method="post" action="/login"><p><input type="password" name="token" autocomplete="current-password" placeholder="Dashboard token" aria-label="Dashboard token" required autofocus></p>
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
