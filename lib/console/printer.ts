/**
 * Prints call events for people (`text`) or programs (`jsonl`).
 *
 * text: each final as `Inbound: <text> [<start> - <end>]`, prefixed with the
 * call's label while more than one call is active. On a terminal the current
 * partials sit on one status line rewritten in place; piped output never has
 * partials or escape codes.
 * jsonl: one JSON object per event on stdout and nothing else; partials only
 * when asked for.
 *
 * @module
 */
import { speakerName, TRACK_LABELS, type Transcript } from "../transcribe/engine.ts";
import type { CallEvent, CallListener } from "../call/events.ts";
import { printable } from "../text/printable.ts";

/** Output options. */
export interface PrinterOptions {
  format: "text" | "jsonl";
  /** jsonl: include partials. text: partials are shown only on a terminal. */
  partials?: boolean;
  /** Where lines go; defaults to stdout. */
  write?: (text: string) => void;
  /** Whether `write` is a terminal (status line allowed). */
  isTerminal?: boolean;
}

/** `Inbound: Hello there. [0 - 1500]` (`Inbound (B): …` when the engine labels speakers; the text on one line, without control characters). */
export function formatFinal(transcript: Transcript): string {
  return `${speakerName(transcript)}: ${
    printable(transcript.text)
  } [${transcript.startMs} - ${transcript.endMs}]`;
}

/** Returns a publisher (for the call-event pipeline) that prints events as configured. */
export function createPrinter(options: PrinterOptions): CallListener {
  const encoder = new TextEncoder();
  const write = options.write ?? ((text: string) => Deno.stdout.writeSync(encoder.encode(text)));
  const terminal = options.isTerminal ?? (options.write ? false : Deno.stdout.isTerminal());
  const active = new Set<string>();
  const partials = new Map<string, string>();
  let statusShown = false;

  const clearStatus = () => {
    if (statusShown) write("\r\x1b[2K");
    statusShown = false;
  };
  const drawStatus = () => {
    const line = [...partials.values()].join("  |  ");
    if (!line) return;
    const width = terminalWidth();
    write(`\x1b[2m${line.length > width - 1 ? "…" + line.slice(-(width - 2)) : line}\x1b[0m`);
    statusShown = true;
  };

  if (options.format === "jsonl") {
    return (event) => {
      const line = jsonEvent(event, options.partials ?? false);
      if (line) write(line + "\n");
    };
  }

  return (event: CallEvent) => {
    const prefix = active.size > 1 ? `[${printable(event.call.label, 16)}] ` : "";
    switch (event.type) {
      case "call-started":
        active.add(event.call.callSid);
        return;
      case "call-ended":
        active.delete(event.call.callSid);
        for (const key of partials.keys()) {
          if (key.startsWith(event.call.callSid)) partials.delete(key);
        }
        if (terminal) {
          clearStatus();
          drawStatus();
        }
        return;
      case "call-error":
        return;
      case "transcript": {
        const { transcript } = event;
        const key = `${event.call.callSid}:${transcript.track}`;
        if (transcript.type === "partial") {
          if (!terminal) return;
          partials.set(
            key,
            `${prefix}${TRACK_LABELS[transcript.track]}: ${printable(transcript.text)}`,
          );
        } else {
          partials.delete(key);
        }
        if (terminal) clearStatus();
        if (transcript.type === "final") write(prefix + formatFinal(transcript) + "\n");
        if (terminal) drawStatus();
        return;
      }
    }
  };
}

function terminalWidth(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 100;
  }
}

/** The JSON line for an event, or null when the event is not printed. */
export function jsonEvent(event: CallEvent, partials: boolean): string | null {
  const record = eventRecord(event, partials);
  return record && JSON.stringify(record);
}

/**
 * An event as the object `--format jsonl` prints (and webhooks send), or
 * null when partials are not wanted.
 */
export function eventRecord(event: CallEvent, partials: boolean): Record<string, unknown> | null {
  const callSid = event.call.callSid;
  switch (event.type) {
    case "transcript": {
      const t = event.transcript;
      if (t.type === "partial" && !partials) return null;
      return {
        type: t.type,
        callSid,
        track: t.track,
        text: t.text,
        startMs: t.startMs,
        endMs: t.endMs,
        words: t.words,
        // Only when the engine gives them, under the names the json export uses.
        ...(t.speaker !== undefined && { speakerLabel: t.speaker }),
        ...(t.language !== undefined && { language: t.language }),
      };
    }
    case "call-started":
      return {
        type: "call-started",
        callSid,
        direction: event.call.direction,
        from: event.call.from,
        to: event.call.to,
        at: new Date(event.at).toISOString(),
      };
    case "call-ended":
      return {
        type: "call-ended",
        callSid,
        reason: event.reason,
        at: new Date(event.at).toISOString(),
      };
    case "call-error":
      return { type: "call-error", callSid, message: event.message };
  }
}
