/**
 * All live calls of one server, keyed by Call SID and by stream SID. Not a
 * module-level singleton: each server (and each test) makes its own.
 *
 * @module
 */
import type { TrackOptions, TranscriberEngine } from "../transcribe/engine.ts";
import type { CallEvent, CallInfo } from "./events.ts";
import { CallEventPipeline } from "./pipeline.ts";
import { CallSession, type CallSessionOptions } from "./session.ts";
import { stderrLogger } from "../log.ts";

const ENDED_MEMORY = 1000;

/** Options of a {@link CallRegistry}: the sessions', and the pipeline their events go through. */
export interface CallRegistryOptions extends CallSessionOptions {
  /** Commits, then publishes, each call event (default: one with no commit stage, no store). */
  pipeline?: CallEventPipeline;
}

/** Live calls; their events go through the call-event pipeline. */
export class CallRegistry {
  readonly engine: TranscriberEngine;
  /** Where publishers register: they hear each event once it is committed. */
  readonly pipeline: CallEventPipeline;
  #calls = new Map<string, CallSession>();
  #byStream = new Map<string, CallSession>();
  #ended = new Map<string, Promise<void>>();
  /** Who waits (in {@link whenEnded}) for a call that has not begun to end. */
  #endWaiters = new Map<string, (() => void)[]>();
  /** Per call, the run of its latest event: events of a call go through the pipeline in order. */
  #delivery = new Map<string, Promise<void>>();
  #sessionOptions: CallSessionOptions;

  /**
   * `flushTimeoutMs` bounds how long ending a call waits for its last words;
   * `audio` makes each call's recorder. Each call's events run through
   * `pipeline` one after another; calls do not wait for each other.
   */
  constructor(engine: TranscriberEngine, options: CallRegistryOptions = {}) {
    const { pipeline, ...sessionOptions } = options;
    this.engine = engine;
    this.pipeline = pipeline ?? new CallEventPipeline({ log: stderrLogger() });
    this.#sessionOptions = sessionOptions;
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
    // Done once call-ended (the session's last event) has been through the pipeline.
    const done = session.end(reason).then(() => this.#delivery.get(callSid)).finally(() => {
      if (this.#calls.get(callSid) === session) this.#calls.delete(callSid);
      for (const sid of session.streams) this.#byStream.delete(sid);
    });
    this.#ended.set(callSid, done);
    for (const resolve of this.#endWaiters.get(callSid) ?? []) done.then(resolve);
    this.#endWaiters.delete(callSid);
    // Remember recent ends (for whenEnded) without growing forever.
    if (this.#ended.size > ENDED_MEMORY) this.#ended.delete(this.#ended.keys().next().value!);
    return done;
  }

  /** True once a call of this registry was ended (or is ending), among the last 1000. */
  hasEnded(callSid: string): boolean {
    return this.#ended.has(callSid);
  }

  /** Resolves when the call has ended and every event of it has been through the pipeline. */
  whenEnded(callSid: string): Promise<void> {
    // Ended or ending: done once the registry has forgotten the call.
    const ended = this.#ended.get(callSid);
    if (ended) return ended;
    const waiter = Promise.withResolvers<void>();
    this.#endWaiters.set(callSid, [...(this.#endWaiters.get(callSid) ?? []), waiter.resolve]);
    return waiter.promise;
  }

  /** Ends every call (server shutdown): each flushes what it heard. */
  async endAll(reason: string): Promise<void> {
    await Promise.all([...this.#calls.keys()].map((sid) => this.endCall(sid, reason)));
  }

  #dispatch(event: CallEvent): void {
    const callSid = event.call.callSid;
    const delivered = (this.#delivery.get(callSid) ?? Promise.resolve()).then(() =>
      this.pipeline.run(event)
    );
    this.#delivery.set(callSid, delivered);
    if (event.type === "call-ended") {
      delivered.then(() => {
        if (this.#delivery.get(callSid) === delivered) this.#delivery.delete(callSid);
      });
    }
  }
}
