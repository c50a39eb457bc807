/**
 * `deno run -P=app bench/redaction.ts [--fast] [--quick] [--out bench/results.json] [--json]`:
 * redaction through the whole pipeline (simulated Twilio call → our server
 * with `REDACT=all` → the local engine on real speech → the finals emitted
 * and stored) on the test calls of `./redaction_calls.ts`, and on the
 * ordinary speech of the shared sets.
 *
 * Measures, per policy, recall (entities caught / read) and precision (tags
 * on an entity of their policy / tags); the hold delay (engine final → the
 * redacted final that carries it) for finals with digits and for the others;
 * and `falsePositiveWords`, the words redacted on the shared sets' speech
 * (their reference transcripts, and what the engine heard). Calls run in
 * real time unless `--fast` (the delay is only meaningful in real time).
 * `--quick` (the quick bench) places the first two calls (a card, a Social
 * Security number) and gives the engine the shortest two utterances of each
 * set, instead of every call and utterance.
 *
 * `--out` merges the figures into that results file under `redaction`;
 * `--json` prints them on stdout for `bench/run.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../app/config.ts";
import { createEngine } from "../app/engine.ts";
import { startServer } from "../app/start_server.ts";
import { memoryLogger } from "../lib/log.ts";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import type { TranscriberEngine, Transcript, Word } from "../lib/transcribe/engine.ts";
import {
  findEntities,
  isNumberToken,
  isSpellingToken,
  normalizeToken,
  numberRunMask,
} from "../lib/redact/find_entities.ts";
import { REDACT_POLICIES, REDACT_TAGS } from "../lib/redact/policies.ts";
import { TrackRedactor } from "../lib/redact/track_redactor.ts";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { progress, quantile, report } from "./common.ts";
import { readSet, shortest, SPEECH_SETS } from "./audio.ts";
import { type RedactionCall, redactionCalls, scoreRedaction } from "./redaction_calls.ts";

const SHARED_AUDIO = fileURLToPath(new URL("../../shared/audio/", import.meta.url));

/** `--quick`: the test calls placed (the first: a card, a Social Security number). */
const QUICK_CALLS = 2;
/** `--quick`: utterances of each set the engine hears (the shortest). */
const QUICK_UTTERANCES_A_SET = 2;

/** An engine final as it left the engine, and when. */
interface TimedFinal {
  at: number;
  transcript: Transcript;
}

/** Stamps each final as it leaves the engine (before the redactor sees it). */
function stampingEngine(inner: TranscriberEngine, out: TimedFinal[]): TranscriberEngine {
  return {
    name: inner.name,
    open: (track, sink) =>
      inner.open(track, {
        onTranscript: (t) => {
          if (t.type === "final") out.push({ at: performance.now(), transcript: t });
          sink.onTranscript(t);
        },
        onError: sink.onError && ((e) => sink.onError!(e)),
      }),
    whenCaughtUp: inner.whenCaughtUp && (() => inner.whenCaughtUp!()),
    dispose: () => inner.dispose(),
  };
}

/** The figures of one run. */
export interface RedactionBench {
  /** Per policy: entities hidden under a tag / entities read. */
  recall: Record<string, number | null>;
  /** Per policy: entities under their own policy's tag / entities read. */
  labelled: Record<string, number | null>;
  /** Per policy: its tags that cover a sensitive entity / its tags. */
  precision: Record<string, number | null>;
  entities: Record<string, number>;
  falsePositiveWords: number;
  falsePositiveWordsReference: number;
  falsePositiveWordsEngine: number;
  /** Engine final → its redacted final, ms: finals with digits (held until judged)... */
  holdDelayMs: { digitFinals: number; p50: number; p95: number; max: number };
  /**
   * The run's last engine final with digits → the redacted final that carries it, ms: what
   * holding adds after the number was said (the rest is the number's own length).
   */
  afterRunMs: { runs: number; p50: number; max: number };
  /** ...finals ending in a spelled letter, "at" or "dot" (an address may go on), or held letters... */
  spellingDelayMs: { finals: number; p50: number; max: number };
  /** ...and every other final (the slowest few shown with their words). */
  ordinaryDelayMs: { finals: number; max: number; slowest: Array<{ text: string; ms: number }> };
  missed: Array<{ policy: string; value: string; heard: string }>;
  realTime: boolean;
}

