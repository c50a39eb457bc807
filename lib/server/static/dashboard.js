// @ts-check
/// <reference lib="dom" />
/**
 * The dashboard's script (served as `/assets/dashboard.js`; the CSP allows no
 * inline script). Both pages: live events applied to the lanes, local times,
 * live durations. What a page needs from the server is in `<body data-…>`:
 * `page` (`dashboard` or `call`), `lastEventId`, and on a live call page
 * `callSid` and `recorded`. Text from outside (numbers, transcripts) only
 * ever goes in as text (`textContent`), never as HTML.
 *
 * @module
 */
import { clock, formatDuration } from "./time_format.js";

/**
 * @typedef {{ callSid: string, track: string, text: string, id?: number,
 *   startMs: number, endMs: number }} SegmentEvent
 * @typedef {{ callSid: string, from?: string | null, to?: string | null, direction: string,
 *   startedAt: string, status?: string, durationMs?: number | null,
 *   segmentCount?: number }} CallEvent
 */

/**
 * An element by id (the pages always have the ones asked for).
 * @param {string} id
 * @returns {HTMLElement}
 */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * A new element with a class and text.
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** @param {ParentNode} root */
function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    el.textContent = new Date(/** @type {HTMLTimeElement} */ (el).dateTime).toLocaleString();
  }
}

/**
 * @param {ParentNode} root
 * @param {string} track
 * @returns {HTMLElement | null}
 */
const lane = (root, track) => root.querySelector(`.lane[data-track="${CSS.escape(track)}"]`);

/**
 * Keeps a lane scrolled to its end if it was there.
 * @param {HTMLElement} el
 */
function stick(el) {
  const near = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  return () => {
    if (near) el.scrollTop = el.scrollHeight;
  };
}

/**
 * @param {ParentNode} root
 * @param {SegmentEvent} d
 */
function showPartial(root, d) {
  const l = lane(root, d.track);
  if (!l) return;
  const keep = stick(l);
  let p = l.querySelector(".msg.partial");
  if (!p) {
    p = element("div", "msg partial");
    l.append(p);
  }
  p.textContent = d.text;
  keep();
}

/**
 * @param {ParentNode} root
 * @param {SegmentEvent} d
 */
function showFinal(root, d) {
  const l = lane(root, d.track);
  if (!l) return;
  const keep = stick(l);
  l.querySelector(".msg.partial")?.remove();
  if (d.id !== undefined && l.querySelector(`[data-seg="${d.id}"]`)) return;
  const m = element("div", "msg final");
  m.dataset.seg = String(d.id);
  m.dataset.start = String(d.startMs);
  m.dataset.end = String(d.endMs);
  m.append(element("time", "", `${clock(d.startMs)} – ${clock(d.endMs)}`), d.text);
  const later = [...l.querySelectorAll(".msg.final")].find((x) =>
    Number(/** @type {HTMLElement} */ (x).dataset.start) > d.startMs
  );
  l.insertBefore(m, later ?? null);
  keep();
}

function tick() {
  for (const el of document.querySelectorAll("[data-live-since]")) {
    const since = /** @type {HTMLElement} */ (el).dataset.liveSince ?? "";
    el.textContent = formatDuration(Date.now() - Date.parse(since));
  }
}

/**
 * @param {MessageEvent} m
 * @returns {any}
 */
const data = (m) => JSON.parse(m.data);

