/**
 * Instances of callscribe on one PostgreSQL, as child processes, and an SSE
 * client that keeps every event: for the cluster test and the fan-out bench.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ChildServer, freePort, spawnServer } from "./reliability/fixtures.ts";
import { readLines } from "./read_lines.ts";

/** The auth token the instances check signatures with. */
export const TOKEN = "twilio-SECRET-4f8a1c2e9b7d3a6f";
/** Short, so the test sees a dead instance's calls marked within seconds. */
export const INSTANCE_TIMEOUT_S = 2;
/** The bound: the timeout, plus the beat that sweeps (a third of it). */
export const BOUND_MS = INSTANCE_TIMEOUT_S * 1000 * 4 / 3;

/** One instance: its own port and public URL, the shared database. */
export function startInstance(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<ChildServer> {
  const port = freePort();
  return spawnServer("main.ts", ["--format", "jsonl", "--port", String(port)], {
    TWILIO_AUTH_TOKEN: TOKEN,
    TRANSCRIBER: "local",
    SHERPA_WORKERS: "1",
    DATABASE_URL: databaseUrl,
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    INSTANCE_TIMEOUT: String(INSTANCE_TIMEOUT_S),
    DRAIN_TIMEOUT: "120",
    ...env,
  });
}

/** One Server-Sent Event as received. */
export interface ReceivedEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
  /** performance.now() when it arrived. */
  at: number;
  /** Date.now() when it arrived (to compare with times other processes stored). */
  wallAt: number;
}

/** An SSE connection that keeps every event, and waits for the one you want. */
export class SseClient {
  readonly events: ReceivedEvent[] = [];
  #abort = new AbortController();
  #waiters = new Set<() => void>();
  readonly done: Promise<void>;
  readonly open: Promise<void>;

  constructor(url: string, lastEventId?: string) {
    const opened = Promise.withResolvers<void>();
    this.open = opened.promise;
    this.done = (async () => {
      const response = await fetch(url, {
        headers: lastEventId ? { "last-event-id": lastEventId } : {},
        signal: this.#abort.signal,
      });
      assert.equal(response.status, 200, url);
      opened.resolve();
      try {
        for await (const block of readLines(response.body!, { separator: "\n\n" })) {
          const field = (name: string) =>
            block.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
          const event = field("event");
          if (!event) continue;
          this.events.push({
            id: field("id")!,
            event,
            data: JSON.parse(field("data")!),
            at: performance.now(),
            wallAt: Date.now(),
          });
          for (const wake of this.#waiters) wake();
        }
      } catch (error) {
        if (!this.#abort.signal.aborted) throw error;
      }
    })();
    this.done.catch(() => opened.resolve());
  }

  /** The first event that `match`es, waiting up to `timeoutMs`. */
  async waitFor(
    what: string,
    match: (event: ReceivedEvent) => boolean,
    timeoutMs = 60_000,
  ): Promise<ReceivedEvent> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const found = this.events.find(match);
      if (found) return found;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`no ${what} within ${timeoutMs} ms; got ${this.events.length} events`);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.done.catch(() => {});
  }
}

/** The finals a server printed (`--format jsonl`) for a call. */
export function printedFinals(server: ChildServer, callSid: string) {
  return server.stdout.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .filter((l) => l.type === "final" && l.callSid === callSid) as Array<
      { track: string; text: string; startMs: number; endMs: number }
    >;
}