/** Runs the test calls and the shared sets; returns the figures. */
export async function redactionBench(
  options: { fast: boolean; quick?: boolean },
): Promise<RedactionBench> {
  const log = memoryLogger();
  const baseEngine = await createEngine(loadConfig({}), log);
  const raw: TimedFinal[] = [];
  const engine = stampingEngine(baseEngine, raw);
  const token = crypto.randomUUID().replaceAll("-", "");
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-redact-bench-" });
  const server = await startServer(
    loadConfig({
      HOST: "127.0.0.1",
      PORT: "0",
      TWILIO_AUTH_TOKEN: token,
      DATA_DIR: dataDir,
      REDACT: "all",
    }),
    engine,
    log,
  );
  const emitted = new Map<string, TimedFinal[]>();
  server.registry.pipeline.publish((event) => {
    if (event.type !== "transcript" || event.transcript.type !== "final") return;
    const list = emitted.get(event.call.callSid) ?? [];
    list.push({ at: performance.now(), transcript: event.transcript });
    emitted.set(event.call.callSid, list);
  });
  const calls = (await redactionCalls()).slice(0, options.quick ? QUICK_CALLS : undefined);
  const scored: Array<{ call: RedactionCall; words: Word[] }> = [];
  const held: number[] = [];
  const spelling: number[] = [];
  const ordinary: number[] = [];
  const ordinaryFinals: Array<{ text: string; ms: number }> = [];
  const afterRun: number[] = [];
  try {
    for (const call of calls) {
      progress(`redaction: call ${call.name} (${(call.mulaw.length / 8000).toFixed(0)} s)`);
      raw.length = 0;
      const callSid = makeSid("CA");
      const ended = server.registry.whenEnded(callSid);
      await simulateCall({
        serverUrl: server.url,
        authToken: token,
        callSid,
        calleeAudio: call.mulaw,
        fast: options.fast,
        caughtUp: baseEngine.whenCaughtUp && (() => baseEngine.whenCaughtUp!()),
        tailMs: 2000,
      });
      await ended;
      const out = (emitted.get(callSid) ?? []).filter((f) => f.transcript.track === "inbound");
      // What was stored is what was emitted (the pipeline commits before it publishes).
      const stored = (await server.store.segments(callSid)).filter((s) => s.track === "inbound");
      if (stored.length !== out.length) {
        throw new Error(`call ${call.name}: ${out.length} finals emitted, ${stored.length} stored`);
      }
      scored.push({ call, words: out.flatMap((f) => f.transcript.words) });
      const inbound = raw.filter((f) => f.transcript.track === "inbound");
      for (const o of out) {
        const carried = inbound.filter((r) =>
          o.transcript.startMs <= r.transcript.startMs && r.transcript.endMs <= o.transcript.endMs
        );
        const lastDigits = carried.findLast((r) =>
          numberRunMask(r.transcript.words.map((w) => normalizeToken(w.text))).some(Boolean)
        );
        if (carried.length > 1 && lastDigits) afterRun.push(o.at - lastDigits.at);
      }
      for (const r of raw.filter((f) => f.transcript.track === "inbound")) {
        const carrier = out.find((o) =>
          o.transcript.startMs <= r.transcript.startMs && r.transcript.endMs <= o.transcript.endMs
        );
        if (!carrier) continue;
        const carried = inbound.filter((c) =>
          carrier.transcript.startMs <= c.transcript.startMs &&
          c.transcript.endMs <= carrier.transcript.endMs
        );
        const norms = r.transcript.words.map((w) => normalizeToken(w.text));
        const last = norms.at(-1) ?? "";
        // As the redactor judges: digits, or a last word that may be one ("oh", "for").
        const digits = numberRunMask(norms).some(Boolean) || isNumberToken(last);
        // Or letters of an address being spelled, as the engine writes them ("Age", "See").
        const spelled = last === "at" || last === "dot" || /^[a-z]$/.test(last) ||
          (carried.length > 1 && norms.every(isSpellingToken));
        (digits ? held : spelled ? spelling : ordinary).push(carrier.at - r.at);
        if (!digits && !spelled) {
          ordinaryFinals.push({ text: r.transcript.text, ms: Math.round(carrier.at - r.at) });
        }
      }
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  const main = scoreRedaction(scored);
  const fraction = (a: number, b: number) => (b ? a / b : null);

  const falsePositiveWordsReference = await referenceFalsePositives();
  const falsePositiveWordsEngine = await engineFalsePositives(
    baseEngine,
    options.quick ? QUICK_UTTERANCES_A_SET : Infinity,
  );
  await baseEngine.dispose();
  return {
    recall: Object.fromEntries(
      REDACT_POLICIES.map((p) => [p, fraction(main.policies[p].caught, main.policies[p].entities)]),
    ),
    labelled: Object.fromEntries(
      REDACT_POLICIES.map((p) => [
        p,
        fraction(main.policies[p].labelled, main.policies[p].entities),
      ]),
    ),
    precision: Object.fromEntries(
      REDACT_POLICIES.map((p) => [p, fraction(main.policies[p].correct, main.policies[p].tags)]),
    ),
    entities: Object.fromEntries(REDACT_POLICIES.map((p) => [p, main.policies[p].entities])),
    falsePositiveWords: falsePositiveWordsReference + falsePositiveWordsEngine,
    falsePositiveWordsReference,
    falsePositiveWordsEngine,
    holdDelayMs: {
      digitFinals: held.length,
      p50: Math.round(quantile(held, 0.5)),
      p95: Math.round(quantile(held, 0.95)),
      max: Math.round(Math.max(0, ...held)),
    },
    afterRunMs: {
      runs: afterRun.length,
      p50: Math.round(quantile(afterRun, 0.5)),
      max: Math.round(Math.max(0, ...afterRun)),
    },
    spellingDelayMs: {
      finals: spelling.length,
      p50: Math.round(quantile(spelling, 0.5)),
      max: Math.round(Math.max(0, ...spelling)),
    },
    ordinaryDelayMs: {
      finals: ordinary.length,
      max: Math.round(Math.max(0, ...ordinary)),
      slowest: ordinaryFinals.sort((a, b) => b.ms - a.ms).slice(0, 3),
    },
    missed: main.missed.map(({ policy, value, heard }) => ({
      policy,
      value,
      heard,
    })),
    realTime: !options.fast,
  };
}

/** Words the redactor takes from the shared sets' reference transcripts. */
async function referenceFalsePositives(): Promise<number> {
  const policies = new Set(REDACT_POLICIES);
  let words = 0;
  for (const set of SPEECH_SETS) {
    for (const u of await readSet(`${SHARED_AUDIO}${set}`)) {
      const spans = findEntities(u.text.split(/\s+/).map(normalizeToken), policies);
      words += spans.reduce((n, s) => n + s.end - s.start, 0);
    }
  }
  return words;
}

/** Words the redactor takes from what the engine heard on the shared sets (`count` of each). */
async function engineFalsePositives(engine: TranscriberEngine, count: number): Promise<number> {
  const tags = new Set(Object.values(REDACT_TAGS));
  let taken = 0;
  for (const set of SPEECH_SETS) {
    const all = await readSet(`${SHARED_AUDIO}${set}`);
    const utterances = count < all.length ? shortest(all, count) : all;
    progress(`redaction: engine on ${set} (${utterances.length} files)`);
    for (const u of utterances) {
      const mulaw = toCallAudio(await readWavFile(u.path));
      let rawWords = 0;
      let keptWords = 0;
      const redactor = new TrackRedactor({
        onTranscript: (t) => {
          if (t.type === "final") keptWords += t.words.filter((w) => !tags.has(w.text)).length;
        },
      }, { policies: REDACT_POLICIES });
      const track = engine.open("inbound", {
        onTranscript: (t) => {
          if (t.type === "final") rawWords += t.words.length;
          redactor.onTranscript(t);
        },
      });
      for (let i = 0; i < mulaw.length; i += 160) {
        track.write(mulaw.subarray(i, i + 160));
        if (i % 16_000 === 0) await engine.whenCaughtUp?.();
      }
      await track.close();
      redactor.flush();
      taken += rawWords - keptWords;
    }
  }
  return taken;
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    options: {
      fast: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const result = await redactionBench({ fast: flags.fast, quick: flags.quick });
  if (flags.json) report(result);
  else console.log(JSON.stringify(result, null, 2));
  if (flags.out) {
    const results = JSON.parse(await Deno.readTextFile(flags.out));
    results.redaction = result;
    await Deno.writeTextFile(flags.out, JSON.stringify(results, null, 2) + "\n");
    progress(`redaction: figures written to ${flags.out} (redaction.*)`);
  }
}
