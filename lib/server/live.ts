/**
 * Live call events for the dashboard, as Server-Sent Events.
 *
 * Every event gets an id `<epoch>-<n>` (n increasing; the epoch changes with
 * each server start) and goes into a bounded ring. A page that reconnects
 * sends `Last-Event-ID`; what it missed comes from the ring, or, when the
 * ring no longer reaches back that far (or the server restarted), finals
 * are replayed from the store.
 *
 * @module
 */
import type { CallEvent } from "../call/events.ts";
import type { CallRegistry } from "../call/registry.ts";
import type { Segment, TranscriptStore } from "../store/db.ts";

/** One event as the dashboard receives it. */
export interface LiveEvent {
  id: string;
  /** `call-started`, `partial`, `final`, `call-ended` or `call-error`. */
  type: string;
  callSid: string;
  data: Record<string, unknown>;
}

const DEFAULT_RING = 2000;
const HEARTBEAT_MS = 15_000;

/** The live event hub of one server. */
export class LiveHub {
  readonly epoch = Date.now().toString(36);
  #seq = 0;
  #ring: LiveEvent[] = [];
  #ringSize: number;
  #subscribers = new Set<(event: LiveEvent) => void>();
  #closers = new Set<() => void>();
  #active = new Map<string, Record<string, unknown>>();
  #store?: TranscriptStore;

  constructor(options: { store?: TranscriptStore; ringSize?: number } = {}) {
    this.#store = options.store;
    this.#ringSize = options.ringSize ?? DEFAULT_RING;
  }

  /** The id of the newest event (`<epoch>-0` before any). */
  get lastId(): string {
    return `${this.epoch}-${this.#seq}`;
  }

  /** Call SIDs in progress, with their call-started data. */
  get activeCalls(): Record<string, unknown>[] {
    return [...this.#active.values()];
  }

  /**
   * The registry listener. Finals are published by {@link publishSegment}
   * (from the store, so they carry their stored id) when a store is attached.
   */
  listener(): (event: CallEvent) => void {
    return (event) => {
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
          this.#active.set(callSid, data);
          this.#publish("call-started", callSid, data);
          return;
        }
        case "transcript": {
          const t = event.transcript;
          if (t.type === "final" && this.#store) return;
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
          this.#active.delete(callSid);
          const startedAt = started ? Date.parse(started.startedAt as string) : event.at;
          this.#publish("call-ended", callSid, {
            callSid,
            reason: event.reason,
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

  /** Subscribes to `registry` (after the store, so finals are stored first). */
  attach(registry: CallRegistry): () => void {
    return registry.listen(this.listener());
  }

  /** Publishes a stored final. */
  publishSegment(segment: Segment): void {
    this.#publish("final", segment.callSid, segmentData(segment));
  }

  #publish(type: string, callSid: string, data: Record<string, unknown>): void {
    const event = { id: `${this.epoch}-${++this.#seq}`, type, callSid, data };
    this.#ring.push(event);
    if (this.#ring.length > this.#ringSize) {
      this.#ring.splice(0, this.#ring.length - this.#ringSize);
    }
    for (const subscriber of this.#subscribers) subscriber(event);
  }

  /**
   * What a client that last saw `lastId` missed, for one call or all:
   * from the ring when it reaches back that far, else rebuilt from the store.
   */
  missed(lastId: string | undefined, callSid?: string): Promise<LiveEvent[]> {
    if (!lastId) return Promise.resolve([]);
    const match = /^([0-9a-z]+)-(\d+)$/.exec(lastId);
    const seq = match && match[1] === this.epoch ? Number(match[2]) : NaN;
    const oldest = this.#ring.length ? Number(this.#ring[0].id.split("-")[1]) : this.#seq + 1;
    const inRing = Number.isInteger(seq) && seq <= this.#seq && seq >= oldest - 1;
    if (inRing) {
      return Promise.resolve(
        this.#ring.filter((e) =>
          Number(e.id.split("-")[1]) > seq && (!callSid || e.callSid === callSid)
        ),
      );
    }
    return this.#replay(callSid);
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
          this.#subscribers.delete(subscriber);
          this.#closers.delete(close);
        };
        this.#subscribers.add(subscriber);
        this.#closers.add(close);
        // Tell EventSource how soon to reconnect, then catch the client up.
        send("retry: 1000\n\n");
        const missed = await this.missed(lastId, callSid);
        for (const event of missed) send(format(event));
        // What the catch-up already had (a replay reads the store after subscribing).
        const sent = new Set(missed.map(eventKey));
        for (const event of pending) if (!sent.has(eventKey(event))) send(format(event));
        pending = null;
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

function segmentData(segment: Segment): Record<string, unknown> {
  return {
    callSid: segment.callSid,
    id: segment.id,
    track: segment.track,
    order: segment.seq,
    text: segment.text,
    startMs: segment.startMs,
    endMs: segment.endMs,
    confidence: segment.confidence,
  };
}

/** What makes two events the same for a client catching up: a stored final, or a call's end. */
function eventKey(event: LiveEvent): string {
  if (event.type === "final") return `final ${event.data.id}`;
  if (event.type === "call-ended") return `ended ${event.callSid}`;
  return event.id;
}

function format(event: LiveEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}
