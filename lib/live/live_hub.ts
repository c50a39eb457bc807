/**
 * Live call events for the dashboard, as Server-Sent Events.
 *
 * Every event gets an id `<epoch>-<n>` (n increasing; the epoch changes with
 * each server start) and goes into a bounded ring. A page that reconnects
 * sends `Last-Event-ID`; what it missed comes from the ring, or, when the
 * ring no longer reaches back that far (or the server restarted), finals
 * are replayed from the store.
 *
 * With a {@link LiveBus} (many instances on one PostgreSQL) events go
 * through the bus instead, and come back from it, from every instance, with
 * the bus's ids: the same `Last-Event-ID` resumes on any instance.
 *
 * @module
 */
import type { Publisher } from "../call/pipeline.ts";
import type { Segment, StoredCall, TranscriptStore } from "../store/db.ts";

/** One event as the dashboard receives it. */
export interface LiveEvent {
  id: string;
  /** `call-started`, `partial`, `final`, `call-ended` or `call-error`. */
  type: string;
  callSid: string;
  data: Record<string, unknown>;
}

/** Carries live events between instances. */
export interface LiveBus {
  /** Sends an event to every instance (this one included); it comes back with its id. */
  publish(type: string, callSid: string, data: Record<string, unknown>): void;
  /** The events after `id`, or null when the bus no longer has them all. */
  since(id: string): Promise<LiveEvent[] | null>;
  /** Calls in progress on any instance, with their call-started data. */
  activeCalls(): Promise<Record<string, unknown>[]>;
}

const DEFAULT_RING = 2000;
const HEARTBEAT_MS = 15_000;
/** Event streams open at once, at most (each holds a connection); more get `503`. */
export const MAX_EVENT_STREAMS = 200;

/** The live event hub of one server. */
export class LiveHub {
  readonly epoch = Date.now().toString(36);
  #seq = 0;
  #ring: LiveEvent[] = [];
  #ringSize: number;
  #subscribers = new Set<(event: LiveEvent) => void>();
  #levelSubscribers = new Set<(event: LiveEvent) => void>();
  #closers = new Set<() => void>();
  #active = new Map<string, Record<string, unknown>>();
  #store?: TranscriptStore;
  #bus?: LiveBus;
  #lastId: string;
  #maxStreams: number;

