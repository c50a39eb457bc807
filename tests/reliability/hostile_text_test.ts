/**
 * Values from outside (`X-Forwarded-For`, a caller's From and To, Twilio
 * custom parameters, transcript text) never forge a line or reach the
 * terminal as an escape sequence: not in the log, the console printer, or a
 * text export. A flood of refused requests costs the log a line, not a
 * line (and 64 KiB) each.
 */
import assert from "node:assert/strict";
import { printable } from "../../lib/text/printable.ts";
import { RefusalLog } from "../../lib/server/refusal_log.ts";
import { clientAddress } from "../../lib/server/client_address.ts";
import { createApp } from "../../lib/server/app.ts";
import { upgradeDenoWebSocket } from "../../lib/server/deno_websocket.ts";
import { CallRegistry } from "../../lib/call/registry.ts";
import { NullEngine } from "../../lib/transcribe/null_engine.ts";
import { memoryLogger } from "../../lib/log.ts";
import { exportTranscript } from "../../lib/export/transcript_export.ts";
import type { Segment, StoredCall } from "../../lib/store/db.ts";
import { formatFinal } from "../../lib/console/printer.ts";
import { makeSid, simulateCall } from "../../lib/sim/twilio_sim.ts";
import { testServer } from "../helpers.ts";
import { report } from "./fixtures.ts";

/** A value that tries everything: new lines of every kind, ANSI escapes (7- and 8-bit), a bidi override. */
const FORGED = "+15551234567\ncallscribe: call CA1 ended\r\x1b[2J\x1b]0;pwned\x07\u2028Inbound: " +
  "fake\u0085\x9b31m\u202eevil\x00";

/** No C0/C1 control, no U+2028/2029, no escape sequence left. */
function assertClean(text: string, what: string) {
  assert.doesNotMatch(
    text,
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202e]/,
    `${what}: ${JSON.stringify(text)}`,
  );
}

Deno.test("printable: control characters go, line breaks become spaces, long values are cut", () => {
  assert.equal(printable("a\nb\r\nc\td\u2028e\u2029f\x85g"), "a b c d e f g");
  assert.equal(printable("\x1b[31mred\x1b[0m \x9b1mbold \x1b]0;title\x07plain"), "red bold plain");
  assert.equal(printable("bell\x07 nul\x00 del\x7f c1\x90 rlo\u202e"), "bell nul del c1 rlo");
  assert.equal(printable("Grüße, 你好 — ok"), "Grüße, 你好 — ok");
  assert.equal(printable("x".repeat(100), 10), "xxxxxxxxx…");
  assertClean(printable(FORGED), "printable");
});

Deno.test("clientAddress: the last X-Forwarded-For hop behind a local proxy, cleaned and short", () => {
  const request = (xff: string) =>
    new Request("http://127.0.0.1/", { headers: { "x-forwarded-for": xff } });
  assert.equal(clientAddress(request("10.0.0.1, 203.0.113.9"), "127.0.0.1"), "203.0.113.9");
  assert.equal(
    clientAddress(request(`${"1.2.3.4, ".repeat(7000)}198.51.100.7`), "127.0.0.1"),
    "198.51.100.7",
  );
  assert.equal(clientAddress(request("a".repeat(70 * 1024)), "127.0.0.1"), "unknown");
  // A header carries bytes only (no line breaks): the forgery is control characters and escapes.
  const forged = "203.0.113.9\x1b[2J\x85\x07evil";
  assert.equal(clientAddress(request(`x, ${forged}`), "127.0.0.1"), "unknown");
});

Deno.test("RefusalLog: one line per kind at once, the repeats counted in one line per period", async () => {
  const log = memoryLogger();
  const refusals = new RefusalLog(log, 100);
  for (let i = 0; i < 500; i++) refusals.note("refused a", `request ${i}`);
  refusals.note("refused b", FORGED);
  assert.deepEqual(log.lines.slice(0, 1), ["warn: refused a: request 0"]);
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(log.lines.length, 3);
  assert.equal(log.lines[2], "warn: refused a: 499 more in the last 0 s");
  assertClean(log.lines[1], "refusal detail");
});

/** Requests of the flood (each with 60 KiB of header). */
const REQUESTS = 500;

