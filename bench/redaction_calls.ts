/**
 * Test calls for redaction: a caller reads card numbers (with expiry and
 * CVV), SSNs, phone numbers, a spelled e-mail address and a date of birth
 * amid ordinary sentences, all in one voice: the single digits and letters of
 * `../shared/audio/asterisk-allison-8k/digits` and `letters`
 * (spoken-characters.tsv) joined with pauses as people read them (short
 * within a group, longer between groups; slowly, each digit an utterance of
 * its own, or briskly, each group one), and that set's prompts as the
 * sentences. Each call knows where every entity is on its track, so what
 * the pipeline emitted can be scored: an entity is caught when a tag covers
 * it and none of its digits (or spelled letters) is left in the clear; it is
 * labelled right when that tag is its own policy's.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { readWavFile, resample, toCallAudio } from "../lib/audio/wav.ts";
import type { Word } from "../lib/transcribe/engine.ts";
import { REDACT_POLICIES, REDACT_TAGS, type RedactPolicy } from "../lib/redact/policies.ts";
import { normalizeToken, numberRunMask } from "../lib/redact/find_entities.ts";

const SET = fileURLToPath(
  new URL("../../shared/audio/asterisk-allison-8k/", import.meta.url),
);

/** Pause between the characters of a group, ms. */
export const CHARACTER_PAUSE_MS = 300;
/** Pause between groups ("4532 · 0151 · …"), ms. */
export const GROUP_PAUSE_MS = 700;
/** Pause around a sentence or an entity, ms. */
const PHRASE_PAUSE_MS = 900;

/** One entity read on a test call: what it is and where on the track. */
export interface PlacedEntity {
  policy: RedactPolicy;
  /** What was read, e.g. `4532 0151 1283 0366`. */
  value: string;
  startMs: number;
  endMs: number;
}

/** A test call: the caller's track (µ-law 8 kHz) and its entities. */
export interface RedactionCall {
  name: string;
  mulaw: Uint8Array;
  entities: PlacedEntity[];
}

/**
 * Read briskly: each clip cut to its speech (the clips carry 150–200 ms of
 * silence at each end), this pause within a group, ms...
 */
const BRISK_CHARACTER_PAUSE_MS = 100;
/** ...and this between groups. */
const BRISK_GROUP_PAUSE_MS = 600;

/**
 * How an entity is read: groups of characters (digits or letters, `@`, `.`),
 * one by one or in pairs ("forty five"), slowly or briskly.
 */
type Reading = { policy: RedactPolicy; groups: string[]; pairs?: boolean; brisk?: boolean };
/** Letters spelled that are no entity ("d o b" before a date of birth). */
type Spelling = { spell: string };