  constructor(
    options: { store?: TranscriptStore; ringSize?: number; bus?: LiveBus; maxStreams?: number } =
      {},
  ) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#ringSize = options.ringSize ?? DEFAULT_RING;
    this.#maxStreams = options.maxStreams ?? MAX_EVENT_STREAMS;
    this.#lastId = this.#bus ? "0" : `${this.epoch}-0`;
  }

  /** The id of the newest event (`<epoch>-0`, or `0` on a bus, before any). */
  get lastId(): string {
    return this.#lastId;
  }

  /** Takes the calls already in progress on other instances (at start, from the bus). */
  async loadActive(): Promise<void> {
    for (const data of (await this.#bus?.activeCalls()) ?? []) {
      this.#active.set(data.callSid as string, data);
    }
  }

  /** Call SIDs in progress, with their call-started data. */
  get activeCalls(): Record<string, unknown>[] {
    return [...this.#active.values()];
  }

  /**
   * The hub's publisher, for the call-event pipeline. A final that was
   * stored is published with its stored id; on a bus, the bus publishes it
   * from inside the final's transaction (`../cluster/live_bus.ts`).
   */
  publisher(): Publisher {
    return (event, stored) => {
      const callSid = event.call.callSid;
      switch (event.type) {
        case "call-started": {
          const data = {
            callSid,
            direction: event.call.direction,
            from: event.call.from ?? null,
            to: event.call.to ?? null,
            startedAt: new Date(event.at).toISOString(),
          };
          this.#publish("call-started", callSid, data);
          return;
        }
        case "transcript": {
          const t = event.transcript;
          if (t.type === "final" && stored) {
            if (!this.#bus) this.publishSegment(stored);
            return;
          }
          this.#publish(t.type, callSid, {
            callSid,
            track: t.track,
            text: t.text,
            startMs: t.startMs,
            endMs: t.endMs,
          });
          return;
        }
        case "call-ended": {
          const started = this.#active.get(callSid);
          const startedAt = started ? Date.parse(started.startedAt as string) : event.at;
          this.#publish("call-ended", callSid, {
            callSid,
            reason: event.reason,
            status: "completed",
            endedAt: new Date(event.at).toISOString(),
            durationMs: Math.max(0, event.at - startedAt),
          });
          return;
        }
        case "call-error":
          this.#publish("call-error", callSid, { callSid, message: event.message });
      }
    };
  }

  /**
   * Publishes each track's current level (dBFS, null: nothing received) of a
   * live call, to {@link levelsSse} only: levels are of the moment, so they
   * have no id, skip the ring and are never replayed.
   */
  publishLevels(callSid: string, levels: Record<string, number | null>): void {
    const event = { id: "", type: "level", callSid, data: { callSid, ...levels } };
    for (const subscriber of this.#levelSubscribers) subscriber(event);
  }

  /** Publishes a stored final. */
  publishSegment(segment: Segment): void {
    this.#publish("final", segment.callSid, segmentData(segment));
  }

  /** Publishes the end of a call that was not ended by a registry (an interrupted one). */
  publishEnded(call: StoredCall): void {
    this.#publish("call-ended", call.callSid, {
      callSid: call.callSid,
      reason: call.endReason,
      status: call.status,
      endedAt: new Date(call.endedAt ?? Date.now()).toISOString(),
      durationMs: call.durationMs,
    });
  }

  #publish(type: string, callSid: string, data: Record<string, unknown>): void {
    if (this.#bus) this.#bus.publish(type, callSid, data);
    else this.deliver({ id: `${this.epoch}-${++this.#seq}`, type, callSid, data });
  }

  /** Hands an event to the dashboards (the bus calls this for every instance's events). */
  deliver(event: LiveEvent): void {
    if (event.type === "call-started") this.#active.set(event.callSid, event.data);
    if (event.type === "call-ended") {
      this.#active.delete(event.callSid);
      // Level streams end with the call (on whichever instance it ran).
      const { callSid } = event;
      for (const subscriber of [...this.#levelSubscribers]) {
        subscriber({ id: "", type: "call-ended", callSid, data: { callSid } });
      }
    }
    // Bus events of different instances may arrive slightly out of order: keep the newest id.
    if (!this.#bus || Number(event.id) > Number(this.#lastId)) this.#lastId = event.id;
    this.#ring.push(event);
    if (this.#ring.length > this.#ringSize) {
      this.#ring.splice(0, this.#ring.length - this.#ringSize);
    }
    for (const subscriber of this.#subscribers) subscriber(event);
  }

  /** The order number of an event id of this hub, or NaN (another epoch, or not an id). */
  #order(id: string): number {
    if (this.#bus) return /^\d+$/.test(id) ? Number(id) : NaN;
    const match = /^([0-9a-z]+)-(\d+)$/.exec(id);
    return match && match[1] === this.epoch ? Number(match[2]) : NaN;
  }

  /**
   * What a client that last saw `lastId` missed, for one call or all:
   * from the ring when it reaches back that far, else rebuilt from the store.
   */
  async missed(lastId: string | undefined, callSid?: string): Promise<LiveEvent[]> {
    if (!lastId) return [];
    const seq = this.#order(lastId);
    const newest = this.#order(this.#lastId);
    const oldest = this.#ring.length ? this.#order(this.#ring[0].id) : newest + 1;
    const concerned = (e: LiveEvent) => !callSid || e.callSid === callSid;
    // On a bus, events arrive in commit order, which is not id order (a lower id can commit
    // later): what follows the client's last event in the ring is what it missed.
    const at = this.#bus ? this.#ring.findIndex((e) => e.id === lastId) : -1;
    if (at >= 0) return this.#ring.slice(at + 1).filter(concerned);
    if (Number.isInteger(seq) && seq <= newest && seq >= oldest - 1) {
      return this.#ring.filter((e) => this.#order(e.id) > seq && concerned(e));
    }
    const fromBus = this.#bus && Number.isInteger(seq) ? await this.#bus.since(lastId) : null;
    return fromBus ? fromBus.filter(concerned) : this.#replay(callSid);
  }

  /** The state of the calls concerned, rebuilt: call-started, stored finals, call-ended. */
  async #replay(callSid?: string): Promise<LiveEvent[]> {
    const id = this.lastId;
    const events: LiveEvent[] = [];
    const sids = callSid ? [callSid] : [...this.#active.keys()];
    for (const sid of sids) {
      const stored = await this.#store?.getCall(sid);
      const segments = (await this.#store?.segments(sid)) ?? [];
      const active = this.#active.get(sid);
      if (active) events.push({ id, type: "call-started", callSid: sid, data: active });
      for (const segment of segments) {
        events.push({ id, type: "final", callSid: sid, data: segmentData(segment) });
      }
      if (!active && stored && stored.endedAt !== null) {
        events.push({
          id,
          type: "call-ended",
          callSid: sid,
          data: {
            callSid: sid,
            reason: stored.endReason,
            status: stored.status,
            endedAt: new Date(stored.endedAt).toISOString(),
            durationMs: stored.durationMs,
          },
        });
      }
    }
    return events;
  }

  /**
   * An SSE response: first what the client missed since `lastId`, then live
   * events (for one call when `callSid` is given) until the client goes away
   * (Deno cancels the body) or the hub closes.
   */
  sse(lastId: string | undefined, callSid?: string): Response {
    return this.#stream(() => this.missed(lastId, callSid), this.#subscribers, callSid);
  }

  /**
   * An SSE response of one call's `level` events (see {@link publishLevels}),
   * ended by `call-ended`: at once for a call that is not in progress.
   */
  levelsSse(callSid: string): Response {
    const ended = this.#active.has(callSid)
      ? []
      : [{ id: "", type: "call-ended", callSid, data: { callSid } }];
    return this.#stream(() => Promise.resolve(ended), this.#levelSubscribers, callSid, true);
  }

  /** Event streams open now. */
  get openStreams(): number {
    return this.#closers.size;
  }

  #stream(
    catchUp: () => Promise<LiveEvent[]>,
    subscribers: Set<(event: LiveEvent) => void>,
    callSid?: string,
    endsWithCall = false,
  ): Response {
    if (this.#closers.size >= this.#maxStreams) {
      return new Response(
        `too many live event streams open (${this.#maxStreams}); close some dashboard tabs or ` +
          "try again shortly\n",
        {
          status: 503,
          headers: { "content-type": "text/plain; charset=utf-8", "retry-after": "5" },
        },
      );
    }
    const encoder = new TextEncoder();
    let cleanup = () => {};
    const body = new ReadableStream<Uint8Array>({
      start: async (controller) => {
        const send = (text: string) => {
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            cleanup();
          }
        };
        // Events that arrive while the client is caught up wait for it.
        let pending: LiveEvent[] | null = [];
        const subscriber = (event: LiveEvent) => {
          if (callSid && event.callSid !== callSid) return;
          if (pending) pending.push(event);
          else send(format(event));
          if (endsWithCall && !pending && event.type === "call-ended") close();
        };
        const heartbeat = setInterval(() => send(": keep-alive\n\n"), HEARTBEAT_MS);
        const close = () => {
          cleanup();
          try {
            controller.close();
          } catch {
            // already closed
          }
        };
        cleanup = () => {
          clearInterval(heartbeat);
          subscribers.delete(subscriber);
          this.#closers.delete(close);
        };
        subscribers.add(subscriber);
        this.#closers.add(close);
        // Tell EventSource how soon to reconnect, then catch the client up.
        send("retry: 1000\n\n");
        const missed = await catchUp();
        for (const event of missed) send(format(event));
        // What the catch-up already had (a replay reads the store after subscribing).
        const sent = new Set(missed.map(eventKey));
        for (const event of pending) if (!sent.has(eventKey(event))) send(format(event));
        const ended = [...missed, ...pending].some((event) => event.type === "call-ended");
        pending = null;
        if (endsWithCall && ended) close();
      },
      cancel: () => cleanup(),
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  }

  /** Ends every SSE connection (server shutdown waits for open responses). */
  close(): void {
    for (const close of [...this.#closers]) close();
  }
}

/** A final as live events carry it. */
export function segmentData(segment: Segment): Record<string, unknown> {
  return {
    callSid: segment.callSid,
    id: segment.id,
    track: segment.track,
    order: segment.seq,
    text: segment.text,
    startMs: segment.startMs,
    endMs: segment.endMs,
    confidence: segment.confidence,
    // Who spoke within the track and the language (null when the engine gave none).
    speakerLabel: segment.speaker,
    language: segment.language,
  };
}

/** What makes two events the same for a client catching up: a stored final, or a call's end. */
function eventKey(event: LiveEvent): string {
  if (event.type === "final") return `final ${event.data.id}`;
  if (event.type === "call-ended") return `ended ${event.callSid}`;
  return event.id;
}

function format(event: LiveEvent): string {
  const id = event.id ? `id: ${event.id}\n` : "";
  return `${id}event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}