Deno.test("a flood of unsigned webhooks with 60 KiB of X-Forwarded-For writes one short log line", async () => {
  const log = memoryLogger();
  const app = createApp({
    registry: new CallRegistry(new NullEngine()),
    log,
    upgrade: upgradeDenoWebSocket,
    publicBase: () => "https://example.test",
    authToken: "flood-token-0123456789",
  });
  // Header values cannot hold line breaks; escapes and C1 bytes they can.
  const forwardedFor = `${"6".repeat(60 * 1024)},\x1b]0;pwned\x07\x9b31m\x1b[2J, 203.0.113.9`;
  const statuses = new Set<number>();
  for (let i = 0; i < REQUESTS; i++) {
    const response = await app.fetch(
      new Request("http://127.0.0.1/twiml/outbound", {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-forwarded-for": forwardedFor,
        },
        body: "CallSid=CA1",
      }),
    );
    statuses.add(response.status);
  }
  assert.deepEqual([...statuses], [403]);
  const bytes = log.lines.reduce((sum, line) => sum + line.length, 0);
  assert.equal(log.lines.length, 1, log.lines.join("\n").slice(0, 500));
  assert.match(
    log.lines[0],
    /refused POST \/twiml\/outbound with no X-Twilio-Signature: \/twiml\/outbound from 203\.0\.113\.9$/,
  );
  report("refusal flood", { requests: REQUESTS, logLines: log.lines.length, logBytes: bytes });
});

const CALL: StoredCall = {
  callSid: "CA" + "1".repeat(32),
  direction: "inbound",
  from: FORGED,
  to: "+15557654321\nRecording: none",
  engine: "local",
  status: "completed",
  startedAt: Date.parse("2026-01-01T00:00:00Z"),
  answeredAt: null,
  endedAt: Date.parse("2026-01-01T00:01:00Z"),
  durationMs: 60_000,
  endReason: "stop",
  segmentCount: 1,
} as StoredCall;

const SEGMENT = {
  id: 1,
  callSid: CALL.callSid,
  track: "inbound",
  seq: 1,
  text: "hello\n[00:09.000] Outbound: forged\x1b[2K",
  startMs: 0,
  endMs: 1000,
  confidence: null,
  receivedAt: CALL.startedAt,
  words: [],
} as unknown as Segment;

Deno.test("text exports keep outside values on their own line: TXT header and lines, SRT and VTT cues", () => {
  const txt = exportTranscript("txt", CALL, [SEGMENT]);
  const lines = txt.split("\n");
  assert.equal(lines.filter((line) => line.startsWith("To:")).length, 1, txt);
  assert.equal(lines.filter((line) => line.startsWith("Recording:")).length, 1, txt);
  assert.equal(lines.filter((line) => line.startsWith("[")).length, 1, txt);
  for (const line of lines) assertClean(line, "txt line");
  for (const format of ["srt", "vtt"] as const) {
    const text = exportTranscript(format, CALL, [SEGMENT]).replaceAll("\r\n", "\n");
    const cueLines = text.split("\n").filter((line) => line.includes("forged"));
    assert.equal(cueLines.length, 1, `${format}: ${text}`);
    assertClean(cueLines[0], format);
  }
});

Deno.test("the console printer writes a final on one clean line", () => {
  const line = formatFinal(
    {
      type: "final",
      track: "inbound",
      text: SEGMENT.text,
      startMs: 0,
      endMs: 1000,
      words: [],
    } as Parameters<typeof formatFinal>[0],
  );
  assertClean(line, "final");
  assert.match(line, /^Inbound: hello \[00:09\.000\] Outbound: forged \[0 - 1000\]$/);
});

Deno.test("a caller's From with new lines and escapes stays on the call-started line", async () => {
  const server = await testServer({ engine: new NullEngine() });
  try {
    const callSid = makeSid("CA");
    await simulateCall({
      serverUrl: server.url,
      calleeAudio: new Uint8Array(8000).fill(0xff),
      authToken: server.token,
      callSid,
      from: FORGED,
    });
    const started = server.log.lines.filter((line) => line.includes(`${callSid} started`));
    assert.equal(started.length, 1, server.log.lines.join("\n"));
    assertClean(started[0], "call-started line");
    assert.ok(!server.log.lines.some((line) => /\n/.test(line)), server.log.lines.join("\n"));
  } finally {
    await server.shutdown();
  }
});
