/**
 * The browser softphone: the dashboard as the laptop leg of a live call.
 *
 * Every call has one bidirectional `/audio` stream (Twilio's
 * `<Connect><Stream>`). Its {@link LaptopAudioStream} offers the call's leg
 * here; a browser tab on the call page takes it over one WebSocket,
 * `GET /api/calls/<CallSid>/softphone`, opened with the dashboard session
 * (the route's group checks it at the upgrade) from this server's own page
 * (the Origin is checked here: a WebSocket is a GET, which the cross-site
 * middleware lets through). The server relays:
 *
 * - call → browser: each 20 ms µ-law frame from Twilio, decoded to 16-bit
 *   PCM at 8 kHz, as one binary message;
 * - browser → call: binary messages of 16-bit PCM at 8 kHz, encoded to
 *   µ-law and sent to Twilio as `media`.
 *
 * The browser resamples (its AudioWorklet knows the device rate, and the
 * server spends no per-call DSP); the G.711 codec stays here, in its one copy.
 *
 * One laptop leg per call: the ffmpeg bridge (taken when the stream starts)
 * or one browser tab, never both; a second is refused with a reason. A tab
 * that closes frees the leg; the call goes on.
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { mulawDecode, mulawEncode } from "../audio/mulaw.ts";
import type { Logger } from "../log.ts";
import { mediaMessage } from "../twilio/protocol.ts";
import type { AppEnv, RouteGroup } from "./route_group.ts";
import { crossSiteProblem } from "./same_origin.ts";

/** Close code of a leg refused because the call's laptop leg is taken or not there. */
export const LEG_REFUSED = 4409;

/** Largest browser message: 200 ms of 16-bit PCM at 8 kHz (the page sends 20 ms). */
export const MAX_BROWSER_MESSAGE_BYTES = 3200;

/**
 * Audio a tab may send ahead of the clock (ms): a burst after a stall is let through up to this,
 * the rest dropped, so Twilio never queues seconds of the laptop's voice behind the call.
 */
export const MAX_AHEAD_MS = 2000;

/** Past this much unsent to a browser that stopped reading, the call's frames are dropped for it. */
const MAX_BROWSER_BACKLOG_BYTES = 256 * 1024;

/** What the softphone needs from a call's `/audio` stream. */
export interface LegStream {
  callSid: string;
  streamSid: string;
  /** Sends one text message to Twilio on the `/audio` socket. */
  send(text: string): void;
  /** True when the ffmpeg bridge has this call's leg. */
  bridged: boolean;
}

/** A call's leg as the `/audio` stream holds it. */
export interface OfferedLeg {
  /** True while a browser tab holds the leg (it plays what comes). */
  readonly held: boolean;
  /** One µ-law frame from the call, for the browser holding the leg (if any). */
  play(mulaw: Uint8Array): void;
  /** The `/audio` stream ended: the browser is told and the leg goes. */
  end(): void;
}

interface Leg {
  stream: LegStream;
  browser: WebSocket | null;
}

/** Offers each call's laptop leg to one browser tab at a time, and serves the softphone socket. */
export class Softphone {
  readonly #log: Logger;
  readonly #legs = new Map<string, Leg>();
  readonly #publicOrigins: () => string[];
  readonly #sessionOf: (c: Context<AppEnv>) => string | undefined;
  /** Open sockets by the dashboard session that opened them (logout closes them). */
  readonly #bySession = new Map<string, Set<WebSocket>>();

  /**
   * `publicOrigins`: origins of this server's pages besides the request's own Host;
   * `sessionOf`: the dashboard session of a request, if it has one (not a bearer token).
   */
  constructor(options: {
    log: Logger;
    publicOrigins: () => string[];
    sessionOf?: (c: Context<AppEnv>) => string | undefined;
  }) {
    this.#log = options.log;
    this.#publicOrigins = options.publicOrigins;
    this.#sessionOf = options.sessionOf ?? (() => undefined);
  }

  /** The session logged out: its sockets are told and closed (their legs freed, calls go on). */
  closeSession(sessionId: string): void {
    const sockets = this.#bySession.get(sessionId);
    this.#bySession.delete(sessionId);
    for (const socket of sockets ?? []) {
      if (socket.readyState !== WebSocket.OPEN) continue;
      socket.send(JSON.stringify({ type: "ended", message: "you logged out" }));
      socket.close(1000, "logged out");
    }
  }

