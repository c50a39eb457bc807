/**
 * Times as people read them, shared by the exports and pages (server) and
 * the dashboard's script (the browser loads this file too, as
 * `/assets/text/time_format.ts`, with its types stripped): one copy for
 * both, so it uses nothing but the language.
 *
 * @module
 */

/** `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT). */
export function timestamp(ms: number, separator: "," | "."): string {
  const total = Math.max(0, Math.round(ms));
  const h = Math.floor(total / 3_600_000);
  const m = Math.floor(total / 60_000) % 60;
  const s = Math.floor(total / 1000) % 60;
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${separator}${pad(total % 1000, 3)}`;
}

/** `MM:SS.mmm`, or `H:MM:SS.mmm` past an hour. */
export function clock(ms: number): string {
  const t = timestamp(ms, ".");
  return t.startsWith("00:") ? t.slice(3) : t.replace(/^0/, "");
}

/** `1:05` or `1:02:03` */
export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor(total / 60) % 60;
  const s = total % 60;
  return h
    ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`
    : `${m}:${String(s).padStart(2, "0")}`;
}
