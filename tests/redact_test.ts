/**
 * Redaction: the entities found in spoken and written words, the hold-back
 * of digit runs across finals and in partials, the REDACT setting, and the
 * recording silenced under redacted words.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../app/config.ts";
import { memoryLogger } from "../lib/log.ts";
import { findEntities, luhnValid, normalizeToken } from "../lib/redact/find_entities.ts";
import { parseRedactPolicies, REDACT_POLICIES } from "../lib/redact/policies.ts";
import { TrackRedactor } from "../lib/redact/track_redactor.ts";
import { CallRecorder } from "../lib/recording/call_recorder.ts";
import { HEADER_BYTES } from "../lib/recording/recording_file.ts";
import { mulawDecodeSample } from "../lib/audio/mulaw.ts";
import type { Transcript } from "../lib/transcribe/engine.ts";
import { UserError } from "../lib/user_error.ts";

const ALL = new Set(REDACT_POLICIES);

/** The text with each entity replaced by its policy, as `<card>`. */
function redacted(text: string, policies: ReadonlySet<string> = ALL): string {
  const words = text.split(/\s+/);
  const spans = findEntities(words.map(normalizeToken), policies as typeof ALL);
  const out: string[] = [];
  let i = 0;
  for (const s of spans) {
    out.push(...words.slice(i, s.start), `<${s.policy}>`);
    i = s.end;
  }
  return [...out, ...words.slice(i)].join(" ");
}

Deno.test("card numbers are found spoken digit by digit, in groups, with oh and double, and written", () => {
  assert.ok(luhnValid("4111111111111111"));
  assert.ok(!luhnValid("4111111111111112"));
  const cases: Array<[string, string]> = [
    [
      "it is four five three two oh one five one one two eight three oh three six six thanks",
      "it is <card> thanks",
    ],
    ["four five three two zero one five double one two eight three oh three six six", "<card>"],
    ["forty five thirty two oh one fifty one twelve eighty three oh three sixty six", "<card>"],
    ["pay with 4111 1111 1111 1111 please", "pay with <card> please"],
    ["pay with 4111-1111-1111-1111.", "pay with <card>"],
    // A digit the engine dropped fails Luhn; after "card" the run is still a card.
    [
      "my card number is four five three two one five one one two eight three oh three six",
      "my card number is <card>",
    ],
    // Without the word, a run of 12+ digits is still taken for a card (a digit may be lost).
    ["four five three two one five one one two eight three oh three six", "<card>"],
    // A run of years is not read digit by digit: kept.
    ["nineteen eighty five nineteen ninety", "nineteen eighty five nineteen ninety"],
  ];
  for (const [text, expected] of cases) assert.equal(redacted(text), expected, text);
});

Deno.test("CVV and expiry are found after a card or their keyword, the nearer keyword deciding", () => {
  assert.equal(
    redacted("4111 1111 1111 1111 expires oh four twenty eight security code one two three"),
    "<card> expires <expiry> security code <cvv>",
  );
  assert.equal(
    redacted("the expiration is april twenty twenty eight"),
    "the expiration is <expiry>",
  );
  assert.equal(redacted("valid thru 04/28"), "valid thru <expiry>");
  assert.equal(redacted("the cvv is four four one"), "the cvv is <cvv>");
  // Without a card or a keyword, three digits are just three digits.
  assert.equal(redacted("I need one two three boxes"), "I need one two three boxes");
});

Deno.test("SSNs: after their keyword, written in their shape, or nine digits read one by one", () => {
  assert.equal(
    redacted("my social security number is one two three four five six seven eight nine"),
    "my social security number is <ssn>",
  );
  assert.equal(redacted("ssn 123-45-6789"), "ssn <ssn>");
  assert.equal(redacted("it is 123-45-6789"), "it is <ssn>");
  // Without the keyword, nine digits read one by one are taken for an SSN; eight for a phone.
  assert.equal(redacted("it is one two three four five six seven eight nine"), "it is <ssn>");
  assert.equal(redacted("it is two nine oh eight six four seven three"), "it is <phone>");
  assert.equal(redacted("room four twelve"), "room four twelve");
});