  /** True while a browser tab holds the call's leg. */
  inBrowser(callSid: string): boolean {
    return Boolean(this.#legs.get(callSid)?.browser);
  }

  /** The call's `/audio` stream started: its leg can be taken (unless the ffmpeg bridge has it). */
  offer(stream: LegStream): OfferedLeg {
    const leg: Leg = { stream, browser: null };
    this.#legs.set(stream.callSid, leg);
    const pcm = new Int16Array(160);
    return {
      get held() {
        return leg.browser?.readyState === WebSocket.OPEN;
      },
      play: (mulaw) => {
        const browser = leg.browser;
        if (!browser || browser.readyState !== WebSocket.OPEN) return;
        if (browser.bufferedAmount > MAX_BROWSER_BACKLOG_BYTES) return;
        const samples = mulaw.length === pcm.length ? pcm : new Int16Array(mulaw.length);
        mulawDecode(mulaw, samples);
        browser.send(samples.slice().buffer);
      },
      end: () => {
        if (this.#legs.get(stream.callSid) === leg) this.#legs.delete(stream.callSid);
        if (leg.browser?.readyState === WebSocket.OPEN) {
          leg.browser.send(JSON.stringify({ type: "ended", message: "the call has ended" }));
          leg.browser.close(1000, "the call has ended");
        }
        leg.browser = null;
      },
    };
  }

  /** Adds `GET /api/calls/:callSid/softphone` to `group` (which checks the dashboard credential). */
  register(group: RouteGroup): void {
    group.get("/api/calls/:callSid/softphone", (c) => this.#upgrade(c, c.req.param("callSid")));
  }

  #upgrade(c: Context<AppEnv>, callSid: string): Response {
    const problem = crossSiteProblem(c, this.#publicOrigins());
    if (problem) {
      this.#log.warn(`softphone: refused a socket for ${callSid.slice(0, 40)}: ${problem}`);
      throw new HTTPException(403, {
        res: Response.json({ error: `softphone refused: ${problem}; open the dashboard's page` }, {
          status: 403,
        }),
      });
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new HTTPException(426, {
        res: Response.json({ error: "the softphone route expects a WebSocket upgrade" }, {
          status: 426,
        }),
      });
    }
    const session = this.#sessionOf(c);
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    socket.binaryType = "arraybuffer";
    if (session !== undefined) {
      const sockets = this.#bySession.get(session) ?? new Set();
      this.#bySession.set(session, sockets.add(socket));
      socket.addEventListener("close", () => {
        sockets.delete(socket);
        if (!sockets.size && this.#bySession.get(session) === sockets) {
          this.#bySession.delete(session);
        }
      });
    }
    socket.onopen = () => this.#attach(socket, callSid);
    socket.onerror = () => {};
    return response;
  }

  #attach(socket: WebSocket, callSid: string): void {
    const leg = this.#legs.get(callSid);
    const refusal = !leg
      ? "this call is not live on this server (ended, or its audio stream has not started)"
      : leg.stream.bridged
      ? "the server's own microphone and speaker (AUDIO_INPUT/AUDIO_OUTPUT) have this call's " +
        "laptop leg; one laptop leg per call"
      : leg.browser
      ? "another browser tab has this call's laptop leg; close it there first"
      : null;
    if (refusal || !leg) {
      socket.send(JSON.stringify({ type: "refused", message: refusal }));
      socket.close(LEG_REFUSED, (refusal ?? "").slice(0, 120));
      return;
    }
    leg.browser = socket;
    this.#log.info(`call ${callSid}: a browser took the laptop leg`);
    socket.send(JSON.stringify({ type: "ready", sampleRate: 8000 }));
    const readyAt = performance.now();
    let samplesSent = 0;
    let dropped = 0;
    socket.onmessage = (event) => {
      const data = event.data;
      if (!(data instanceof ArrayBuffer) || data.byteLength % 2 !== 0 || data.byteLength === 0) {
        return this.#drop(socket, leg, "expected binary 16-bit PCM frames at 8 kHz");
      }
      if (data.byteLength > MAX_BROWSER_MESSAGE_BYTES) {
        return this.#drop(
          socket,
          leg,
          `message of ${data.byteLength} bytes exceeds ${MAX_BROWSER_MESSAGE_BYTES}`,
        );
      }
      const samples = new Int16Array(data);
      const allowed = (performance.now() - readyAt + MAX_AHEAD_MS) * 8;
      if (samplesSent + samples.length > allowed) {
        if (dropped++ === 0) {
          this.#log.warn(
            `call ${callSid}: the browser sends audio faster than real time; ` +
              `what runs more than ${MAX_AHEAD_MS} ms ahead is dropped`,
          );
        }
        return;
      }
      samplesSent += samples.length;
      leg.stream.send(mediaMessage(leg.stream.streamSid, mulawEncode(samples)));
    };
    socket.onclose = () => {
      if (leg.browser !== socket) return;
      leg.browser = null;
      this.#log.info(`call ${callSid}: the browser left the laptop leg; the call goes on`);
    };
  }

  #drop(socket: WebSocket, leg: Leg, reason: string): void {
    this.#log.warn(`call ${leg.stream.callSid}: softphone socket closed: ${reason}`);
    if (leg.browser === socket) leg.browser = null;
    socket.close(1003, reason.slice(0, 120));
  }
}
