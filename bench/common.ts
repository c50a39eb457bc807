/**
 * Pieces shared by the benchmark's processes: the clock, the frame stamp that
 * carries a frame's due time from the load generator to the engine, a latency
 * histogram, and the process's own CPU time and memory.
 *
 * @module
 */
import process from "node:process";

/** Wall-clock ms with sub-ms resolution, comparable between processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Relay runs carry no speech (the null engine listens to nothing), so the
 * first bytes of each payload carry a magic, the frame's due time and the
 * time the load generator actually sent it. The engine side reads them back:
 * added latency = handed-to-engine time − sent time (what the server adds);
 * the same from the due time also counts the load generator's own lateness.
 */
const MAGIC = [0x42, 0x4e, 0x43, 0x48]; // "BNCH"
/** Bytes the stamp takes at the start of a payload. */
export const STAMP_BYTES = 20;

/** Writes the stamp (magic, due and sent times as float64 LE) into the start of `payload`. */
export function writeStamp(payload: Uint8Array, dueMs: number, sentMs: number): void {
  payload.set(MAGIC, 0);
  const view = new DataView(payload.buffer, payload.byteOffset, STAMP_BYTES);
  view.setFloat64(4, dueMs, true);
  view.setFloat64(12, sentMs, true);
}

/** The stamp of `payload`, or null when it carries none (e.g. filled silence). */
export function readStamp(payload: Uint8Array): { dueMs: number; sentMs: number } | null {
  if (
    payload.length < STAMP_BYTES || payload[0] !== MAGIC[0] || payload[1] !== MAGIC[1] ||
    payload[2] !== MAGIC[2] || payload[3] !== MAGIC[3]
  ) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, STAMP_BYTES);
  return { dueMs: view.getFloat64(4, true), sentMs: view.getFloat64(12, true) };
}

/** Latencies in 0.1 ms buckets up to 10 s; later ones land in the last bucket. */
export class Histogram {
  #buckets = new Uint32Array(100_001);
  count = 0;
  max = 0;

  record(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    const i = Math.min(this.#buckets.length - 1, Math.round(v * 10));
    this.#buckets[i]++;
    this.count++;
    if (v > this.max) this.max = v;
  }

  /** The `q` quantile (0–1) in ms; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i];
      if (seen >= rank) return i / 10;
    }
    return this.max;
  }

  reset(): void {
    this.#buckets.fill(0);
    this.count = 0;
    this.max = 0;
  }
}

/** Quantile of a list of numbers (nearest rank); NaN when empty. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * CPU time (user + system, all threads) of this process in µs: getrusage,
 * the same kernel accounting as utime + stime in /proc/<pid>/stat, at µs
 * rather than 10 ms resolution (and Deno needs --allow-all to read /proc).
 */
export function ownCpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** CPU time of a process's threads in µs, by role. */
export interface ThreadCpu {
  /** The main thread: the event loop (sockets, relay, sessions, transcripts). */
  main: number;
  /** Web Worker threads (Deno names them `worker-N`): the local engine's decoders. */
  workers: number;
  /** Everything else: V8's garbage collector, Deno's I/O threads. */
  other: number;
}

/** The kernel's clock ticks per second in /proc (USER_HZ, fixed at 100 by the Linux ABI). */
const USER_HZ = 100;

/**
 * CPU time of each thread of process `pid` by role, from
 * `/proc/<pid>/task/<tid>/stat` (10 ms resolution). Read through `cat`, as
 * Deno opens /proc only with --allow-all. Null where there is no /proc.
 */
export async function threadCpuUs(pid: number): Promise<ThreadCpu | null> {
  if (Deno.build.os !== "linux") return null;
  // Threads may end between the glob and the read: cat then fails for those, which is fine.
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/task/*/stat`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const cpu: ThreadCpu = { main: 0, workers: 0, other: 0 };
  let threads = 0;
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const open = line.indexOf("(");
    const close = line.lastIndexOf(")");
    if (open < 0 || close < open) continue;
    const tid = Number(line.slice(0, open));
    const name = line.slice(open + 1, close);
    // After the name: state, ppid, … utime and stime are the 12th and 13th fields.
    const fields = line.slice(close + 2).split(" ");
    const us = (Number(fields[11]) + Number(fields[12])) * (1e6 / USER_HZ);
    const role = tid === pid ? "main" : /^worker-\d+$/.test(name) ? "workers" : "other";
    cpu[role] += us;
    threads++;
  }
  return threads ? cpu : null;
}

/** What a machine's CPU is, as far as decoding speed goes. */
export interface CpuDescription {
  /** `model name` of /proc/cpuinfo; null where there is none (not Linux). */
  model: string | null;
  /**
   * The vector extensions ONNX Runtime's int8 kernels choose between (of avx2,
   * avx512f, avx512_vnni, avx_vnni), as /proc/cpuinfo lists them: raw
   * decoding of the same tracks took 2.6× the CPU on one 2-core development
   * machine (AMD EPYC, AVX2) as on another, so figures name their machine.
   */
  vectorExtensions: string[];
}

/**
 * This machine's {@link CpuDescription}, from /proc/cpuinfo (Linux), read
 * through `cat` like {@link threadCpuUs}.
 */
export async function cpuDescription(): Promise<CpuDescription> {
  if (Deno.build.os !== "linux") return { model: null, vectorExtensions: [] };
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/cpuinfo"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const lines = new TextDecoder().decode(stdout).split("\n");
  const field = (name: string) =>
    lines.find((l) => l.startsWith(name))?.split(":").slice(1).join(":").trim();
  const flags = new Set((field("flags") ?? "").split(/\s+/));
  return {
    model: field("model name") ?? null,
    vectorExtensions: ["avx2", "avx512f", "avx512_vnni", "avx_vnni"].filter((f) => flags.has(f)),
  };
}

/** Resident memory of this process in bytes. */
export function ownRssBytes(): number {
  return Deno.memoryUsage().rss;
}

/** Progress line on stderr (stdout carries results). */
export function progress(message: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`bench: ${message}\n`));
}

/** Prints one JSON line on stdout, for the parent process. */
export function report(value: unknown): void {
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(value) + "\n"));
}

