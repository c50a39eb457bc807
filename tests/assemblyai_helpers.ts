/**
 * What the AssemblyAI tests share: the fake with the local engine behind
 * it, an engine pointed at it, and word comparison.
 */
import { memoryLogger } from "../lib/log.ts";
import { type FakeAssemblyAI, startFakeAssemblyAI } from "./fakes/fake_assemblyai.ts";
import { AssemblyAIEngine } from "../lib/transcribe/assemblyai.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { sharedEngine } from "./helpers.ts";

/** The only key the fake accepts. */
export const KEY = "aai-test-key-5f3c9e1d7b2a4c6e8f0a";

/** The texts of some transcripts, joined. */
export const text = (ts: Transcript[]) => ts.map((t) => t.text).join(" ");
/** Words without case or punctuation, to compare what two engines heard. */
export const words = (ts: Transcript[]) =>
  text(ts).toLowerCase().replace(/[^a-z' ]/g, " ").split(/\s+/).filter(Boolean);

/** The fake, decoding with the shared local engine; its real-time rule off unless given. */
export async function fake(
  options: Partial<Parameters<typeof startFakeAssemblyAI>[0]> = {},
): Promise<FakeAssemblyAI> {
  return await startFakeAssemblyAI({
    apiKey: KEY,
    engine: await sharedEngine(),
    // Simulated calls run faster than real time: the rate rule is tested on its own.
    realtimeToleranceMs: Infinity,
    ...options,
  });
}

/** An AssemblyAI engine on the fake: unpaced, short reconnect delays, patient timeouts, logging to memory. */
export function cloudEngine(
  fakeServer: FakeAssemblyAI,
  apiKey = KEY,
  more: Partial<ConstructorParameters<typeof AssemblyAIEngine>[0]> = {},
) {
  const log = memoryLogger();
  const engine = new AssemblyAIEngine({
    apiKey,
    url: fakeServer.url,
    realtimePacing: false,
    reconnectBackoff: { initialMs: 50, attempts: 3 },
    // The fake decodes on the CPU the test shares with six other suites: a slow Begin or a
    // late last turn is load here, not a stalled service (the timeout has its own test).
    beginTimeoutMs: 10_000,
    terminateTimeoutMs: 30_000,
    ...more,
  }, log);
  return { engine, log };
}
