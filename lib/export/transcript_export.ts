/**
 * Transcript exports: both tracks merged by time, each line labelled with
 * its speaker (Inbound = the phone party, Outbound = the laptop side).
 *
 * - `json`: the call (with its recording and audio quality) and its segments (with words).
 * - `txt`: a header (with the audio quality), then `[00:01.240] Inbound: text` lines.
 * - `srt`: SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, CRLF line ends.
 * - `vtt`: WebVTT: `WEBVTT` header, `HH:MM:SS.mmm` cues, the speaker as a voice span (`<v Inbound>`,
 *   `<v Inbound (B)>` when the engine labels speakers within a track).
 *
 * @module
 */
import { speakerName, TRACK_LABELS } from "../transcribe/engine.ts";
import type { CallQuality } from "../recording/track_quality.ts";
import type { LaptopInput } from "../recording/call_audio_summary.ts";
import { qualityWarnings } from "../recording/track_quality.ts";
import type { Segment, StoredCall } from "../store/db.ts";
import { clock, formatDuration, timestamp } from "../text/time_format.ts";
import { printable } from "../text/printable.ts";

/**
 * A call's audio as exports show it: its recording (null: none), quality (null: not measured)
 * and what its laptop leg sent (null or absent: unknown).
 */
export interface CallAudio {
  recording: { durationMs: number; url: string } | null;
  quality: CallQuality | null;
  laptopInput?: LaptopInput | null;
}

/** The export formats. */
export const EXPORT_FORMATS = ["json", "txt", "srt", "vtt"] as const;
/** One export format. */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Content types of the formats. */
export const EXPORT_TYPES: Record<ExportFormat, string> = {
  json: "application/json; charset=utf-8",
  txt: "text/plain; charset=utf-8",
  srt: "application/x-subrip; charset=utf-8",
  vtt: "text/vtt; charset=utf-8",
};

/** Segments of both tracks in time order (ties: inbound first, then arrival). */
export function mergeByTime(segments: Segment[]): Segment[] {
  return [...segments].sort((a, b) =>
    a.startMs - b.startMs || a.endMs - b.endMs ||
    (a.track === b.track ? 0 : a.track === "inbound" ? -1 : 1) || a.seq - b.seq
  );
}

/** Renders a call's transcript in `format`. */
export function exportTranscript(
  format: ExportFormat,
  call: StoredCall,
  segments: Segment[],
  audio: CallAudio = { recording: null, quality: null },
): string {
  const merged = mergeByTime(segments);
  switch (format) {
    case "json":
      return toJson(call, merged, audio);
    case "txt":
      return toTxt(call, merged, audio);
    case "srt":
      return toSrt(merged);
    case "vtt":
      return toVtt(merged);
  }
}

function toJson(call: StoredCall, segments: Segment[], audio: CallAudio): string {
  return JSON.stringify(transcriptRecord(call, segments, audio), null, 2) + "\n";
}

/** The `json` export as an object: the call and its segments (already merged by time). */
export function transcriptRecord(
  call: StoredCall,
  segments: Segment[],
  audio: CallAudio = { recording: null, quality: null },
) {
  return {
    call: { ...callJson(call), ...audioJson(audio) },
    segments: segments.map((s) => ({
      id: s.id,
      track: s.track,
      speaker: TRACK_LABELS[s.track],
      // Within the track (AssemblyAI's speaker labels), and the language detected; null if none.
      speakerLabel: s.speaker,
      language: s.language,
      order: s.seq,
      text: s.text,
      startMs: s.startMs,
      endMs: s.endMs,
      confidence: s.confidence,
      receivedAt: new Date(s.receivedAt).toISOString(),
      words: s.words,
    })),
  };
}

/** A call as the API shows it (ISO times). */
export function callJson(call: StoredCall, active = false) {
  const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  return {
    callSid: call.callSid,
    direction: call.direction,
    from: call.from,
    to: call.to,
    engine: call.engine,
    status: call.status,
    active,
    startedAt: iso(call.startedAt),
    answeredAt: iso(call.answeredAt),
    endedAt: iso(call.endedAt),
    durationMs: call.durationMs,
    endReason: call.endReason,
    segmentCount: call.segmentCount,
  };
}