export { sleep } from "../lib/async/sleep.ts";

/** Counters a benchmark server keeps for its runner. */
export class FrameCounters {
  /** Stamped frames handed on (to the engine, or decoded by the floor server). */
  frames = 0;
  /** Writes without a stamp (gap-filling silence). */
  unstamped = 0;
  bytes = 0;
  /** Sent → handed on: what the server adds. */
  latency = new Histogram();
  /** Due → handed on: also counts the load generator's lateness. */
  fromDue = new Histogram();

  /** Counts one payload handed on now. */
  count(payload: Uint8Array): void {
    this.bytes += payload.length;
    const stamp = readStamp(payload);
    if (stamp === null) {
      this.unstamped++;
      return;
    }
    this.frames++;
    const now = epochMs();
    this.latency.record(now - stamp.sentMs);
    this.fromDue.record(now - stamp.dueMs);
  }

  snapshot(): Record<string, number> {
    return {
      frames: this.frames,
      unstamped: this.unstamped,
      bytes: this.bytes,
      latencyP50Ms: this.latency.quantile(0.5),
      latencyP99Ms: this.latency.quantile(0.99),
      latencyMaxMs: this.latency.max,
      fromDueP50Ms: this.fromDue.quantile(0.5),
      fromDueP99Ms: this.fromDue.quantile(0.99),
    };
  }

  reset(): void {
    this.frames = 0;
    this.unstamped = 0;
    this.bytes = 0;
    this.latency.reset();
    this.fromDue.reset();
  }
}

/**
 * A control endpoint on its own port, beside the server under test (the
 * product app gets no bench routes): `GET /stats`, `POST /reset`, `POST /exit`
 * and `POST /gc` (a full collection, then the memory left: the server runs with
 * `--v8-flags=--expose-gc`).
 * Resolves to its base URL.
 */
export function serveControl(handlers: {
  stats: (url: URL) => unknown;
  reset: () => void;
  /** Runs before the process exits (e.g. the engine's dispose: its workers must be idle). */
  exit?: () => Promise<void>;
}): Promise<string> {
  return serveLocal((request) => {
    const url = new URL(request.url);
    if (url.pathname === "/stats") {
      // Read CPU and memory first: the rest of this request is not the server's load.
      const usage = { cpuUs: ownCpuUs(), rssBytes: ownRssBytes(), memory: Deno.memoryUsage() };
      return Response.json({ ...usage, ...handlers.stats(url) as object });
    }
    if (url.pathname === "/exit" && request.method === "POST") {
      // A normal exit, so `--cpu-prof` gets to write its profile.
      setTimeout(async () => {
        await handlers.exit?.();
        Deno.exit(0);
      }, 50);
      return Response.json({ ok: true });
    }
    if (url.pathname === "/gc" && request.method === "POST") {
      const gc = (globalThis as { gc?: (options: Record<string, string>) => void }).gc;
      if (!gc) {
        const problem = "Cannot collect garbage: start the server with --v8-flags=--expose-gc";
        return new Response(problem, { status: 501 });
      }
      // V8's last-resort collection: every generation, repeated until nothing more is freed, and
      // the emptied pages (the young generation's too) given back, as a heap snapshot does.
      gc({ type: "major", execution: "sync", flavor: "last-resort" });
      return Response.json({ rssBytes: ownRssBytes(), memory: Deno.memoryUsage() });
    }
    if (url.pathname === "/reset" && request.method === "POST") {
      handlers.reset();
      return Response.json({ ok: true });
    }
    return new Response("not found", { status: 404 });
  });
}

/** Serves `handler` on a free port of 127.0.0.1; resolves to its base URL once listening. */
export async function serveLocal(handler: Deno.ServeHandler): Promise<string> {
  const ready = Promise.withResolvers<number>();
  Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => ready.resolve(port) },
    handler,
  );
  return `http://127.0.0.1:${await ready.promise}`;
}
