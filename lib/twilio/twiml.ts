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
  });
  const bridge = response.connect().stream({ url: options.audioUrl });
  for (const [name, value] of Object.entries(options.parameters)) {
    stream.parameter({ name, value });
    bridge.parameter({ name, value });
  }
  return response.toString();
}

/** The stream URLs under a public base: `https://host/x` → `wss://host/x/stream` and `…/audio`. */
export function streamUrls(publicUrl: string): { streamUrl: string; audioUrl: string } {
  const url = new URL(publicUrl);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`public URL must be http(s)://…, got ${publicUrl}`);
  }
  const base = `${url.protocol === "https:" ? "wss:" : "ws:"}//${url.host}${
    url.pathname.replace(/\/$/, "")
  }`;
  return { streamUrl: `${base}/stream`, audioUrl: `${base}/audio` };
}

/** A `<Stream>` as the simulator needs it. */
export interface ParsedStream {
  name?: string;
  url: string;
  track?: string;
  parameters: Record<string, string>;
}

/** The streams a TwiML document asks for. */
export interface ParsedStreamTwiml {
  start?: ParsedStream;
  connect?: ParsedStream;
}

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
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
    if (entity.startsWith("#x")) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith("#")) return String.fromCodePoint(Number(entity.slice(1)));
    return ENTITIES[entity];
  });
}

/** A strict little XML reader: elements and attributes only (TwiML for streams has no text). */
function parseXml(xml: string): XmlElement {
  const root: XmlElement = { name: "#root", attributes: {}, children: [] };
  const stack = [root];
  const tag =
    /<(\/?)([A-Za-z][\w.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|<\?[^>]*\?>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let match = tag.exec(xml); match; match = tag.exec(xml)) {
    if (xml.slice(last, match.index).trim()) {
      throw new Error(`TwiML: unexpected text before <${match[2] ?? "?"}>`);
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
    const element = { name, attributes, children: [] };
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
  }
  return result;
}