Deno.test("phone numbers, e-mail addresses and dates of birth", () => {
  assert.equal(
    redacted("call me at four one five five five five two six seven one"),
    "call me at <phone>",
  );
  assert.equal(redacted("or at (415) 555-2671 today"), "or at <phone> today");
  assert.equal(
    redacted("plus four four two oh seven nine four six oh nine five eight"),
    "<phone>",
  );
  assert.equal(redacted("write to john at example dot com"), "write to <email>");
  assert.equal(redacted("it is j o h n at e x dot c o m"), "it is <email>");
  assert.equal(redacted("mail john.smith@example.com."), "mail <email>");
  assert.equal(redacted("look at this dot com"), "look at this dot com");
  assert.equal(redacted("I was born on march fourth nineteen eighty five"), "I was born on <dob>");
  assert.equal(redacted("date of birth 04/12/1985"), "date of birth <dob>");
  // Spelled, as the engine heard "d o b oh four twelve nineteen eighty five".
  assert.equal(
    redacted("D Oh B Oh Four Twelve Nineteen Eighty Five"),
    "D Oh B <dob>",
  );
  assert.equal(redacted("The Oh B Oh Four Twelve Nineteen Eighty Five"), "The Oh B <dob>");
  // Without a keyword, a date read out is kept.
  assert.equal(
    redacted("oh four twelve nineteen eighty five"),
    "oh four twelve nineteen eighty five",
  );
  assert.equal(
    redacted("we met in march nineteen eighty five"),
    "we met in march nineteen eighty five",
  );
});

Deno.test("a spelled e-mail address as the engine hears it: letters as words, at as add", () => {
  // What the local engine heard for "j o h n at e x dot c o m" read letter by letter.
  assert.equal(
    redacted("J Oh Age M Add E X Dot See Oh M Good by thank you"),
    "<email> Good by thank you",
  );
  assert.equal(redacted("it is j o h n at e x dot c o m you know"), "it is <email> you know");
  assert.equal(redacted("thank you j o h n at example dot com"), "thank you <email>");
  assert.equal(redacted("b e at x y dot org"), "<email>");
  assert.equal(redacted("j a n e dot d o e at gmail dot com"), "<email>");
  // Words that are also letters' names, in ordinary speech, are not letters.
  for (
    const text of [
      "i see you at example dot com",
      "see you at home dot com",
      "oh see you at the gym",
      "I will add you at some point",
      "we are at the office dot com",
    ]
  ) assert.equal(redacted(text), text);
});

Deno.test("ordinary speech with numbers keeps its words", () => {
  for (
    const text of [
      "I have two kids and forty two cats in nineteen ninety",
      "oh I see, one or two of them",
      "the meeting is at three thirty on the fourth",
      "it cost four hundred and twelve dollars",
      "page one hundred twenty three",
    ]
  ) assert.equal(redacted(text), text);
});

Deno.test("only the chosen policies are redacted", () => {
  const text = "ssn 123-45-6789 and 4111 1111 1111 1111";
  assert.equal(redacted(text, new Set(["card"])), "ssn 123-45-6789 and <card>");
  assert.equal(redacted(text, new Set(["ssn"])), "ssn <ssn> and 4111 1111 1111 1111");
});

Deno.test("REDACT takes a list of policies or all; an unknown one names the valid ones", () => {
  assert.deepEqual(parseRedactPolicies("card, ssn"), ["card", "ssn"]);
  assert.deepEqual(parseRedactPolicies("all"), REDACT_POLICIES);
  assert.deepEqual(parseRedactPolicies(""), []);
  assert.deepEqual(loadConfig({ REDACT: "card,cvv" }).redact, ["card", "cvv"]);
  assert.throws(
    () => loadConfig({ REDACT: "card,credit" }),
    (error: Error) =>
      error instanceof UserError &&
      error.message ===
        'REDACT has an unknown policy "credit"; valid: card, cvv, expiry, ssn, phone, email, dob or all',
  );
});

/** A final or partial of the inbound track with one timed word per text word. */
function transcript(type: "partial" | "final", text: string, startMs: number): Transcript {
  const words = text.split(" ").map((w, i) => ({
    text: w,
    startMs: startMs + i * 500,
    endMs: startMs + i * 500 + 400,
  }));
  return { type, track: "inbound", text, startMs, endMs: words.at(-1)!.endMs, words };
}

function collect(holdMs = 60_000) {
  const out: Transcript[] = [];
  const spans: Array<{ startMs: number; endMs: number }> = [];
  const redactor = new TrackRedactor({ onTranscript: (t) => out.push(t) }, {
    policies: REDACT_POLICIES,
    holdMs,
    onRedacted: (s) => spans.push({ startMs: s.startMs, endMs: s.endMs }),
  });
  return { out, spans, redactor };
}

