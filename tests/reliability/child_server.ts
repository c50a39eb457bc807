/**
 * A server for the reliability suite, run as a child process so that its
 * memory, file descriptors and children can be read from /proc. Same
 * `startServer` as `main.ts`; the engine is chosen by `--engine`:
 * `null` (counts frames, for the soak: 200 tracks of real decoding would not
 * run in real time on two cores) or `local`.
 *
 * Prints `listening on URL` on stderr. Commands on stdin, one per line, each
 * answered by one JSON line on stdout starting with `{"reply"`:
 * `stats` (memory after a last-resort GC, engine counts, active calls).
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../../app/config.ts";
import { stderrLogger } from "../../lib/log.ts";
import { startServer } from "../../app/start_server.ts";
import { createEngine } from "../../app/engine.ts";
import type { TranscriberEngine } from "../../lib/transcribe/engine.ts";
import { NullEngine } from "../../lib/transcribe/null_engine.ts";
import { readLines } from "../read_lines.ts";

const { values } = parseArgs({ options: { engine: { type: "string", default: "null" } } });
const log = stderrLogger();
const config = loadConfig(Deno.env.toObject());
const nullEngine = values.engine === "null" ? new NullEngine() : null;
const engine: TranscriberEngine = nullEngine ?? await createEngine(config, log);
const server = await startServer(config, engine, log);
log.info(`listening on ${server.url}`);

const stop = Promise.withResolvers<void>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => stop.resolve());
}

(async () => {
  const encoder = new TextEncoder();
  for await (const line of readLines(Deno.stdin.readable)) {
    if (line.trim() !== "stats") continue;
    // Twice: the first pass only queues finalizers. "last-resort" is the collection V8 runs
    // under memory pressure: it also gives back the heap pages it grew into under load, so
    // what remains is memory in use, not V8's reserve.
    const gc = (globalThis as unknown as { gc?: (options: object) => void }).gc;
    for (let i = 0; i < 2; i++) {
      gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const reply = {
      reply: "stats",
      memory: Deno.memoryUsage(),
      counts: nullEngine?.counts ?? null,
      activeCalls: server.registry.activeCalls,
    };
    Deno.stdout.writeSync(encoder.encode(JSON.stringify(reply) + "\n"));
  }
})();

await stop.promise;
await server.shutdown();
await engine.dispose();
Deno.exit(0);
