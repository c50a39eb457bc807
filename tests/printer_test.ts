import assert from "node:assert/strict";
import type { CallEvent, CallInfo } from "../lib/call/events.ts";
import { createPrinter } from "../lib/console/printer.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";

const call = (sid: string): CallInfo => ({
  callSid: sid,
  label: sid.slice(-4),
  direction: "outbound",
});
const transcript = (
  type: "partial" | "final",
  track: "inbound" | "outbound",
  text: string,
): Transcript => ({
  type,
  track,
  text,
  startMs: 0,
  endMs: 1500,
  words: [{ text: "hey", startMs: 0, endMs: 300, confidence: 0.9 }],
});
const said = (sid: string, t: Transcript): CallEvent => ({
  type: "transcript",
  call: call(sid),
  transcript: t,
});

function capture(options: Parameters<typeof createPrinter>[0]) {
  let out = "";
  const print = createPrinter({ ...options, write: (text) => (out += text) });
  return { print, output: () => out };
}

Deno.test("text: finals print exactly as `Inbound: <text> [<start> - <end>]`", () => {
  const { print, output } = capture({ format: "text" });
  print({ type: "call-started", call: call("CA01"), at: 0 });
  print(said("CA01", transcript("partial", "inbound", "hey what")));
  print(said("CA01", transcript("final", "inbound", "Hey, what's going on?")));
  print(said("CA01", transcript("final", "outbound", "Hello.")));
  assert.equal(
    output(),
    "Inbound: Hey, what's going on? [0 - 1500]\nOutbound: Hello. [0 - 1500]\n",
  );
});

Deno.test("text: a call label prefixes lines while more than one call is active", () => {
  const { print, output } = capture({ format: "text" });
  print({ type: "call-started", call: call("CA0000aaaa"), at: 0 });
  print({ type: "call-started", call: call("CA0000bbbb"), at: 0 });
  print(said("CA0000bbbb", transcript("final", "inbound", "Hi")));
  print({ type: "call-ended", call: call("CA0000aaaa"), at: 0, reason: "stop" });
  print(said("CA0000bbbb", transcript("final", "inbound", "Bye")));
  assert.equal(output(), "[bbbb] Inbound: Hi [0 - 1500]\nInbound: Bye [0 - 1500]\n");
});

Deno.test("text on a terminal: partials on one status line, rewritten in place", () => {
  const { print, output } = capture({ format: "text", isTerminal: true });
  print({ type: "call-started", call: call("CA01"), at: 0 });
  print(said("CA01", transcript("partial", "inbound", "hey")));
  print(said("CA01", transcript("final", "inbound", "Hey there")));
  const text = output();
  assert.match(text, /hey/);
  assert.ok(text.includes("\r\x1b[2K"), "the status line is erased before the final");
  assert.ok(text.includes("Inbound: Hey there [0 - 1500]\n"));
});

Deno.test("jsonl: one clean JSON object per event, partials only when asked", () => {
  for (const partials of [false, true]) {
    const { print, output } = capture({ format: "jsonl", partials });
    print({ type: "call-started", call: call("CA01"), at: 0 });
    print(said("CA01", transcript("partial", "inbound", "hey")));
    print(said("CA01", transcript("final", "inbound", "Hey there")));
    const lines = output().trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.type),
      partials ? ["call-started", "partial", "final"] : ["call-started", "final"],
    );
    assert.deepEqual(lines.at(-1), {
      type: "final",
      callSid: "CA01",
      track: "inbound",
      text: "Hey there",
      startMs: 0,
      endMs: 1500,
      words: [{ text: "hey", startMs: 0, endMs: 300, confidence: 0.9 }],
    });
    assert.ok(!output().includes("\x1b"));
  }
});
