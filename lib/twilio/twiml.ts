/**
 * TwiML for a transcribed call, built with the `twilio` library's
 * `VoiceResponse`, and the small parser the simulator reads it back with.
 *
 * Twilio strips query strings from stream URLs, so call data travels as
 * `<Parameter>`s and arrives in the `start` message's `customParameters`.
 *
 * @module
 */
import twilio from "twilio";

/** What a transcribed call's TwiML holds. */
export interface StreamTwimlOptions {
  /** `wss://…/stream`: both tracks, unidirectional, for transcription. */
  streamUrl: string;
  /** `wss://…/audio`: the bidirectional laptop leg. */
  audioUrl: string;
  /** Call data passed to both streams. */
  parameters: Record<string, string>;
  /** Where Twilio posts the transcription stream's status events (started, stopped, error). */
  statusCallback?: string;
  /** Spoken with `<Say>` once transcription has started, before the call is bridged. */
  greeting?: string;
  /** `<Dial>` this number instead of bridging to the laptop (the Start Stream still transcribes). */
  forwardTo?: string;
}

/**
 * `<Start><Stream name="transcription" track="both_tracks">` then
 * `<Connect><Stream>`: transcribe both sides, and bridge the call to the laptop.
 */
export function streamTwiml(options: StreamTwimlOptions): string {
  const response = new twilio.twiml.VoiceResponse();
  const stream = response.start().stream({
    name: "transcription",
    track: "both_tracks",
    url: options.streamUrl,
    ...(options.statusCallback
      ? { statusCallback: options.statusCallback, statusCallbackMethod: "POST" }
      : {}),
  });
  if (options.greeting) response.say(options.greeting);
  const bridge = options.forwardTo ? null : response.connect().stream({ url: options.audioUrl });
  if (options.forwardTo) response.dial(options.forwardTo);
  for (const [name, value] of Object.entries(options.parameters)) {
    stream.parameter({ name, value });
    bridge?.parameter({ name, value });
  }
  return response.toString();
}

/**
 * The stream URLs under a public base: `https://host/x` → `wss://host/x/stream`
 * and `…/audio`, or the paths given (a call's own, with its tokens).
 */
export function streamUrls(
  publicUrl: string,
  paths: { stream: string; audio: string } = { stream: "/stream", audio: "/audio" },
): { streamUrl: string; audioUrl: string } {
  const url = new URL(publicUrl);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`public URL must be http(s)://…, got ${publicUrl}`);
  }
  const base = `${url.protocol === "https:" ? "wss:" : "ws:"}//${url.host}${
    url.pathname.replace(/\/$/, "")
  }`;
  return { streamUrl: `${base}${paths.stream}`, audioUrl: `${base}${paths.audio}` };
}

/** Paths Twilio posts status callbacks to, under the public base. */
export const STATUS_PATHS = { call: "/twilio/status", stream: "/twilio/stream-status" } as const;

/** Where a call's streams go: this instance's base, and each stream's per-call path. */
export interface CallStreams {
  /** INSTANCE_URL, else the public base. */
  base: () => string;
  /** The call's own path of a stream: `/stream/<CallSid>/<token>`, `/audio/<CallSid>/<token>`. */
  path: (callSid: string, kind: "transcription" | "audio") => string;
}

/**
 * The TwiML of a transcribed call: both tracks to the call's own `/stream/…`
 * URL on this instance (with stream status callbacks to the public base),
 * then the laptop leg on `/audio/…` — or a `<Dial>` when forwarding.
 */
export function callTwiml(
  publicBase: string,
  streams: CallStreams,
  callSid: string,
  parameters: Record<string, string>,
  extra: { greeting?: string; forwardTo?: string } = {},
): string {
  const { streamUrl, audioUrl } = streamUrls(streams.base(), {
    stream: streams.path(callSid, "transcription"),
    audio: streams.path(callSid, "audio"),
  });
  return streamTwiml({
    streamUrl,
    audioUrl,
    parameters,
    statusCallback: publicBase.replace(/\/$/, "") + STATUS_PATHS.stream,
    ...extra,
  });
}

