/**
 * The Twilio simulator: plays Twilio's part of a call against our server
 * over real HTTP and WebSockets, the way Twilio does it.
 *
 * It requests the TwiML webhook with a signed form POST, follows
 * `<Start><Stream>` (both tracks, unidirectional) and `<Connect><Stream>`
 * (bidirectional), opens both sockets with signed upgrades, and streams
 * 20 ms µ-law frames: the callee's audio on the inbound track, and on the
 * outbound track exactly what our server sent on the bidirectional stream
 * (silence when nothing is queued), echoing marks once their audio has
 * played and honouring `clear`.
 *
 * @module
 */
import { FRAME_BYTES, FRAME_MS, splitFrames } from "../audio/framing.ts";
import { MULAW_SILENCE } from "../audio/mulaw.ts";
import { decodeBase64 } from "../twilio/base64.ts";
import {
  connectedMessage,
  startMessage,
  stopMessage,
  twilioMarkMessage,
  twilioMediaMessage,
} from "../twilio/protocol.ts";
import { signRequest } from "../twilio/signature.ts";
import { parseStreamTwiml } from "../twilio/twiml.ts";
import { sleep } from "../async/sleep.ts";
import { waitAtMost } from "../async/wait_at_most.ts";

/** One simulated call. */
export interface SimulatedCallOptions {
  /** Where our server listens, e.g. `http://127.0.0.1:8080`. */
  serverUrl: string;
  /** The callee's speech (µ-law 8 kHz), played on the inbound track. */
  calleeAudio: Uint8Array;
  /** Signs every request like Twilio when set (must match the server's TWILIO_AUTH_TOKEN). */
  authToken?: string;
  /** Webhook path; `/twiml/outbound` by default. */
  twimlPath?: string;
  /** The call's TwiML, as given to the REST API (`Twiml=`): no webhook request is made. */
  twiml?: string;
  /** Twilio's `Direction` webhook parameter (default `outbound-api`). */
  direction?: "inbound" | "outbound-api";
  /** Hangs up early (a REST `Status=completed`): the streams get `stop` and close. */
  signal?: AbortSignal;
  from?: string;
  to?: string;
  callSid?: string;
  accountSid?: string;
  /** Silence after the callee's audio before hanging up, in ms (default 1000). */
  tailMs?: number;
  /** Run faster than real time: a recorded call transcribed as fast as the engine goes. */
  fast?: boolean;
  /**
   * Fast mode's backpressure: awaited between frames, resolving once the
   * server's engine has taken in the audio so far (an in-process server's
   * `engine.whenCaughtUp`). Without it, fast mode sends as fast as the
   * sockets go, which can outrun decoding.
   */
  caughtUp?: () => Promise<void> | undefined;
  /**
   * The HTTP client of the webhook and status-callback requests (default:
   * the process's pool, which keeps idle connections open on the server).
   */
  httpClient?: Deno.HttpClient;
}

/** What happened on the simulated call. */
export interface SimulatedCallResult {
  callSid: string;
  /** Frames sent per track on the transcription stream. */
  framesSent: number;
  /** Frames of our server's audio played on the outbound track. */
  outboundFramesPlayed: number;
  /** When each media message of our server arrived on the bidirectional stream (performance.now() ms). */
  serverMediaTimes: number[];
  /** Marks echoed back to our server. */
  marksEchoed: string[];
  /** Close code and reason our server gave each socket, if it closed first. */
  serverClosed: { stream?: string; audio?: string };
  /** Stream status callbacks posted (`StreamEvent`) with our server's HTTP status. */
  streamCallbacks: Array<{ event: string; status: number }>;
  /** The `<Dial>` number of the TwiML, if it forwarded the call. */
  dialed?: string;
  /** True when `signal` ended the call before the audio ran out. */
  hungUp: boolean;
}

/** The simulated call could not go on: our server refused it or could not be reached as its TwiML says. */
export class SimulatorError extends Error {
  override name = "SimulatorError";
}

/** Our server answered the call's TwiML webhook with an error status (403: a signature it refused). */
export class WebhookRefusedError extends SimulatorError {
  /** The HTTP status our server answered. */
  readonly status: number;

  constructor(url: string, status: number, body: string) {
    super(`simulator: ${url} answered ${status}: ${body.slice(0, 200)}`);
    this.status = status;
  }
}