/** Card numbers pass Luhn; test cards made of repeated digits (4111…, 5555…) among them. */
const CALLS: Array<{ name: string; parts: Array<string | Reading | Spelling> }> = [
  {
    name: "card-expiry-cvv",
    parts: [
      "priv-introsaved",
      { policy: "card", groups: ["4532", "5259", "6589", "0929"] },
      { policy: "expiry", groups: ["0428"] },
      { policy: "cvv", groups: ["724"] },
      "queue-youarenext",
    ],
  },
  {
    name: "ssn-phone",
    parts: [
      "vm-newuser",
      { policy: "ssn", groups: ["123", "45", "6789"] },
      "pbx-invalid",
      { policy: "phone", groups: ["415", "362", "7190"] },
      "privacy-unident",
    ],
  },
  {
    name: "cards-in-pairs-and-amex",
    parts: [
      "auth-incorrect",
      { policy: "card", groups: ["5425", "1903", "0698", "7061"], pairs: true },
      "vm-mismatch",
      { policy: "card", groups: ["3714", "280810", "78705"] },
      "ss-noservice",
    ],
  },
  {
    name: "ssn-card-email",
    parts: [
      "dir-instr",
      { policy: "ssn", groups: ["219", "08", "6473"] },
      "tt-allbusy",
      { policy: "card", groups: ["6504", "3163", "2738", "5249"] },
      { policy: "email", groups: ["john", "@", "ex", ".", "com"] },
      "demo-thanks",
    ],
  },
  {
    // A digit that repeats the previous utterance's last word was dropped before the local
    // engine started a new stream for each utterance ("Four", "One" for the whole 4111… card).
    name: "repeated-digits",
    parts: [
      "pbx-invalidpark",
      { policy: "card", groups: ["4111", "1111", "1111", "1111"] },
      { policy: "card", groups: ["5555", "5555", "5555", "4444"] },
      "demo-thanks",
    ],
  },
  {
    // Groups read briskly, each one utterance: the engine says a group of repeated digits once
    // ("one one one one" → "One").
    name: "cards-read-briskly",
    parts: [
      "vm-newuser",
      { policy: "card", groups: ["4111", "1111", "1111", "1111"], brisk: true },
      "pbx-invalid",
      { policy: "card", groups: ["4916", "3850", "6082", "2830"], brisk: true },
      "demo-thanks",
    ],
  },
  {
    // The set has no "born" or "birth": the keyword is spelled, the date read in pairs
    // ("oh four, twelve, nineteen eighty five").
    name: "dob",
    parts: [
      "vm-newuser",
      { spell: "dob" },
      { policy: "dob", groups: ["04", "12", "1985"], pairs: true },
      "demo-thanks",
    ],
  },
];

const cache = new Map<string, Float32Array>();
async function clip(path: string): Promise<Float32Array> {
  if (!cache.has(path)) {
    const wav = await readWavFile(`${SET}${path}`);
    cache.set(path, resample(wav.samples, wav.sampleRate, 8000));
  }
  return cache.get(path)!;
}

/** A clip cut to its speech, with 30 ms before and 40 ms after (a word's soft ends kept). */
function speechOf(samples: Float32Array): Float32Array {
  const loud = (x: number) => Math.abs(x) > 0.01;
  const first = samples.findIndex(loud);
  if (first < 0) return samples;
  let last = samples.length - 1;
  while (!loud(samples[last])) last--;
  return samples.subarray(Math.max(0, first - 240), Math.min(samples.length, last + 320));
}

/** The clips that say a group: digit by digit, or in pairs ("forty five"), or letters. */
function groupClips(group: string, pairs: boolean): string[] {
  if (group === "@") return ["letters/at.wav"];
  if (group === ".") return ["letters/dot.wav"];
  if (/^[a-z]+$/.test(group)) return [...group].map((c) => `letters/${c}.wav`);
  if (!pairs) return [...group].map((d) => `digits/${d}.wav`);
  const clips: string[] = [];
  for (let i = 0; i < group.length; i += 2) {
    const pair = group.slice(i, i + 2);
    if (pair[0] === "0") clips.push("digits/oh.wav", `digits/${pair[1]}.wav`);
    else if (pair[0] === "1" || pair[1] === "0") clips.push(`digits/${Number(pair)}.wav`);
    else clips.push(`digits/${pair[0]}0.wav`, `digits/${pair[1]}.wav`);
  }
  return clips;
}