/** The dashboard: live calls as cards; an ended call moves to the history. */
function dashboard() {
  const active = byId("active");
  /** @param {string} sid */
  const card = (sid) => active.querySelector(`[data-call="${CSS.escape(sid)}"]`);
  /** @param {CallEvent} d */
  function newCard(d) {
    const existing = card(d.callSid);
    if (existing) return existing;
    const s = element("section", "card");
    s.dataset.call = d.callSid;
    const head = element("div", "card-head");
    const since = element("span", "num");
    since.dataset.liveSince = d.startedAt;
    const open = /** @type {HTMLAnchorElement} */ (element("a", "", "open call"));
    open.href = `/calls/${encodeURIComponent(d.callSid)}`;
    head.append(
      element("span", "badge live", "live"),
      element("strong", "", `${d.from ?? "unknown"} → ${d.to ?? "unknown"}`),
      element("span", "muted", d.direction),
      since,
      open,
    );
    const lanes = element("div", "lanes");
    for (
      const [track, title] of [["inbound", "Inbound (phone)"], ["outbound", "Outbound (laptop)"]]
    ) {
      const l = element("div", "lane");
      l.dataset.track = track;
      l.append(element("h3", "", title));
      lanes.append(l);
    }
    s.append(head, lanes);
    active.prepend(s);
    byId("no-active").hidden = true;
    return s;
  }
  /** @param {CallEvent} d */
  async function ended(d) {
    card(d.callSid)?.remove();
    byId("no-active").hidden = active.children.length > 0;
    const history = byId("history");
    if (
      history.dataset.filtered || history.querySelector(`[data-call="${CSS.escape(d.callSid)}"]`)
    ) return;
    const r = await fetch(`/api/calls/${encodeURIComponent(d.callSid)}`);
    if (!r.ok) return;
    /** @type {CallEvent} */
    const c = await r.json();
    const tr = document.createElement("tr");
    tr.dataset.call = c.callSid;
    const time = /** @type {HTMLTimeElement} */ (element("time"));
    time.dateTime = c.startedAt;
    const status = element("span", "badge", c.status);
    if (c.status) status.classList.add(c.status);
    const view = /** @type {HTMLAnchorElement} */ (element("a", "", "view"));
    view.href = `/calls/${encodeURIComponent(c.callSid)}`;
    const cells = [
      [time],
      [c.from ?? ""],
      [c.to ?? ""],
      [c.direction],
      [c.durationMs == null ? "" : formatDuration(c.durationMs)],
      [status],
      [String(c.segmentCount ?? "")],
      [view],
    ];
    for (const [i, content] of cells.entries()) {
      const td = element("td", i === 4 || i === 6 ? "num" : "");
      td.append(...content);
      tr.append(td);
    }
    history.prepend(tr);
    localTimes(tr);
  }
  const since = encodeURIComponent(document.body.dataset.lastEventId ?? "");
  const source = new EventSource(`/api/events?since=${since}`);
  source.addEventListener("call-started", (m) => newCard(data(m)));
  source.addEventListener("partial", (m) => {
    const d = data(m);
    const c = card(d.callSid);
    if (c) showPartial(c, d);
  });
  source.addEventListener("final", (m) => {
    const d = data(m);
    const c = card(d.callSid);
    if (c) showFinal(c, d);
  });
  source.addEventListener("call-ended", (m) => ended(data(m)));
}

/** A live call's page: its lanes, levels and status follow the call. */
function liveCall() {
  const sid = encodeURIComponent(document.body.dataset.callSid ?? "");
  const since = encodeURIComponent(document.body.dataset.lastEventId ?? "");
  const conversation = byId("conversation");
  const source = new EventSource(`/api/calls/${sid}/events?since=${since}`);
  source.addEventListener("partial", (m) => showPartial(conversation, data(m)));
  source.addEventListener("final", (m) => showFinal(conversation, data(m)));
  const levelSource = new EventSource(`/api/calls/${sid}/levels`);
  levelSource.addEventListener("level", (m) => {
    const d = data(m);
    for (const track of ["inbound", "outbound"]) {
      const label = document.querySelector(`#levels [data-track="${track}"]`);
      if (!label) continue;
      /** @type {number | null} */
      const db = d[track];
      const meter = /** @type {HTMLMeterElement} */ (label.querySelector("meter"));
      meter.value = db ?? -96;
      /** @type {HTMLElement} */ (label.querySelector("span")).textContent = db === null
        ? "no audio"
        : db <= -50
        ? `silent (${db.toFixed(0)} dBFS)`
        : `${db.toFixed(0)} dBFS`;
    }
  });
  source.addEventListener("call-ended", (m) => {
    const d = data(m);
    const el = byId("duration");
    delete el.dataset.liveSince;
    el.textContent = formatDuration(d.durationMs);
    const s = byId("status");
    const st = d.status ?? "completed";
    s.textContent = st;
    s.className = `badge ${st}`;
    for (const p of conversation.querySelectorAll(".msg.partial")) p.remove();
    const levels = document.getElementById("levels");
    if (levels) {
      if (document.body.dataset.recorded) {
        const reload = /** @type {HTMLAnchorElement} */ (element(
          "a",
          "",
          "The call ended: reload to play its recording",
        ));
        reload.href = "";
        levels.replaceChildren(reload);
      } else {
        levels.replaceChildren(element("span", "muted", "The call ended (not recorded)."));
      }
    }
    levelSource.close();
    source.close();
  });
}

setInterval(tick, 1000);
tick();
localTimes(document);
if (document.body.dataset.page === "dashboard") dashboard();
if (document.body.dataset.page === "call" && document.body.dataset.callSid) liveCall();
