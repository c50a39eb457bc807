/**
 * The Twilio Media Streams protocol, checked against the examples in Twilio's
 * "Media Streams - WebSocket Messages" page
 * (https://www.twilio.com/docs/voice/media-streams/websocket-messages), copied verbatim.
 */
import assert from "node:assert/strict";
import { decodeBase64, encodeBase64 } from "../lib/twilio/base64.ts";
import {
  clearMessage,
  connectedMessage,
  dtmfMessage,
  markMessage,
  mediaMessage,
  parseTwilioMessage,
  ProtocolError,
  startMessage,
  stopMessage,
  twilioMarkMessage,
  twilioMediaMessage,
} from "../lib/twilio/protocol.ts";

const SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
const ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
const CALL = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";

// Twilio's documented examples, exactly as published.

const DOC_CONNECTED = `{
  "event": "connected",
  "protocol": "Call",
  "version": "1.0.0"
}`;

const DOC_START = `{
  "event": "start",
  "sequenceNumber": "1",
  "start": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "tracks": ["inbound"],
    "mediaFormat": {
      "encoding": "audio/x-mulaw",
      "sampleRate": 8000,
      "channels": 1
    },
    "customParameters": {
      "FirstName": "Jane",
      "LastName": "Doe",
      "RemoteParty": "Bob"
    }
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}`;

const DOC_MEDIA_OUTBOUND = `{
  "event": "media",
  "sequenceNumber": "3",
  "media": {
    "track": "outbound",
    "chunk": "1",
    "timestamp": "5",
    "payload": "no+JhoaJjpz..."
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}`;

const DOC_MEDIA_INBOUND = `{
  "event": "media",
  "sequenceNumber": "4",
  "media": {
    "track": "inbound",
    "chunk": "2",
    "timestamp": "5",
    "payload": "no+JhoaJjpzS..."
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}`;

const DOC_STOP = `{
  "event": "stop",
  "sequenceNumber": "5",
  "stop": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}`;

const DOC_DTMF = `{
  "event": "dtmf",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "sequenceNumber": "5",
  "dtmf": {
    "track": "inbound_track",
    "digit": "1"
  }
}`;

const DOC_MARK = `{
  "event": "mark",
  "sequenceNumber": "4",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "mark": {
    "name": "my label"
  }
}`;

// What Twilio documents that we send on a bidirectional stream.
const DOC_SEND_MEDIA = `{
  "event": "media",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "media": {
    "payload": "a3242sa..."
  }
}`;

const DOC_SEND_MARK = `{
  "event": "mark",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "mark": {
    "name": "my label"
  }
}`;

const DOC_SEND_CLEAR = `{
  "event": "clear",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}`;

/** A documented message, changed by `edit` on its parsed JSON. */
// deno-lint-ignore no-explicit-any -- edits reach anywhere into the JSON, on purpose untyped
function edited(doc: string, edit: (message: Record<string, any>) => void): string {
  const message = JSON.parse(doc);
  edit(message);
  return JSON.stringify(message);
}