Deno.test("a card read over many finals is held until it is whole, then goes out as one redacted final", () => {
  const { out, spans, redactor } = collect();
  const pieces = [
    "My card number is four",
    "Five three two",
    "Oh",
    "One five one one",
    "Two eight",
  ];
  let at = 0;
  for (const text of pieces) {
    redactor.onTranscript(transcript("final", text, at));
    at += 3000;
  }
  redactor.onTranscript(transcript("partial", "Three oh", at));
  assert.equal(out.length, 0, "nothing out while the run goes on (the partial shows no digit)");
  redactor.onTranscript(transcript("final", "Three oh three six", at));
  assert.equal(out.length, 0, "15 digits: not a whole card yet");
  at += 3000;
  // The 16th digit makes a whole card (Luhn): out at once, without waiting for the hold.
  redactor.onTranscript(transcript("final", "Six", at));
  assert.equal(out.length, 1);
  assert.equal(out[0].text, "My card number is [CARD]");
  assert.deepEqual(out[0].words.map((w) => w.text), ["My", "card", "number", "is", "[CARD]"]);
  // What follows a card is judged with it: its expiry and CVV are held and tagged.
  redactor.onTranscript(transcript("final", "Oh four two eight", at + 3000));
  redactor.onTranscript(transcript("final", "Seven two four", at + 6000));
  redactor.onTranscript(transcript("final", "Thank you", at + 9000));
  assert.deepEqual(out.slice(1).map((t) => t.text), ["[EXPIRY] [CVV] Thank you"]);
  // The tag spans the times of the words it replaced: from "four" to the last "six".
  assert.deepEqual(out[0].words[4], { text: "[CARD]", startMs: 2000, endMs: 18400 });
  assert.equal(out[0].startMs, 0);
  // A number's tag reaches on to the next word (digits the engine dropped may be in the gap).
  assert.deepEqual(spans, [
    { startMs: 2000, endMs: 18400 },
    { startMs: 21000, endMs: 24000 },
    { startMs: 24000, endMs: 27000 },
  ]);
});

Deno.test("ordinary finals go out at once; partials never show digits", () => {
  const { out, redactor } = collect();
  redactor.onTranscript(transcript("final", "Hello there how are you", 0));
  assert.equal(out.length, 1, "a final without digits is not held");
  redactor.onTranscript(transcript("partial", "it is four one", 3000));
  assert.equal(out[1].text, "it is");
  redactor.onTranscript(transcript("partial", "write to j o h n at", 3000));
  assert.equal(out[2].text, "write to", "an address being spelled stops the partial");
  redactor.onTranscript(transcript("final", "I have two", 5000));
  assert.equal(out.length, 3, "a final ending in a number waits");
  redactor.onTranscript(transcript("final", "kids and a dog", 8000));
  assert.deepEqual(out.slice(3).map((t) => t.text), ["I have two kids and a dog"]);
});

Deno.test("an address spelled one letter a final is held until it ends; partials show none of it", () => {
  const { out, redactor } = collect();
  redactor.onTranscript(transcript("final", "Nine", 0));
  let at = 1000;
  for (const text of ["J", "Oh", "Age", "M", "Add", "E", "X", "Dot", "See", "Oh", "M"]) {
    redactor.onTranscript(transcript("partial", text, at));
    redactor.onTranscript(transcript("final", text, at));
    at += 1000;
  }
  assert.equal(out.length, 0, "nothing out while the address is spelled (partials included)");
  redactor.onTranscript(transcript("final", "Good by", at));
  assert.deepEqual(out.map((t) => t.text), ["Nine [EMAIL] Good by"]);
  // With nothing held, a final of such words is ordinary speech and goes out at once.
  redactor.onTranscript(transcript("final", "See you", at + 3000));
  assert.equal(out.at(-1)!.text, "See you");
});

