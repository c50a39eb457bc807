/**
 * The media fast path reads what the strict parser reads: every message it
 * takes, {@link parseTwilioMessage} and base64 take too, with the same
 * fields and bytes; everything else it leaves to them (null).
 */
import assert from "node:assert/strict";
import { readMediaBytes } from "../lib/twilio/media_bytes.ts";
import { PayloadSlab } from "../lib/twilio/payload_slab.ts";
import { parseTwilioMessage, twilioMediaMessage } from "../lib/twilio/protocol.ts";
import { decodeBase64 } from "../lib/twilio/base64.ts";

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });
const SID = "MZ18ad3ab5a668481ce02b83e7395059f0";
const slab = new PayloadSlab();
const read = (bytes: Uint8Array) => readMediaBytes(bytes, slab);

/** What the strict path reads from `text`, as the fast path returns it; null where it throws. */
function strictRead(bytes: Uint8Array) {
  try {
    const message = parseTwilioMessage(utf8.decode(bytes));
    if (message.event !== "media") return null;
    const { sequenceNumber, media } = message;
    return { sequenceNumber, ...media, payload: decodeBase64(media.payload) };
  } catch {
    return null;
  }
}

function audio(length: number, seed = 7): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 37 + seed * 11) & 0xff;
  return bytes;
}

/** Pretty-printed, as in Twilio's Media Streams docs (event, sequenceNumber, media, streamSid). */
function twilioMessage(payload: Uint8Array, track = "inbound", sequence = "4", timestamp = "60") {
  return JSON.stringify(
    {
      event: "media",
      sequenceNumber: sequence,
      media: { track, chunk: "2", timestamp, payload: payload.toBase64() },
      streamSid: SID,
    },
    null,
    1,
  );
}

Deno.test("a media message is read as the strict parser reads it, as Twilio's docs and our simulator write it", () => {
  for (const length of [160, 159, 158, 1, 0, 320]) {
    const payload = audio(length);
    const simulated = twilioMediaMessage({
      streamSid: SID,
      sequenceNumber: 4,
      track: "inbound",
      chunk: 2,
      timestamp: 60,
      payload,
    });
    for (const text of [twilioMessage(payload), simulated]) {
      const bytes = encoder.encode(text);
      const fast = read(bytes);
      assert.ok(fast, `not read: ${text.slice(0, 80)}`);
      assert.deepEqual(fast, strictRead(bytes));
      assert.deepEqual(fast.payload, payload);
    }
  }
  const outbound = read(encoder.encode(twilioMessage(audio(160), "outbound", "9", "0")));
  assert.equal(outbound?.track, "outbound");
  assert.equal(outbound?.sequenceNumber, 9);
  assert.equal(outbound?.timestamp, 0);
});

Deno.test("whitespace and key order do not matter", () => {
  const payload = audio(160);
  const pretty = JSON.stringify(JSON.parse(twilioMessage(payload)), null, "\t");
  const reordered = `{ "streamSid" : "${SID}" ,"media":{"payload":"${payload.toBase64()}",` +
    `"timestamp":"60","chunk":"2","track":"inbound"},"sequenceNumber":"4","event":"media"}\r\n`;
  for (const text of [pretty, reordered]) {
    const bytes = encoder.encode(text);
    assert.deepEqual(read(bytes), strictRead(bytes));
    assert.ok(read(bytes));
  }
});

Deno.test("anything but the plain form is left to the strict parser", () => {
  const payload = audio(160).toBase64();
  const plain = twilioMediaMessage({
    streamSid: SID,
    sequenceNumber: 4,
    track: "inbound",
    chunk: 2,
    timestamp: 60,
    payload: audio(160),
  });
  const cases: Record<string, string> = {
    "an escaped slash in the payload": plain.replace(payload, payload.replaceAll("/", "\\/")),
    "an escaped letter in the sid": plain.replace(SID, "\\u004dZ" + SID.slice(1)),
    "a non-ASCII sid": plain.replace(SID, "MZé"),
    "an extra key": plain.replace('"event"', '"extra":"1","event"'),
    "an extra media key": plain.replace('"track"', '"extra":"1","track"'),
    "a duplicate key": plain.replace('"event":"media"', '"event":"stop","event":"media"'),
    "another event": plain.replace('"event":"media"', '"event":"mark"'),
    "a numeric timestamp": plain.replace('"timestamp":"60"', '"timestamp":60'),
    "an empty chunk": plain.replace('"chunk":"2"', '"chunk":""'),
    "16 digits": plain.replace('"timestamp":"60"', '"timestamp":"1234567890123456"'),
    "a signed number": plain.replace('"timestamp":"60"', '"timestamp":"-60"'),
    "another track": plain.replace('"inbound"', '"inbound_track"'),
    "base64 with a space": plain.replace(payload, payload.slice(0, 8) + " " + payload.slice(8)),
    "base64 without its padding": plain.replace(payload, payload.replace(/=+$/, "")),
    "base64 with a character outside it": plain.replace(payload, "*" + payload.slice(1)),
    "padding inside base64": plain.replace(payload, "AA==" + payload),
    "media not an object": plain.replace(/"media":\{[^}]*\}/, '"media":"x"'),
    "text after the object": plain + "x",
    "a second object": plain + plain,
    "a cut message": plain.slice(0, -1),
    "an array": `[${plain}]`,
    "nothing": "",
  };
  for (const [what, text] of Object.entries(cases)) {
    assert.equal(read(encoder.encode(text)), null, what);
  }
  // The strict parser, for its part, still takes some of them (and names the rest).
  assert.ok(strictRead(encoder.encode(cases["an escaped slash in the payload"])));
  assert.ok(strictRead(encoder.encode(cases["an extra key"])));
  assert.equal(strictRead(encoder.encode(cases["a numeric timestamp"])), null);
});

Deno.test("random damage: whatever the fast path takes, the strict parser takes and reads the same", () => {
  // A fixed generator: the same cases every run, and a failure can be replayed.
  let state = 12345;
  const random = (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
  const alphabet = encoder.encode(' "{}:,\\=/+Aa09\t\né');
  let taken = 0;
  for (let round = 0; round < 20000; round++) {
    const bytes = Array.from(encoder.encode(twilioMessage(audio(random(200), round))));
    for (let edits = 1 + random(3); edits > 0; edits--) {
      const at = random(bytes.length + 1);
      const kind = random(3);
      const byte = alphabet[random(alphabet.length)];
      if (kind === 0) bytes.splice(at, 1);
      else if (kind === 1) bytes.splice(at, 0, byte);
      else bytes[Math.min(at, bytes.length - 1)] = byte;
    }
    const message = Uint8Array.from(bytes);
    const fast = read(message);
    if (fast === null) continue;
    taken++;
    assert.deepEqual(fast, strictRead(message), utf8.decode(message));
  }
  // Damage that keeps a message valid (a space between tokens, a changed digit or letter) is taken.
  assert.ok(taken > 100, `only ${taken} damaged messages were taken`);
});
