/**
 * All live calls of one server, keyed by Call SID and by stream SID. Not a
 * module-level singleton: each server (and each test) makes its own.
 *
 * @module
 */
import type { TrackOptions, TranscriberEngine } from "../transcribe/engine.ts";
import type { CallEvent, CallInfo, CallListener } from "./events.ts";
import { CallSession, type CallSessionOptions } from "./session.ts";

const ENDED_MEMORY = 1000;

/** Live calls and the listeners that hear about them. */
export class CallRegistry {
  readonly engine: TranscriberEngine;
  #calls = new Map<string, CallSession>();
  #byStream = new Map<string, CallSession>();
  #listeners = new Set<CallListener>();
  #ended = new Map<string, Promise<void>>();
  /** Per call, the delivery of its latest event: events of a call reach listeners in order. */
  #delivery = new Map<string, Promise<void>>();
  #sessionOptions: CallSessionOptions;

  /**
   * `flushTimeoutMs` bounds how long ending a call waits for its last words;
   * `audio` makes each call's recorder.
   */
  constructor(engine: TranscriberEngine, options: CallSessionOptions = {}) {
    this.engine = engine;
    this.#sessionOptions = options;
  }

  /**
   * Subscribes to every call's events; returns the unsubscribe function.
   * Listeners hear each event in the order they subscribed, and a listener
   * that returns a promise is awaited before the next one hears the event
   * (the store commits a final before the printer prints it). Calls do not
   * wait for each other.
   */
  listen(listener: CallListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Number of calls in progress. */
  get activeCalls(): number {
    return this.#calls.size;
  }

  /** The call a stream belongs to, creating it on its first stream. */
  attachStream(
    streamSid: string,
    info: Omit<CallInfo, "label">,
    trackOptions?: TrackOptions,
  ): CallSession {
    let session = this.#calls.get(info.callSid);
    if (!session) {
      session = new CallSession(
        { ...info, label: info.callSid.slice(-4) },
        this.engine,
        (event) => this.#dispatch(event),
        this.#sessionOptions,
      );
      this.#calls.set(info.callSid, session);
    }
    if (trackOptions) session.trackOptions = trackOptions;
    session.streams.add(streamSid);
    this.#byStream.set(streamSid, session);
    return session;
  }

  /** Forgets a stream; the call itself ends through {@link endCall}. */
  detachStream(streamSid: string): void {
    const session = this.#byStream.get(streamSid);
    if (!session) return;
    this.#byStream.delete(streamSid);
    session.streams.delete(streamSid);
  }

  /** Ends a call: flushes its transcribers, emits `call-ended`, forgets it. */
  endCall(callSid: string, reason: string): Promise<void> {
    const session = this.#calls.get(callSid);
    if (!session) return this.#ended.get(callSid) ?? Promise.resolve();
    // Done once call-ended (the session's last event) has reached every listener.
    const done = session.end(reason).then(() => this.#delivery.get(callSid)).finally(() => {
      if (this.#calls.get(callSid) === session) this.#calls.delete(callSid);
      for (const sid of session.streams) this.#byStream.delete(sid);
    });
    this.#ended.set(callSid, done);
    // Remember recent ends (for whenEnded) without growing forever.
    if (this.#ended.size > ENDED_MEMORY) this.#ended.delete(this.#ended.keys().next().value!);
    return done;
  }

  /** True once a call of this registry was ended (or is ending), among the last 1000. */
  hasEnded(callSid: string): boolean {
    return this.#ended.has(callSid);
  }

  /** Resolves when the call has ended and every final of it was emitted. */
  whenEnded(callSid: string): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#calls.has(callSid) && this.#ended.has(callSid)) {
        this.#ended.get(callSid)!.then(resolve);
        return;
      }
      const stop = this.listen((event) => {
        if (event.type === "call-ended" && event.call.callSid === callSid) {
          stop();
          // The event comes from inside endCall; resolve once the registry has forgotten the call.
          (this.#ended.get(callSid) ?? Promise.resolve()).then(resolve);
        }
      });
    });
  }

  /** Ends every call (server shutdown): each flushes what it heard. */
  async endAll(reason: string): Promise<void> {
    await Promise.all([...this.#calls.keys()].map((sid) => this.endCall(sid, reason)));
  }

  #dispatch(event: CallEvent): void {
    const callSid = event.call.callSid;
    const delivered = (this.#delivery.get(callSid) ?? Promise.resolve()).then(() =>
      this.#deliver(event)
    );
    this.#delivery.set(callSid, delivered);
    if (event.type === "call-ended") {
      delivered.then(() => {
        if (this.#delivery.get(callSid) === delivered) this.#delivery.delete(callSid);
      });
    }
  }

  async #deliver(event: CallEvent): Promise<void> {
    for (const listener of [...this.#listeners]) {
      try {
        await listener(event);
      } catch (error) {
        // A broken listener must not break the call or the other listeners.
        console.error(`callscribe: listener failed: ${(error as Error).message}`);
      }
    }
  }
}