Deno.test("a number read in four groups or more is a card when no rule on its digits took it", () => {
  // 4111 1111 1111 1111 read briskly, as the local engine heard it: repeats inside a group lost.
  for (
    const [finals, expected] of [
      [["Four one", "One", "One", "One", "Thanks"], "[CARD] Thanks"],
      [["My card is four one", "One", "One", "One", "Thanks"], "My card is [CARD] Thanks"],
      [["Five", "Five", "Five", "Four four", "Or"], "[CARD] Or"],
      // Three groups are not enough.
      [["Two", "Four", "Six", "Thanks"], "Two Four Six Thanks"],
      // A group with other words in it ends the groups.
      [["Four one", "One", "One and one", "One", "Thanks"], "Four one One One and one One Thanks"],
    ] as const
  ) {
    const { out, redactor } = collect();
    finals.forEach((text, i) => redactor.onTranscript(transcript("final", text, i * 1000)));
    assert.equal(out.map((t) => t.text).join(" | "), expected);
  }
});

Deno.test("a held run goes out when no digit comes for the hold time, and when the track ends", async () => {
  const { out, redactor } = collect(50);
  redactor.onTranscript(transcript("final", "the code is four four", 0));
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(out.map((t) => t.text), ["the code is four four"]);
  redactor.onTranscript(transcript("final", "social security number one two three", 5000));
  redactor.onTranscript(transcript("final", "four five six seven eight nine", 8000));
  redactor.flush();
  assert.deepEqual(out.map((t) => t.text).at(-1), "social security number [SSN]");
});

Deno.test("a held run waits for the engine to catch up before it is judged without its next digit", async () => {
  const out: Transcript[] = [];
  let caughtUp = () => {};
  const redactor = new TrackRedactor({ onTranscript: (t) => out.push(t) }, {
    policies: REDACT_POLICIES,
    holdMs: 20,
    caughtUp: () => new Promise<void>((resolve) => caughtUp = resolve),
  });
  redactor.onTranscript(transcript("final", "My card is four five three two", 0));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(out.length, 0, "the engine is behind: the next digits may be in its queue");
  redactor.onTranscript(transcript("final", "Five two five nine six five eight nine", 3000));
  redactor.onTranscript(transcript("final", "Oh nine two nine", 8000));
  assert.deepEqual(out.map((t) => t.text), ["My card is [CARD]"]);
  redactor.onTranscript(transcript("final", "two", 12_000));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(out.length, 1);
  caughtUp();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(out.length, 2, "caught up and no digit came: judged");
  redactor.flush();
});

Deno.test("the recording is silenced under redacted words, before and after that audio was written", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/CA1.wav`;
  const recorder = new CallRecorder({
    callSid: "CA1",
    log: memoryLogger(),
    target: { path, lockPath: `${dir}/CA1.lock` },
    flushMs: 20,
  });
  // 3 s per track of a changing signal: inbound and outbound differ.
  const inbound = new Uint8Array(24_000).map((_, i) => (i * 7) % 256);
  const outbound = new Uint8Array(24_000).map((_, i) => (i * 13 + 5) % 256);
  for (let at = 0; at < 8000; at += 160) {
    recorder.write("inbound", 0, inbound.subarray(at, at + 160));
    recorder.write("outbound", 0, outbound.subarray(at, at + 160));
  }
  await new Promise((r) => setTimeout(r, 200)); // the first second is written
  recorder.silence("inbound", 200, 500); // already in the file: patched
  recorder.silence("inbound", 900, 1200); // across what is written and what is queued
  recorder.silence("inbound", 2000, 2300); // not yet written
  for (let at = 8000; at < 24_000; at += 160) {
    recorder.write("inbound", 0, inbound.subarray(at, at + 160));
    recorder.write("outbound", 0, outbound.subarray(at, at + 160));
  }
  await recorder.end();
  const pcm = new Int16Array((await Deno.readFile(path)).slice(HEADER_BYTES).buffer);
  assert.equal(pcm.length, 48_000);
  const silenced = (ms: number) =>
    [[200, 500], [900, 1200], [2000, 2300]].some(([a, b]) => ms >= a && ms < b);
  let zeroed = 0;
  for (let i = 0; i < 24_000; i++) {
    assert.equal(pcm[2 * i + 1], mulawDecodeSample(outbound[i]), `outbound sample ${i} unchanged`);
    if (silenced(i / 8)) {
      assert.equal(pcm[2 * i], 0, `inbound sample ${i} silenced`);
      zeroed++;
    } else assert.equal(pcm[2 * i], mulawDecodeSample(inbound[i]), `inbound sample ${i} unchanged`);
  }
  assert.equal(zeroed, 3 * 300 * 8);
  await Deno.remove(dir, { recursive: true });
});
