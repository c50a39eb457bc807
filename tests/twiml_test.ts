/**
 * TwiML for a transcribed call: `<Start><Stream>` for transcription and
 * `<Connect><Stream>` for the laptop leg, and the simulator's strict reader.
 */
import assert from "node:assert/strict";
import { parseStreamTwiml, streamTwiml, streamUrls } from "../lib/twilio/twiml.ts";

const STREAM_URL = "wss://calls.example.com/stream";
const AUDIO_URL = "wss://calls.example.com/audio";
const PARAMETERS = { callId: "c-42", to: "+18005551212" };

function twiml(parameters: Record<string, string> = PARAMETERS): string {
  return streamTwiml({ streamUrl: STREAM_URL, audioUrl: AUDIO_URL, parameters });
}

/** `parseStreamTwiml(xml)` without the attributes it did not find (they read as undefined). */
function parse(xml: string): unknown {
  return JSON.parse(JSON.stringify(parseStreamTwiml(xml)));
}

/** Asserts that `parseStreamTwiml(xml)` throws an Error whose message matches `pattern`. */
function rejects(xml: string, pattern: RegExp): void {
  assert.throws(
    () => parseStreamTwiml(xml),
    (error: unknown) => {
      assert.ok(error instanceof Error, `expected an Error, got ${error}`);
      assert.match(error.message, /^TwiML: /);
      assert.match(error.message, pattern);
      return true;
    },
    xml,
  );
}

// streamTwiml

Deno.test("streamTwiml starts a both-tracks transcription stream with the parameters", () => {
  const xml = twiml();
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><Response>'), xml);
  assert.ok(xml.endsWith("</Response>"), xml);
  assert.ok(
    xml.includes(
      `<Start><Stream name="transcription" track="both_tracks" url="${STREAM_URL}">` +
        '<Parameter name="callId" value="c-42"/>' +
        '<Parameter name="to" value="+18005551212"/>' +
        "</Stream></Start>",
    ),
    xml,
  );
});

Deno.test("streamTwiml then connects the call to the audio stream with the same parameters", () => {
  const xml = twiml();
  assert.ok(
    xml.includes(
      `<Connect><Stream url="${AUDIO_URL}">` +
        '<Parameter name="callId" value="c-42"/>' +
        '<Parameter name="to" value="+18005551212"/>' +
        "</Stream></Connect>",
    ),
    xml,
  );
  // <Start> must come first: <Connect> blocks, so nothing after it would run.
  assert.ok(xml.indexOf("<Start>") < xml.indexOf("<Connect>"), xml);
  assert.equal(xml.indexOf("</Connect>") + "</Connect>".length, xml.indexOf("</Response>"));
});

Deno.test("streamTwiml escapes &, < and quotes in parameter values", () => {
  const xml = twiml({ note: `Tom & Jerry <3 "quoted"` });
  assert.ok(
    xml.includes('<Parameter name="note" value="Tom &amp; Jerry &lt;3 &quot;quoted&quot;"/>'),
    xml,
  );
  assert.ok(!xml.includes("Tom & Jerry"), xml);
  assert.ok(!xml.includes("<3"), xml);
});

Deno.test("streamTwiml with no parameters has no <Parameter>", () => {
  const xml = twiml({});
  assert.ok(!xml.includes("<Parameter"), xml);
  assert.deepEqual(parse(xml), {
    start: { name: "transcription", url: STREAM_URL, track: "both_tracks", parameters: {} },
    connect: { url: AUDIO_URL, parameters: {} },
  });
});

Deno.test("streamTwiml parses back through parseStreamTwiml to the same data", () => {
  const parameters = {
    callId: "c-42",
    note: `Tom & Jerry <3 "quoted" 'single' > done`,
    empty: "",
    unicode: "Zoë — 電話 🎧",
    spaces: "  two  spaces  ",
  };
  const stream = "wss://calls.example.com/x?a=1&b=2";
  const audio = "wss://calls.example.com/audio";
  const parsed = parse(streamTwiml({ streamUrl: stream, audioUrl: audio, parameters }));
  assert.deepEqual(parsed, {
    start: { name: "transcription", url: stream, track: "both_tracks", parameters },
    connect: { url: audio, parameters },
  });
});