/** A `<Stream>` as the simulator needs it. */
export interface ParsedStream {
  name?: string;
  url: string;
  track?: string;
  statusCallback?: string;
  parameters: Record<string, string>;
}

/** The streams a TwiML document asks for. */
export interface ParsedStreamTwiml {
  start?: ParsedStream;
  connect?: ParsedStream;
  /** The number of a `<Dial>`, if any. */
  dial?: string;
}

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

function unescapeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, entity: string) => {
    if (!entity.startsWith("#")) return ENTITIES[entity];
    const code = entity.startsWith("#x") ? parseInt(entity.slice(2), 16) : Number(entity.slice(1));
    // XML's Char: tab, newline, carriage return, and the rest minus surrogates, FFFE and FFFF.
    const char = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    if (!char) throw new Error(`TwiML: entity &${entity}; is not a character`);
    return String.fromCodePoint(code);
  });
}

/** The start of a malformed tag, for an error message. */
function describeTag(text: string): string {
  const line = text.split("\n")[0].trim();
  return line.length > 40 ? line.slice(0, 40) + "…" : line;
}

/** A strict little XML reader: elements, attributes and text (`<Say>`, `<Dial>`) only. */
function parseXml(xml: string): XmlElement {
  const root: XmlElement = { name: "#root", attributes: {}, children: [], text: "" };
  const stack = [root];
  const tag =
    /<(\/?)([A-Za-z][\w.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|<\?[^>]*\?>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let match = tag.exec(xml); match; match = tag.exec(xml)) {
    const text = xml.slice(last, match.index);
    if (text.trim()) {
      if (stack.length === 1) throw new Error(`TwiML: unexpected text before <${match[2] ?? "?"}>`);
      const broken = text.indexOf("<");
      if (broken !== -1) throw new Error(`TwiML: malformed tag ${describeTag(text.slice(broken))}`);
      stack.at(-1)!.text += unescapeXml(text);
    }
    last = tag.lastIndex;
    if (!match[2]) continue; // declaration or comment
    const [, closing, name, attributeText, selfClosing] = match;
    if (closing) {
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`TwiML: </${name}> does not match`);
      continue;
    }
    const attributes: Record<string, string> = {};
    for (const a of attributeText.matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      attributes[a[1]] = unescapeXml(a[2] ?? a[3]);
    }
    const element = { name, attributes, children: [], text: "" };
    stack.at(-1)!.children.push(element);
    if (!selfClosing) stack.push(element);
  }
  if (xml.slice(last).trim()) throw new Error("TwiML: unexpected text at the end");
  if (stack.length !== 1) throw new Error(`TwiML: <${stack.at(-1)!.name}> is not closed`);
  return root;
}

function readStream(element: XmlElement, verb: string): ParsedStream {
  const stream = element.children.find((c) => c.name === "Stream");
  if (!stream) throw new Error(`TwiML: <${verb}> has no <Stream>`);
  if (!stream.attributes.url) throw new Error(`TwiML: <${verb}><Stream> has no url`);
  const parameters: Record<string, string> = {};
  for (const p of stream.children) {
    if (p.name === "Parameter" && p.attributes.name !== undefined) {
      parameters[p.attributes.name] = p.attributes.value ?? "";
    }
  }
  return {
    name: stream.attributes.name,
    url: stream.attributes.url,
    track: stream.attributes.track,
    statusCallback: stream.attributes.statusCallback,
    parameters,
  };
}

/** Reads the `<Start><Stream>` and `<Connect><Stream>` of a TwiML document. */
export function parseStreamTwiml(xml: string): ParsedStreamTwiml {
  const response = parseXml(xml).children.find((c) => c.name === "Response");
  if (!response) throw new Error("TwiML: no <Response>");
  const result: ParsedStreamTwiml = {};
  for (const verb of response.children) {
    if (verb.name === "Start" && !result.start) result.start = readStream(verb, "Start");
    if (verb.name === "Connect" && !result.connect) result.connect = readStream(verb, "Connect");
    if (verb.name === "Dial" && result.dial === undefined) {
      const number = verb.children.find((c) => c.name === "Number");
      result.dial = (number ?? verb).text.trim();
    }
  }
  return result;
}
