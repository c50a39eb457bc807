/// <reference lib="dom" />
/**
 * The dashboard's script (served as `/assets/server/static/dashboard.ts`,
 * its types stripped; the CSP allows no inline script). Both pages: live events applied to the conversation (both
 * tracks in one list in time order, as pages.ts renders it), local times,
 * live durations; a live call page loads its player when the call ends.
 * What a page needs from the server is in `<body data-…>`: `page`
 * (`dashboard` or `call`), `lastEventId`, and on a live call page `callSid`
 * and `styleNonce` (the player's). Text from outside (numbers, transcripts)
 * only ever goes in as text (`textContent`), never as HTML.
 *
 * @module
 */
import { clock, formatDuration } from "../../text/time_format.ts";
import { SIDE_LABELS } from "./side_labels.ts";

/** A line of a conversation, as the live events carry it. */
interface SegmentEvent {
  callSid: string;
  track: string;
  text: string;
  id?: number;
  startMs: number;
  endMs: number;
  speakerLabel?: string | null;
  language?: string | null;
}

/** A call, as the live events and `/api/calls/<sid>` carry it. */
interface CallEvent {
  callSid: string;
  from?: string | null;
  to?: string | null;
  direction: string;
  startedAt: string;
  status?: string;
  durationMs?: number | null;
  segmentCount?: number;
}

/**
 * An element by id (the pages always have the ones asked for).
 */
const byId = (id: string): HTMLElement => (document.getElementById(id) as HTMLElement);

/**
 * A new element with a class and text.
 */
function element(tag: string, className?: string, text?: string): HTMLElement {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function localTimes(root: ParentNode) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    el.textContent = new Date((el as HTMLTimeElement).dateTime).toLocaleString();
  }
}

/**
 * The element that scrolls a conversation: its own list in a dashboard card
 * (a compact view), the page on the call page.
 */
const scroller = (list: HTMLElement): Element =>
  getComputedStyle(list).overflowY === "visible"
    ? document.scrollingElement ?? document.documentElement
    : list;

/**
 * Keeps a conversation scrolled to its end if it was there.
 */
function stick(el: Element) {
  const near = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  return () => {
    if (near) el.scrollTop = el.scrollHeight;
  };
}

/**
 * Fills a line: its side, speaker and language when given, times, then its text.
 */
function fillLine(line: HTMLElement, d: SegmentEvent) {
  line.dataset.track = d.track;
  line.dataset.start = String(d.startMs);
  line.dataset.end = String(d.endMs);
  const meta = element("div", "meta");
  const sides = SIDE_LABELS as Record<string, string>;
  meta.append(element("span", "who", sides[d.track] ?? d.track));
  const speaker = [d.speakerLabel, d.language].filter(Boolean).join(", ");
  if (speaker) meta.append(element("span", "speaker", speaker));
  meta.append(element("time", "", `${clock(d.startMs)} – ${clock(d.endMs)}`));
  line.replaceChildren(meta, d.text);
}

/**
 * Puts a line where its start time belongs (after lines that start at the same time).
 */
function place(list: HTMLElement, line: HTMLElement) {
  const start = Number(line.dataset.start);
  const later = [...list.children].find((x) =>
    x !== line && Number((x as HTMLElement).dataset.start) > start
  );
  if (later) {
    if (later.previousElementSibling !== line) list.insertBefore(line, later);
  } else if (list.lastElementChild !== line) list.append(line);
}

function showPartial(root: ParentNode, d: SegmentEvent) {
  const list = root.querySelector(".lines") as HTMLElement | null;
  if (!list) return;
  const keep = stick(scroller(list));
  let p = list.querySelector<HTMLElement>(`.msg.partial[data-track="${CSS.escape(d.track)}"]`);
  p ??= element("li", "msg partial");
  fillLine(p, d);
  place(list, p);
  keep();
}

function showFinal(root: ParentNode, d: SegmentEvent) {
  const list = root.querySelector(".lines") as HTMLElement | null;
  if (!list) return;
  const keep = stick(scroller(list));
  list.querySelector(`.msg.partial[data-track="${CSS.escape(d.track)}"]`)?.remove();
  if (d.id !== undefined && list.querySelector(`[data-seg="${d.id}"]`)) return;
  const m = element("li", "msg final");
  m.dataset.seg = String(d.id);
  fillLine(m, d);
  place(list, m);
  keep();
}