// streamUrls

Deno.test("streamUrls turns an https base into wss stream and audio URLs", () => {
  const expected = {
    streamUrl: "wss://calls.example.com/stream",
    audioUrl: "wss://calls.example.com/audio",
  };
  assert.deepEqual(streamUrls("https://calls.example.com"), expected);
  assert.deepEqual(streamUrls("https://calls.example.com/"), expected);
});

Deno.test("streamUrls turns an http base into ws URLs", () => {
  const expected = {
    streamUrl: "ws://localhost:8080/stream",
    audioUrl: "ws://localhost:8080/audio",
  };
  assert.deepEqual(streamUrls("http://localhost:8080"), expected);
  assert.deepEqual(streamUrls("http://localhost:8080/"), expected);
});

Deno.test("streamUrls keeps a base path, with or without a trailing slash", () => {
  const expected = {
    streamUrl: "wss://abc.ngrok.app/callscribe/v1/stream",
    audioUrl: "wss://abc.ngrok.app/callscribe/v1/audio",
  };
  assert.deepEqual(streamUrls("https://abc.ngrok.app/callscribe/v1"), expected);
  assert.deepEqual(streamUrls("https://abc.ngrok.app/callscribe/v1/"), expected);
  assert.deepEqual(streamUrls("http://127.0.0.1:3000/x/"), {
    streamUrl: "ws://127.0.0.1:3000/x/stream",
    audioUrl: "ws://127.0.0.1:3000/x/audio",
  });
});

Deno.test("streamUrls keeps a non-default port and drops the default one", () => {
  assert.equal(streamUrls("https://h.example:8443/p").streamUrl, "wss://h.example:8443/p/stream");
  assert.equal(streamUrls("https://h.example:443/p").streamUrl, "wss://h.example/p/stream");
});

Deno.test("streamUrls rejects a base that is not http(s)", () => {
  for (const base of ["wss://calls.example.com", "ftp://calls.example.com", "file:///tmp/x"]) {
    assert.throws(() => streamUrls(base), /public URL must be http\(s\)/, base);
  }
  assert.throws(() => streamUrls("calls.example.com"));
  assert.throws(() => streamUrls(""));
});

// parseStreamTwiml: what it accepts

Deno.test("parseStreamTwiml accepts self-closing tags, single quotes, declaration, comments", () => {
  const xml = `<?xml version='1.0' encoding='UTF-8'?>
<!-- made by hand -->
<Response>
  <!-- transcription -->
  <Start>
    <Stream name='transcription' track = 'both_tracks' url='wss://h.example/stream' >
      <Parameter name='callId' value='c-1' />
      <Parameter name="quote" value='say "hi"'/>
    </Stream>
  </Start>
  <Connect>
    <Stream url="wss://h.example/audio"/>
  </Connect>
</Response>
`;
  assert.deepEqual(parse(xml), {
    start: {
      name: "transcription",
      url: "wss://h.example/stream",
      track: "both_tracks",
      parameters: { callId: "c-1", quote: 'say "hi"' },
    },
    connect: { url: "wss://h.example/audio", parameters: {} },
  });
});

Deno.test("parseStreamTwiml decodes named and numeric entities", () => {
  const xml = '<Response><Start><Stream url="wss://h.example/s?a=1&amp;b=2">' +
    '<Parameter name="n" value="&#65;&#x42;&#x1F3A7;&lt;&gt;&amp;&quot;&apos;"/>' +
    "</Stream></Start></Response>";
  assert.deepEqual(parse(xml), {
    start: { url: "wss://h.example/s?a=1&b=2", parameters: { n: `AB🎧<>&"'` } },
  });
});

Deno.test("parseStreamTwiml does not decode twice", () => {
  const xml = '<Response><Connect><Stream url="wss://h/a">' +
    '<Parameter name="n" value="&amp;lt;"/></Stream></Connect></Response>';
  assert.deepEqual(parseStreamTwiml(xml).connect?.parameters, { n: "&lt;" });
});