/** Builds the test calls. */
export async function redactionCalls(): Promise<RedactionCall[]> {
  await loadClips();
  const calls: RedactionCall[] = [];
  for (const call of CALLS) {
    const parts: Float32Array[] = [];
    let at = 0;
    const push = (samples: Float32Array) => {
      parts.push(samples);
      at += samples.length;
    };
    const pause = (ms: number) => push(new Float32Array(ms * 8));
    const entities: PlacedEntity[] = [];
    pause(PHRASE_PAUSE_MS);
    for (const part of call.parts) {
      if (typeof part === "string") {
        push(await clip(`${part}.wav`));
        pause(PHRASE_PAUSE_MS);
        continue;
      }
      if ("spell" in part) {
        groupClips(part.spell, false).forEach((path, c) => {
          if (c > 0) pause(CHARACTER_PAUSE_MS);
          push(cache.get(path)!);
        });
        pause(PHRASE_PAUSE_MS);
        continue;
      }
      const startMs = at / 8;
      part.groups.forEach((group, g) => {
        if (g > 0) pause(part.brisk ? BRISK_GROUP_PAUSE_MS : GROUP_PAUSE_MS);
        groupClips(group, part.pairs ?? false).forEach((path, c) => {
          if (c > 0) pause(part.brisk ? BRISK_CHARACTER_PAUSE_MS : CHARACTER_PAUSE_MS);
          push(part.brisk ? speechOf(cache.get(path)!) : cache.get(path)!);
        });
      });
      entities.push({ policy: part.policy, value: part.groups.join(" "), startMs, endMs: at / 8 });
      pause(PHRASE_PAUSE_MS);
    }
    const samples = new Float32Array(at);
    let offset = 0;
    for (const p of parts) {
      samples.set(p, offset);
      offset += p.length;
    }
    calls.push({
      name: call.name,
      mulaw: toCallAudio({ sampleRate: 8000, channels: 1, samples }),
      entities,
    });
  }
  return calls;
}

/** Loads every clip the calls use, so that placing them needs no await. */
async function loadClips(): Promise<void> {
  for (const call of CALLS) {
    for (const part of call.parts) {
      if (typeof part === "string") continue;
      if ("spell" in part) {
        for (const path of groupClips(part.spell, false)) await clip(path);
        continue;
      }
      for (const group of part.groups) {
        for (const path of groupClips(group, part.pairs ?? false)) await clip(path);
      }
    }
  }
}

/** How the emitted words of a call scored against its entities. */
export interface RedactionScore {
  /** Per policy: entities read, caught, tags emitted, tags on an entity of that policy. */
  policies: Record<
    RedactPolicy,
    { entities: number; caught: number; labelled: number; tags: number; correct: number }
  >;
  /** Entities not caught, with the words emitted over them. */
  missed: Array<PlacedEntity & { heard: string }>;
}

const TAG_POLICY = new Map(REDACT_POLICIES.map((p) => [REDACT_TAGS[p], p]));

/** Scores the final words emitted on a call's track against its entities. */
export function scoreRedaction(
  calls: Array<{ call: RedactionCall; words: Word[] }>,
): RedactionScore {
  const policies = Object.fromEntries(
    REDACT_POLICIES.map((p) => [p, { entities: 0, caught: 0, labelled: 0, tags: 0, correct: 0 }]),
  ) as RedactionScore["policies"];
  const missed: RedactionScore["missed"] = [];
  const overlaps = (w: Word, e: PlacedEntity, slackMs: number) =>
    w.startMs < e.endMs + slackMs && w.endMs > e.startMs - slackMs;
  for (const { call, words } of calls) {
    const norms = words.map((w) => normalizeToken(w.text));
    const numeric = numberRunMask(norms);
    for (const entity of call.entities) {
      policies[entity.policy].entities++;
      const over = words.filter((w) => overlaps(w, entity, 300));
      const tagged = over.some((w) => TAG_POLICY.has(w.text));
      if (over.some((w) => TAG_POLICY.get(w.text) === entity.policy)) {
        policies[entity.policy].labelled++;
      }
      // A digit (or a spelled letter of an address) left in the clear over the entity.
      const clear = words.some((w, i) =>
        overlaps(w, entity, 0) && !TAG_POLICY.has(w.text) &&
        (numeric[i] || (entity.policy === "email" && /^[a-z]$/.test(norms[i])))
      );
      if (tagged && !clear) policies[entity.policy].caught++;
      else missed.push({ ...entity, heard: over.map((w) => w.text).join(" ") });
    }
    for (const w of words) {
      const policy = TAG_POLICY.get(w.text);
      if (!policy) continue;
      policies[policy].tags++;
      if (call.entities.some((e) => overlaps(w, e, 300))) {
        policies[policy].correct++;
      }
    }
  }
  return { policies, missed };
}