/** Asserts that parsing `text` throws a ProtocolError whose message matches `pattern`. */
function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseTwilioMessage(text),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${error}`);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

/** The field names and value types of a JSON value, recursively (key order aside). */
function keyShape(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return typeof value;
  if (Array.isArray(value)) return value.map(keyShape);
  return Object.entries(value).sort(([a], [b]) => a < b ? -1 : 1).map(([k, v]) => [k, keyShape(v)]);
}

// Parsing Twilio's documented messages.

Deno.test("parses Twilio's documented connected message", () => {
  assert.deepEqual(parseTwilioMessage(DOC_CONNECTED), {
    event: "connected",
    protocol: "Call",
    version: "1.0.0",
  });
});

Deno.test("parses Twilio's documented start message, sequenceNumber as a number", () => {
  assert.deepEqual(parseTwilioMessage(DOC_START), {
    event: "start",
    sequenceNumber: 1,
    streamSid: SID,
    start: {
      accountSid: ACCOUNT,
      streamSid: SID,
      callSid: CALL,
      tracks: ["inbound"],
      customParameters: { FirstName: "Jane", LastName: "Doe", RemoteParty: "Bob" },
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
  });
});

Deno.test("parses a start message with both tracks", () => {
  const message = parseTwilioMessage(
    edited(DOC_START, (m) => (m.start.tracks = ["inbound", "outbound"])),
  );
  assert.equal(message.event, "start");
  if (message.event === "start") assert.deepEqual(message.start.tracks, ["inbound", "outbound"]);
});

Deno.test("parses Twilio's documented outbound and inbound media messages", () => {
  assert.deepEqual(parseTwilioMessage(DOC_MEDIA_OUTBOUND), {
    event: "media",
    sequenceNumber: 3,
    streamSid: SID,
    media: { track: "outbound", chunk: 1, timestamp: 5, payload: "no+JhoaJjpz..." },
  });
  assert.deepEqual(parseTwilioMessage(DOC_MEDIA_INBOUND), {
    event: "media",
    sequenceNumber: 4,
    streamSid: SID,
    media: { track: "inbound", chunk: 2, timestamp: 5, payload: "no+JhoaJjpzS..." },
  });
});

Deno.test("parses large numeric strings exactly (an hour-long call)", () => {
  const message = parseTwilioMessage(edited(DOC_MEDIA_INBOUND, (m) => {
    m.sequenceNumber = "360001";
    m.media.chunk = "180000";
    m.media.timestamp = "3600000";
  }));
  assert.equal(message.event, "media");
  if (message.event !== "media") return;
  assert.equal(message.sequenceNumber, 360001);
  assert.equal(message.media.chunk, 180000);
  assert.equal(message.media.timestamp, 3600000);
});

Deno.test("parses Twilio's documented stop message", () => {
  assert.deepEqual(parseTwilioMessage(DOC_STOP), {
    event: "stop",
    sequenceNumber: 5,
    streamSid: SID,
    stop: { accountSid: ACCOUNT, callSid: CALL },
  });
});

Deno.test("parses Twilio's documented dtmf message; inbound_track becomes inbound", () => {
  assert.deepEqual(parseTwilioMessage(DOC_DTMF), {
    event: "dtmf",
    sequenceNumber: 5,
    streamSid: SID,
    dtmf: { track: "inbound", digit: "1" },
  });
});

Deno.test("parses Twilio's documented mark message", () => {
  assert.deepEqual(parseTwilioMessage(DOC_MARK), {
    event: "mark",
    sequenceNumber: 4,
    streamSid: SID,
    mark: { name: "my label" },
  });
});

// Rejections, each naming the field at fault.

Deno.test("rejects text that is not JSON", () => {
  rejects("", /not JSON/);
  rejects("{event: media}", /not JSON/);
  rejects(DOC_MEDIA_INBOUND.slice(0, -1), /not JSON/);
});

Deno.test("rejects JSON that is not an object", () => {
  rejects("null", /message must be an object/);
  rejects("[]", /message must be an object/);
  rejects('"media"', /message must be an object/);
  rejects("42", /message must be an object/);
});

Deno.test("rejects unknown or missing events", () => {
  rejects(edited(DOC_MARK, (m) => (m.event = "clear")), /unknown event "clear"/);
  rejects(edited(DOC_MARK, (m) => (m.event = "Media")), /unknown event "Media"/);
  rejects(edited(DOC_MARK, (m) => delete m.event), /unknown event/);
});

Deno.test("rejects messages with missing fields, naming the field", () => {
  rejects(edited(DOC_CONNECTED, (m) => delete m.protocol), /message\.protocol must be a string/);
  rejects(edited(DOC_CONNECTED, (m) => delete m.version), /message\.version must be a string/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => delete m.media), /^media must be an object/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => delete m.streamSid), /message\.streamSid/);
  rejects(
    edited(DOC_MEDIA_INBOUND, (m) => delete m.sequenceNumber),
    /message\.sequenceNumber must be a string of digits, got nothing/,
  );
  rejects(edited(DOC_MEDIA_INBOUND, (m) => delete m.media.payload), /media\.payload/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => delete m.media.track), /media\.track/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => delete m.media.chunk), /media\.chunk/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => delete m.media.timestamp), /media\.timestamp/);
  rejects(edited(DOC_START, (m) => delete m.start), /^start must be an object/);
  rejects(edited(DOC_START, (m) => delete m.start.mediaFormat), /start\.mediaFormat/);
  rejects(edited(DOC_START, (m) => delete m.start.accountSid), /start\.accountSid/);
  rejects(edited(DOC_START, (m) => delete m.start.callSid), /start\.callSid/);
  rejects(edited(DOC_START, (m) => delete m.start.streamSid), /start\.streamSid/);
  rejects(edited(DOC_START, (m) => delete m.start.tracks), /start\.tracks/);
  rejects(edited(DOC_STOP, (m) => delete m.stop), /^stop must be an object/);
  rejects(edited(DOC_STOP, (m) => delete m.stop.callSid), /stop\.callSid/);
  rejects(edited(DOC_STOP, (m) => delete m.stop.accountSid), /stop\.accountSid/);
  rejects(edited(DOC_DTMF, (m) => delete m.dtmf), /^dtmf must be an object/);
  rejects(edited(DOC_DTMF, (m) => delete m.dtmf.digit), /dtmf\.digit/);
  rejects(edited(DOC_DTMF, (m) => delete m.dtmf.track), /dtmf\.track/);
  rejects(edited(DOC_MARK, (m) => delete m.mark), /^mark must be an object/);
  rejects(edited(DOC_MARK, (m) => delete m.mark.name), /mark\.name must be a string/);
});

Deno.test("rejects numeric fields sent as JSON numbers", () => {
  rejects(
    edited(DOC_MEDIA_INBOUND, (m) => (m.sequenceNumber = 4)),
    /message\.sequenceNumber must be a string of digits, got 4/,
  );
  rejects(edited(DOC_MEDIA_INBOUND, (m) => (m.media.chunk = 2)), /media\.chunk .*got 2/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => (m.media.timestamp = 5)), /media\.timestamp .*got 5/);
  rejects(edited(DOC_START, (m) => (m.sequenceNumber = 1)), /message\.sequenceNumber/);
  rejects(edited(DOC_STOP, (m) => (m.sequenceNumber = 5)), /message\.sequenceNumber/);
  rejects(edited(DOC_DTMF, (m) => (m.sequenceNumber = 5)), /message\.sequenceNumber/);
  rejects(edited(DOC_MARK, (m) => (m.sequenceNumber = 4)), /message\.sequenceNumber/);
});

Deno.test("rejects numeric fields that are not strings of digits", () => {
  for (const bad of ["", "-1", "1.5", "1e3", " 5", "5 ", "0x10", "five", "١٢"]) {
    rejects(
      edited(DOC_MEDIA_INBOUND, (m) => (m.media.timestamp = bad)),
      /media\.timestamp must be a string of digits/,
    );
    rejects(
      edited(DOC_MEDIA_INBOUND, (m) => (m.sequenceNumber = bad)),
      /message\.sequenceNumber must be a string of digits/,
    );
  }
  rejects(edited(DOC_MEDIA_INBOUND, (m) => (m.media.chunk = null)), /media\.chunk .*got null/);
  rejects(edited(DOC_MEDIA_INBOUND, (m) => (m.media.chunk = ["2"])), /media\.chunk/);
});

Deno.test("rejects a start message whose mediaFormat is not µ-law 8 kHz mono", () => {
  const cases: Array<(format: Record<string, unknown>) => void> = [
    (f) => (f.encoding = "audio/x-alaw"),
    (f) => (f.encoding = "audio/l16"),
    (f) => (f.sampleRate = 16000),
    (f) => (f.sampleRate = "8000"),
    (f) => (f.channels = 2),
    (f) => (f.channels = "1"),
    (f) => delete f.encoding,
  ];
  for (const change of cases) {
    rejects(edited(DOC_START, (m) => change(m.start.mediaFormat)), /start\.mediaFormat/);
  }
  rejects(edited(DOC_START, (m) => (m.start.mediaFormat = "audio/x-mulaw")), /start\.mediaFormat/);
});

Deno.test("rejects unknown tracks", () => {
  rejects(
    edited(DOC_MEDIA_INBOUND, (m) => (m.media.track = "inbound_track")),
    /media\.track must be "inbound" or "outbound", got "inbound_track"/,
  );
  rejects(edited(DOC_MEDIA_INBOUND, (m) => (m.media.track = "both")), /media\.track/);
  rejects(
    edited(DOC_START, (m) => (m.start.tracks = ["inbound", "both_tracks"])),
    /start\.tracks\[1\] must be "inbound" or "outbound", got "both_tracks"/,
  );
  rejects(edited(DOC_START, (m) => (m.start.tracks = [1])), /start\.tracks\[0\]/);
  rejects(
    edited(DOC_DTMF, (m) => (m.dtmf.track = "inbound")),
    /dtmf\.track must be "inbound_track", got "inbound"/,
  );
  rejects(edited(DOC_DTMF, (m) => (m.dtmf.track = "outbound_track")), /dtmf\.track/);
});

Deno.test("rejects a start message with no tracks", () => {
  rejects(edited(DOC_START, (m) => (m.start.tracks = [])), /start\.tracks must be a non-empty/);
  rejects(edited(DOC_START, (m) => (m.start.tracks = "inbound")), /start\.tracks/);
});

Deno.test("rejects a start message whose start.streamSid differs from streamSid", () => {
  rejects(
    edited(DOC_START, (m) => (m.start.streamSid = "MZYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY")),
    /start\.streamSid differs/,
  );
  rejects(edited(DOC_START, (m) => delete m.streamSid), /message\.streamSid/);
});

Deno.test("rejects non-string customParameters", () => {
  rejects(
    edited(DOC_START, (m) => (m.start.customParameters.Age = 42)),
    /start\.customParameters\.Age must be a string/,
  );
  rejects(
    edited(DOC_START, (m) => (m.start.customParameters.Nested = { a: "b" })),
    /start\.customParameters\.Nested/,
  );
  rejects(
    edited(DOC_START, (m) => (m.start.customParameters.Missing = null)),
    /start\.customParameters\.Missing/,
  );
  rejects(
    edited(DOC_START, (m) => (m.start.customParameters = ["Jane"])),
    /start\.customParameters must be an object/,
  );
});

Deno.test("a start message without customParameters has none", () => {
  const message = parseTwilioMessage(edited(DOC_START, (m) => delete m.start.customParameters));
  assert.equal(message.event, "start");
  if (message.event === "start") assert.deepEqual(message.start.customParameters, {});
});

Deno.test("customParameters keep names that look like Object.prototype members", () => {
  const message = parseTwilioMessage(edited(DOC_START, (m) => {
    m.start.customParameters = JSON.parse('{"__proto__":"p","constructor":"c","toString":"t"}');
  }));
  assert.equal(message.event, "start");
  if (message.event !== "start") return;
  const parameters = message.start.customParameters;
  assert.deepEqual(Object.keys(parameters).sort(), ["__proto__", "constructor", "toString"]);
  assert.equal(parameters["__proto__"], "p");
  assert.equal(parameters.constructor, "c");
  assert.equal(parameters.toString, "t");
});

// Base64 payloads.

Deno.test("decodeBase64 reads payloads and rejects anything that is not base64", () => {
  assert.deepEqual(decodeBase64("/wB/gA=="), new Uint8Array([0xff, 0x00, 0x7f, 0x80]));
  assert.deepEqual(decodeBase64(""), new Uint8Array());
  assert.equal(encodeBase64(new Uint8Array([0xff, 0x00, 0x7f, 0x80])), "/wB/gA==");
  for (const bad of ["no+JhoaJjpz...", "a3242sa...", "@@@@", "/wB/gA==/wB", "_-_-"]) {
    assert.throws(
      () => decodeBase64(bad),
      (error: unknown) =>
        error instanceof ProtocolError && /media\.payload is not valid base64/.test(error.message),
      bad,
    );
  }
});

Deno.test("base64 round-trips every byte value", () => {
  const bytes = Uint8Array.from({ length: 256 * 3 + 1 }, (_, i) => (i * 7) & 0xff);
  assert.deepEqual(decodeBase64(encodeBase64(bytes)), bytes);
});

// Builders for what Twilio sends (the simulator) parse back to the same values.

Deno.test("connectedMessage parses back as Twilio's documented connected message", () => {
  assert.deepEqual(parseTwilioMessage(connectedMessage()), parseTwilioMessage(DOC_CONNECTED));
});

Deno.test("startMessage parses back to the same values", () => {
  const fields = {
    streamSid: SID,
    accountSid: ACCOUNT,
    callSid: CALL,
    sequenceNumber: 1,
    tracks: ["inbound" as const, "outbound" as const],
    customParameters: { FirstName: "Jane", note: 'a & b < "c"' },
  };
  assert.deepEqual(parseTwilioMessage(startMessage(fields)), {
    event: "start",
    sequenceNumber: 1,
    streamSid: SID,
    start: {
      accountSid: ACCOUNT,
      streamSid: SID,
      callSid: CALL,
      tracks: ["inbound", "outbound"],
      customParameters: { FirstName: "Jane", note: 'a & b < "c"' },
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
  });
  // With the documented example's values, the builder gives the documented message.
  const docs = parseTwilioMessage(DOC_START);
  assert.equal(docs.event, "start");
  if (docs.event !== "start") return;
  const documentedValues = {
    ...fields,
    tracks: docs.start.tracks,
    customParameters: docs.start.customParameters,
  };
  assert.deepEqual(parseTwilioMessage(startMessage(documentedValues)), docs);
  assert.deepEqual(JSON.parse(startMessage(documentedValues)), JSON.parse(DOC_START));
});

Deno.test("twilioMediaMessage parses back to the same values and decodes to the same bytes", () => {
  const payload = Uint8Array.from({ length: 160 }, (_, i) => (i * 37) & 0xff);
  for (const track of ["inbound", "outbound"] as const) {
    const text = twilioMediaMessage({
      streamSid: SID,
      sequenceNumber: 4,
      track,
      chunk: 2,
      timestamp: 20,
      payload,
    });
    const message = parseTwilioMessage(text);
    assert.deepEqual(message, {
      event: "media",
      sequenceNumber: 4,
      streamSid: SID,
      media: { track, chunk: 2, timestamp: 20, payload: encodeBase64(payload) },
    });
    if (message.event === "media") assert.deepEqual(decodeBase64(message.media.payload), payload);
    assert.deepEqual(keyShape(JSON.parse(text)), keyShape(JSON.parse(DOC_MEDIA_INBOUND)));
  }
});

Deno.test("twilioMarkMessage parses back to the same values", () => {
  const text = twilioMarkMessage({ streamSid: SID, sequenceNumber: 4, name: "my label" });
  assert.deepEqual(parseTwilioMessage(text), parseTwilioMessage(DOC_MARK));
  assert.deepEqual(JSON.parse(text), JSON.parse(DOC_MARK));
});

Deno.test("dtmfMessage parses back to the same values", () => {
  const text = dtmfMessage({ streamSid: SID, sequenceNumber: 5, digit: "1" });
  assert.deepEqual(parseTwilioMessage(text), parseTwilioMessage(DOC_DTMF));
  assert.deepEqual(JSON.parse(text), JSON.parse(DOC_DTMF));
  for (const digit of ["0", "9", "*", "#"]) {
    const message = parseTwilioMessage(dtmfMessage({ streamSid: SID, sequenceNumber: 7, digit }));
    assert.deepEqual(message, {
      event: "dtmf",
      sequenceNumber: 7,
      streamSid: SID,
      dtmf: { track: "inbound", digit },
    });
  }
});

Deno.test("stopMessage parses back to the same values", () => {
  const text = stopMessage({
    streamSid: SID,
    sequenceNumber: 5,
    accountSid: ACCOUNT,
    callSid: CALL,
  });
  assert.deepEqual(parseTwilioMessage(text), parseTwilioMessage(DOC_STOP));
  assert.deepEqual(JSON.parse(text), JSON.parse(DOC_STOP));
});

Deno.test("builders escape stream SIDs and names that need it", () => {
  const sid = 'MZ"\\\n';
  const media = parseTwilioMessage(twilioMediaMessage({
    streamSid: sid,
    sequenceNumber: 2,
    track: "inbound",
    chunk: 1,
    timestamp: 0,
    payload: new Uint8Array([1]),
  }));
  assert.equal(media.event === "media" && media.streamSid, sid);
  const mark = parseTwilioMessage(
    twilioMarkMessage({ streamSid: sid, sequenceNumber: 3, name: sid }),
  );
  assert.deepEqual(mark.event === "mark" && [mark.streamSid, mark.mark.name], [sid, sid]);
  assert.deepEqual(JSON.parse(mediaMessage(sid, new Uint8Array([1]))).streamSid, sid);
});

// What we send to Twilio: exactly the documented shapes.

Deno.test("mediaMessage is exactly Twilio's documented outgoing media message", () => {
  const payload = new Uint8Array([0xff, 0x7f, 0x00, 0x80, 0x12]);
  const text = mediaMessage(SID, payload);
  assert.deepEqual(JSON.parse(text), {
    event: "media",
    streamSid: SID,
    media: { payload: encodeBase64(payload) },
  });
  assert.equal(text, `{"event":"media","streamSid":"${SID}","media":{"payload":"/38AgBI="}}`);
  assert.deepEqual(keyShape(JSON.parse(text)), keyShape(JSON.parse(DOC_SEND_MEDIA)));
  assert.deepEqual(decodeBase64(JSON.parse(text).media.payload), payload);
  // 20 ms of µ-law silence, as we would play it.
  const silence = new Uint8Array(160).fill(0xff);
  assert.deepEqual(decodeBase64(JSON.parse(mediaMessage(SID, silence)).media.payload), silence);
});

Deno.test("markMessage is exactly Twilio's documented outgoing mark message", () => {
  const text = markMessage(SID, "my label");
  assert.deepEqual(JSON.parse(text), JSON.parse(DOC_SEND_MARK));
  assert.equal(text, JSON.stringify(JSON.parse(DOC_SEND_MARK)));
});

Deno.test("clearMessage is exactly Twilio's documented clear message", () => {
  const text = clearMessage(SID);
  assert.deepEqual(JSON.parse(text), JSON.parse(DOC_SEND_CLEAR));
  assert.equal(text, JSON.stringify(JSON.parse(DOC_SEND_CLEAR)));
});

Deno.test("a mark we send comes back from Twilio with the same name", () => {
  const sent = JSON.parse(markMessage(SID, "utterance-7"));
  const echo = parseTwilioMessage(
    twilioMarkMessage({ streamSid: sent.streamSid, sequenceNumber: 9, name: sent.mark.name }),
  );
  assert.deepEqual(echo, {
    event: "mark",
    sequenceNumber: 9,
    streamSid: SID,
    mark: { name: "utterance-7" },
  });
});