Deno.test("parseStreamTwiml reads only <Start> or only <Connect>, and skips other verbs", () => {
  const onlyStart = parse(
    '<Response><Say voice="alice">Hello</Say><Start><Stream url="wss://h/s"/></Start>' +
      '<Pause length="60"/></Response>',
  );
  assert.deepEqual(onlyStart, { start: { url: "wss://h/s", parameters: {} } });
  const onlyConnect = parse('<Response><Connect><Stream url="wss://h/a"/></Connect></Response>');
  assert.deepEqual(onlyConnect, { connect: { url: "wss://h/a", parameters: {} } });
  assert.deepEqual(parse("<Response/>"), {});
  assert.deepEqual(parse("<Response></Response>"), {});
});

// parseStreamTwiml: what it rejects

Deno.test("parseStreamTwiml rejects an unclosed tag", () => {
  rejects("<Response><Start>", /<Start> is not closed/);
  rejects(
    '<Response><Start><Stream url="wss://h/s"></Start></Response>',
    /<\/Start> does not match/,
  );
  rejects(twiml().replace("</Response>", ""), /<Response> is not closed/);
});

Deno.test("parseStreamTwiml rejects a mismatched close", () => {
  rejects("<Response></Start></Response>", /<\/Start> does not match/);
  rejects("<Response><Start></Connect></Response>", /<\/Connect> does not match/);
  rejects("<Response></Response></Response>", /<\/Response> does not match/);
  rejects("</Response>", /<\/Response> does not match/);
});

Deno.test("parseStreamTwiml rejects stray text", () => {
  rejects("junk<Response/>", /unexpected text before <Response>/);
  rejects('<?xml version="1.0"?>junk<Response/>', /unexpected text before <Response>/);
  rejects("<Response/>junk", /unexpected text at the end/);
  rejects("not xml at all", /unexpected text/);
  // Things that look like tags but are not well-formed are stray text too.
  rejects("<Response><Start><Stream url=wss://h/s/></Start></Response>", /malformed tag/);
  rejects('<Response><Start><Stream url="wss://h/s></Start></Response>', /malformed|not closed/);
  rejects("<Response><Start <Stream/></Start></Response>", /unexpected text|malformed/);
  // …even where text is allowed: a broken <Parameter> must not vanish silently.
  rejects(
    '<Response><Connect><Stream url="wss://h/a"><Parameter name=x value=y/></Stream></Connect>' +
      "</Response>",
    /malformed tag <Parameter name=x/,
  );
  rejects("<Response><Say>Hello <b</Say></Response>", /malformed tag/);
});

Deno.test("parseStreamTwiml rejects a document with no <Response>", () => {
  rejects("", /no <Response>/);
  rejects('<?xml version="1.0"?>', /no <Response>/);
  rejects('<Start><Stream url="wss://h/s"/></Start>', /no <Response>/);
  rejects("<response/>", /no <Response>/);
});

Deno.test("parseStreamTwiml rejects a <Stream> without a url", () => {
  rejects(
    '<Response><Start><Stream name="transcription"/></Start></Response>',
    /<Start><Stream> has no url/,
  );
  rejects(
    '<Response><Connect><Stream url=""/></Connect></Response>',
    /<Connect><Stream> has no url/,
  );
  rejects("<Response><Connect></Connect></Response>", /<Connect> has no <Stream>/);
});

Deno.test("parseStreamTwiml rejects numeric entities that are not characters", () => {
  rejects(
    '<Response><Start><Stream url="wss://h/&#x110000;"/></Start></Response>',
    /not a character|entity/,
  );
  rejects('<Response><Start><Stream url="wss://h/&#99999999999;"/></Start></Response>', /entity/);
  rejects('<Response><Start><Stream url="wss://h/&#0;"/></Start></Response>', /entity/);
  rejects('<Response><Start><Stream url="wss://h/&#xD800;"/></Start></Response>', /entity/);
});