/** A call's recording and quality as the JSON API shows them. */
export function audioJson(audio: CallAudio) {
  return {
    recording: audio.recording
      ? {
        exists: true,
        durationMs: Math.round(audio.recording.durationMs),
        url: audio.recording.url,
      }
      : { exists: false, durationMs: null, url: null },
    quality: audio.quality,
    laptopInput: audio.laptopInput ?? null,
    qualityWarnings: audio.quality ? qualityWarnings(audio.quality, audio.laptopInput) : [],
  };
}

function toTxt(call: StoredCall, segments: Segment[], audio: CallAudio): string {
  const lines = [
    // From, To (a SIP caller sets any string) and the rest stay on their own line each.
    `Call ${printable(call.callSid)} (${printable(call.direction)})`,
    `From: ${printable(call.from ?? "unknown", 200)}`,
    `To: ${printable(call.to ?? "unknown", 200)}`,
    `Started: ${new Date(call.startedAt).toISOString()}`,
    `Duration: ${call.durationMs === null ? call.status : formatDuration(call.durationMs)}`,
    `Recording: ${audio.recording ? formatDuration(audio.recording.durationMs) : "none"}`,
  ];
  if (audio.quality) {
    for (const track of ["inbound", "outbound"] as const) {
      lines.push(`Audio ${TRACK_LABELS[track]}: ${describeQuality(audio.quality[track])}`);
    }
    for (const warning of qualityWarnings(audio.quality, audio.laptopInput)) {
      lines.push(`Warning: ${warning}`);
    }
  }
  lines.push("");
  for (const s of segments) {
    lines.push(`[${clock(s.startMs)}] ${speakerName(s)}: ${printable(s.text)}`);
  }
  if (segments.length === 0) lines.push("(nothing was transcribed)");
  return lines.join("\n") + "\n";
}

/** `0.0 s gaps, 0.1% clipped, 42% silent, mean -24.3 dBFS` */
export function describeQuality(q: CallQuality["inbound"]): string {
  const percent = (share: number) => `${+(share * 100).toFixed(1)}%`;
  return `${(q.gapMs / 1000).toFixed(1)} s gaps, ${percent(q.clippedShare)} clipped, ${
    percent(q.silentShare)
  } silent, mean ${q.meanLevelDb.toFixed(1)} dBFS`;
}

function toSrt(segments: Segment[]): string {
  // SubRip is CRLF by tradition; every cue ends with a blank line.
  return segments.map((s, i) => {
    const [start, end] = cueTimes(s);
    return [
      String(i + 1),
      `${timestamp(start, ",")} --> ${timestamp(end, ",")}`,
      `${speakerName(s)}: ${oneLine(s.text)}`,
      "",
      "",
    ].join("\r\n");
  }).join("");
}

function toVtt(segments: Segment[]): string {
  const cues = segments.map((s, i) => {
    const [start, end] = cueTimes(s);
    // Cue text: no "-->", no blank lines, and &, <, > escaped.
    const text = oneLine(s.text).replaceAll("&", "&amp;").replaceAll("<", "&lt;")
      .replaceAll(">", "&gt;");
    // The voice span names the track and, when labelled, the speaker within it: <v Inbound (B)>.
    return `${i + 1}\n${timestamp(start, ".")} --> ${timestamp(end, ".")}\n<v ${
      speakerName(s)
    }>${text}\n`;
  });
  return ["WEBVTT\n", ...cues].join("\n");
}

/** Cue start and end; a cue must end after it starts. */
function cueTimes(s: Segment): [number, number] {
  const start = Math.max(0, Math.round(s.startMs));
  return [start, Math.max(start + 1, Math.round(s.endMs))];
}

function oneLine(text: string): string {
  return printable(text).replace(/\s+/g, " ").replaceAll("-->", "->").trim();
}