function tick() {
  for (const el of document.querySelectorAll("[data-live-since]")) {
    const since = (el as HTMLElement).dataset.liveSince ?? "";
    el.textContent = formatDuration(Date.now() - Date.parse(since));
  }
}

const data = (m: MessageEvent) => JSON.parse(m.data);

/** The dashboard: live calls as cards; an ended call moves to the history. */
function dashboard() {
  const active = byId("active");
  const card = (sid: string) => active.querySelector(`[data-call="${CSS.escape(sid)}"]`);
  function newCard(d: CallEvent) {
    const existing = card(d.callSid);
    if (existing) return existing;
    const s = element("section", "card");
    s.dataset.call = d.callSid;
    const head = element("div", "card-head");
    const since = element("span", "num");
    since.dataset.liveSince = d.startedAt;
    const open = element("a", "", "open call") as HTMLAnchorElement;
    open.href = `/calls/${encodeURIComponent(d.callSid)}`;
    head.append(
      element("span", "badge live", "live"),
      element("strong", "", `${d.from ?? "unknown"} → ${d.to ?? "unknown"}`),
      element("span", "muted", d.direction),
      since,
      open,
    );
    const lines = element("ol", "lines");
    lines.setAttribute("aria-label", "Conversation");
    s.append(head, lines);
    active.prepend(s);
    byId("no-active").hidden = true;
    return s;
  }
  async function ended(d: CallEvent) {
    card(d.callSid)?.remove();
    byId("no-active").hidden = active.children.length > 0;
    const history = byId("history");
    if (
      history.dataset.filtered || history.querySelector(`[data-call="${CSS.escape(d.callSid)}"]`)
    ) return;
    const r = await fetch(`/api/calls/${encodeURIComponent(d.callSid)}`);
    if (!r.ok) return;
    const c: CallEvent = await r.json();
    const tr = document.createElement("tr");
    tr.dataset.call = c.callSid;
    const time = element("time") as HTMLTimeElement;
    time.dateTime = c.startedAt;
    const status = element("span", "badge", c.status);
    if (c.status) status.classList.add(c.status);
    const view = element("a", "", "view") as HTMLAnchorElement;
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

/**
 * The ended call's player and audio quality, from its page as the server now
 * renders it (one rendering, in pages.ts): they replace the levels, its stored
 * lines replace the live ones, and the player starts with this page's style
 * nonce. False when the server still shows the call live.
 */
async function showRecording(sid: string, levels: HTMLElement): Promise<boolean> {
  const r = await fetch(`/calls/${sid}`);
  if (!r.ok) return false;
  const ended = new DOMParser().parseFromString(await r.text(), "text/html");
  if (ended.getElementById("levels")) return false;
  const player = ended.getElementById("player");
  const quality = ended.getElementById("quality");
  const lines = ended.querySelector("#conversation .lines");
  if (lines) document.querySelector("#conversation .lines")?.replaceWith(document.adoptNode(lines));
  const shown = [player, quality].flatMap((el) => el ? [document.adoptNode(el)] : []);
  if (!player) shown.unshift(element("p", "muted", "The call ended (not recorded)."));
  levels.replaceWith(...shown);
  if (player) {
    player.dataset.styleNonce = document.body.dataset.styleNonce ?? "";
    await import("./player.ts");
  }
  return true;
}

/** A live call's page: its lines, levels and status follow the call; at its end, the player. */
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
      const db: number | null = d[track];
      const meter = label.querySelector("meter") as HTMLMeterElement;
      meter.value = db ?? -96;
      (label.querySelector("span") as HTMLElement).textContent = db === null
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
    levelSource.close();
    source.close();
    const levels = document.getElementById("levels");
    if (levels) recordingAfterEnd(levels);
  });
  /**
   * The server may take a moment to show the call ended (another instance's
   * event): asks a few times, then offers a reload.
   */
  async function recordingAfterEnd(levels: HTMLElement) {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await showRecording(sid, levels).catch(() => false)) return;
      await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
    }
    const reload = element(
      "a",
      "",
      "The call ended: reload to play its recording",
    ) as HTMLAnchorElement;
    reload.href = "";
    levels.replaceChildren(reload);
  }
}

setInterval(tick, 1000);
tick();
localTimes(document);
if (document.body.dataset.page === "dashboard") dashboard();
if (document.body.dataset.page === "call" && document.body.dataset.callSid) liveCall();