/** A Twilio-style SID: two letters and 32 hex digits. */
export function makeSid(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The outbound queue of a bidirectional stream, as Twilio plays it: audio and marks in the order sent. */
export class PlaybackQueue {
  #items: Array<Uint8Array | string> = [];
  #partial: Uint8Array | null = null;

  push(item: Uint8Array | string): void {
    this.#items.push(item);
  }

  /** True while audio is queued. */
  get hasAudio(): boolean {
    return this.#partial !== null || this.#items.some((item) => typeof item !== "string");
  }

  /** Empties the queue (`clear`); returns the marks Twilio echoes for it. */
  clear(): string[] {
    const marks = this.#items.filter((i): i is string => typeof i === "string");
    this.#items = [];
    this.#partial = null;
    return marks;
  }

  /** Takes 20 ms of audio (or silence) and the marks reached after it. */
  next(): { frame: Uint8Array; audio: boolean; marks: string[] } {
    const frame = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
    const marks: string[] = [];
    let filled = 0;
    let audio = false;
    while (filled < FRAME_BYTES) {
      if (this.#partial) {
        const n = Math.min(FRAME_BYTES - filled, this.#partial.length);
        frame.set(this.#partial.subarray(0, n), filled);
        filled += n;
        audio = true;
        this.#partial = n < this.#partial.length ? this.#partial.subarray(n) : null;
        continue;
      }
      const item = this.#items.shift();
      if (item === undefined) break;
      if (typeof item === "string") marks.push(item);
      else this.#partial = item;
    }
    // Marks right behind the played audio are reached now, too.
    while (typeof this.#items[0] === "string" && !this.#partial) {
      marks.push(this.#items.shift() as string);
    }
    return { frame, audio, marks };
  }
}

/** Opens a WebSocket the way Twilio does: signed `wss://` URL, no params. */
async function openStream(url: string, authToken?: string): Promise<WebSocket> {
  const headers: Record<string, string> = {};
  if (authToken) headers["X-Twilio-Signature"] = signRequest(authToken, url, {});
  const socket = new WebSocket(url, { headers });
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (e) =>
      reject(
        new SimulatorError(
          `simulator: could not open ${url}: ${(e as ErrorEvent).message ?? "refused"}`,
        ),
      );
  });
  return socket;
}

/** Fast mode: how long a dry playback queue waits for our server's next audio. */
const FAST_DRY_WAIT_MS = 50;

/** Runs one call from the webhook to `stop`. */
export async function simulateCall(options: SimulatedCallOptions): Promise<SimulatedCallResult> {
  const callSid = options.callSid ?? makeSid("CA");
  const accountSid = options.accountSid ?? makeSid("AC");
  const base = options.serverUrl.replace(/\/$/, "");
  const webhookUrl = base + (options.twimlPath ?? "/twiml/outbound");
  const params: Record<string, string> = {
    AccountSid: accountSid,
    ApiVersion: "2010-04-01",
    CallSid: callSid,
    CallStatus: "in-progress",
    Direction: options.direction ?? "outbound-api",
    From: options.from ?? "+15005550006",
    To: options.to ?? "+15551234567",
  };
  let body = options.twiml;
  if (body === undefined) {
    const response = await postSigned(webhookUrl, params, options.authToken, options.httpClient);
    body = await response.text();
    if (!response.ok) throw new WebhookRefusedError(webhookUrl, response.status, body);
  }
  const twiml = parseStreamTwiml(body);
  if (!twiml.start) {
    throw new SimulatorError("simulator: the TwiML has no <Start><Stream> to transcribe");
  }

  const result: SimulatedCallResult = {
    callSid,
    framesSent: 0,
    outboundFramesPlayed: 0,
    serverMediaTimes: [],
    marksEchoed: [],
    serverClosed: {},
    streamCallbacks: [],
    dialed: twiml.dial,
    hungUp: false,
  };
  const streamStatus = async (event: string, streamSid: string) => {
    const url = twiml.start?.statusCallback;
    if (!url) return;
    const response = await postSigned(
      url,
      {
        AccountSid: accountSid,
        CallSid: callSid,
        StreamSid: streamSid,
        StreamName: twiml.start?.name ?? streamSid,
        StreamEvent: event,
        Timestamp: new Date().toISOString(),
      },
      options.authToken,
      options.httpClient,
    );
    await response.body?.cancel();
    result.streamCallbacks.push({ event, status: response.status });
  };
  const streamSocket = await openStream(twiml.start.url, options.authToken);
  const audioSocket = twiml.connect ? await openStream(twiml.connect.url, options.authToken) : null;
  const streamSid = makeSid("MZ");
  const audioSid = makeSid("MZ");
  const queue = new PlaybackQueue();
  // Resolved whenever our server's audio arrives (fast mode waits on it; see below).
  let audioArrived = Promise.withResolvers<void>();
  /** Fast mode: whether our server is still sending (it was, the last time the queue ran dry). */
  let serverSending = true;

  streamSocket.onclose = (e) => (result.serverClosed.stream = `${e.code} ${e.reason}`);
  if (audioSocket) {
    audioSocket.onclose = (e) => (result.serverClosed.audio = `${e.code} ${e.reason}`);
    audioSocket.onmessage = (e) => {
      const message = JSON.parse(String(e.data));
      if (message.event === "media") {
        result.serverMediaTimes.push(performance.now());
        queue.push(decodeBase64(message.media.payload));
        serverSending = true;
        audioArrived.resolve();
      } else if (message.event === "mark") {
        queue.push(message.mark.name);
      } else if (message.event === "clear") {
        for (const name of queue.clear()) echoMark(name);
      }
    };
  }
  let audioSequence = 1;
  const echoMark = (name: string) => {
    if (audioSocket?.readyState !== WebSocket.OPEN) return;
    audioSocket.send(
      twilioMarkMessage({ streamSid: audioSid, sequenceNumber: ++audioSequence, name }),
    );
    result.marksEchoed.push(name);
  };

  const send = (socket: WebSocket | null, text: string) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(text);
  };
  send(streamSocket, connectedMessage());
  send(
    streamSocket,
    startMessage({
      streamSid,
      accountSid,
      callSid,
      sequenceNumber: 1,
      tracks: ["inbound", "outbound"],
      customParameters: twiml.start.parameters,
    }),
  );
  await streamStatus("stream-started", streamSid);
  send(audioSocket, connectedMessage());
  send(
    audioSocket,
    startMessage({
      streamSid: audioSid,
      accountSid,
      callSid,
      sequenceNumber: 1,
      tracks: ["inbound"],
      customParameters: twiml.connect?.parameters ?? {},
    }),
  );

  // Faster than real time, our server's first audio must not race the clock.
  if (options.fast && audioSocket) await waitAtMost(audioArrived.promise, 300);

  const callee = splitFrames(options.calleeAudio);
  const tailFrames = Math.ceil((options.tailMs ?? 1000) / FRAME_MS);
  const total = callee.length + tailFrames;
  const silence = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
  const started = performance.now();
  let streamSequence = 1;
  for (let i = 0; i < total; i++) {
    if (streamSocket.readyState !== WebSocket.OPEN) break;
    if (options.signal?.aborted) {
      result.hungUp = true;
      break;
    }
    const inbound = callee[i] ?? silence;
    // Faster than real time, audio our server is still sending must not lose the race to the
    // clock either: when the queue runs dry, wait a moment once before playing silence.
    if (options.fast && audioSocket && serverSending && !queue.hasAudio) {
      audioArrived = Promise.withResolvers<void>();
      await waitAtMost(audioArrived.promise, FAST_DRY_WAIT_MS);
      if (!queue.hasAudio) serverSending = false;
    }
    const played = queue.next();
    if (played.audio) result.outboundFramesPlayed++;
    const timestamp = i * FRAME_MS;
    const chunk = i + 1;
    send(
      streamSocket,
      twilioMediaMessage({
        streamSid,
        sequenceNumber: ++streamSequence,
        track: "inbound",
        chunk,
        timestamp,
        payload: inbound,
      }),
    );
    send(
      streamSocket,
      twilioMediaMessage({
        streamSid,
        sequenceNumber: ++streamSequence,
        track: "outbound",
        chunk,
        timestamp,
        payload: played.frame,
      }),
    );
    send(
      audioSocket,
      twilioMediaMessage({
        streamSid: audioSid,
        sequenceNumber: ++audioSequence,
        track: "inbound",
        chunk,
        timestamp,
        payload: inbound,
      }),
    );
    for (const name of played.marks) echoMark(name);
    result.framesSent++;
    if (options.fast) {
      if (i % 10 === 9) {
        await sleep(0);
        await options.caughtUp?.();
      }
    } else {
      const wait = started + (i + 1) * FRAME_MS - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }

  send(
    streamSocket,
    stopMessage({ streamSid, sequenceNumber: ++streamSequence, accountSid, callSid }),
  );
  send(
    audioSocket,
    stopMessage({ streamSid: audioSid, sequenceNumber: ++audioSequence, accountSid, callSid }),
  );
  await Promise.all([closeSocket(streamSocket), audioSocket ? closeSocket(audioSocket) : null]);
  await streamStatus("stream-stopped", streamSid);
  return result;
}

/** A form POST signed the way Twilio signs its webhooks. */
export function postSigned(
  url: string,
  params: Record<string, string>,
  authToken?: string,
  client?: Deno.HttpClient,
): Promise<Response> {
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
  };
  if (authToken) headers["X-Twilio-Signature"] = signRequest(authToken, url, params);
  return fetch(url, { method: "POST", headers, body: new URLSearchParams(params), client });
}

/** Closes a socket and waits (bounded) until it is closed. */
async function closeSocket(socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return;
  const closed = new Promise<void>((resolve) => socket.addEventListener("close", () => resolve()));
  if (socket.readyState === WebSocket.OPEN) socket.close(1000, "call ended");
  await Promise.race([closed, sleep(2000)]);
}
