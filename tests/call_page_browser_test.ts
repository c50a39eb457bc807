/**
 * The call page reads as a conversation, in a real browser (Chromium from
 * ./browser.ts, driven by playwright-core) at 1280×900: the demo's call
 * (demo/inbound.wav as the phone party, demo/outbound.wav as the laptop's
 * input), in real time. While it lasts, both tracks' lines arrive live in
 * one list in time order; when it ends, the player and the audio quality
 * appear without a reload; then every line is reachable by scrolling the
 * page (no inner scroll box hides any), the lines alternate as their times
 * say, and the line being played is highlighted and scrolled into view.
 * A call without a laptop microphone says the laptop leg was off, not
 * "microphone muted?". The screenshot (tests/artifacts/call-page.png) is
 * the README's docs/call-page.png.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { readWavFile, toCallAudio } from "../lib/audio/wav.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { NullEngine } from "../lib/transcribe/null_engine.ts";
import type { CallEvent } from "../lib/call/events.ts";
import type {
  Track,
  TrackTranscriber,
  TranscriberEngine,
  TranscriptSink,
} from "../lib/transcribe/engine.ts";
import { browserTest } from "./browser.ts";
import { audioSet, callTestServer, conversation, finals, testServer, toMulaw } from "./helpers.ts";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const VIEWPORT = { width: 1280, height: 900 };

/** A line of the conversation as the page shows it, in document order. */
interface ShownLine {
  track: string;
  start: number;
  text: string;
}

/** The final lines of the page's conversation, in document order. */
function shownLines(page: Page): Promise<ShownLine[]> {
  return page.locator("#conversation .msg.final").evaluateAll((els) =>
    els.map((el) => ({
      track: el.getAttribute("data-track") ?? "",
      start: Number(el.getAttribute("data-start")),
      text: el.lastChild?.textContent ?? "",
    }))
  );
}

/** Both tracks' finals of a call in time order (ties: inbound first), as the page must list them. */
function heardInOrder(events: CallEvent[], callSid: string): ShownLine[] {
  return [...finals(events, callSid, "inbound"), ...finals(events, callSid, "outbound")]
    .sort((a, b) =>
      a.startMs - b.startMs || a.endMs - b.endMs ||
      (a.track === b.track ? 0 : a.track === "inbound" ? -1 : 1)
    )
    .map((t) => ({ track: t.track, start: t.startMs, text: t.text }));
}

/**
 * Places a simulated call on the server and opens its page (1280×900) once it has started;
 * `beforeOpen` sees the page first (listeners). The call resolves when it has ended.
 */
async function openLiveCall(
  browser: Browser,
  server: Awaited<ReturnType<typeof testServer>>,
  options: Omit<Parameters<typeof callTestServer>[1], "callSid">,
  beforeOpen: (page: Page) => void = () => {},
): Promise<{ callSid: string; call: Promise<unknown>; page: Page }> {
  const callSid = makeSid("CA");
  const call = callTestServer(server, { ...options, callSid });
  // A failed assertion shuts the server down mid-call: the call's error is then no news.
  call.catch(() => {});
  while (!server.events.some((e) => e.type === "call-started" && e.call.callSid === callSid)) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const page = await browser.newPage({ viewport: VIEWPORT });
  beforeOpen(page);
  await page.goto(`${server.url}/calls/${callSid}`);
  return { callSid, call, page };
}

/** Polls `expression` in the page (page.waitForFunction uses eval, which the CSP forbids). */
async function waitInPage(page: Page, expression: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting in the page for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Elements of the conversation that scroll on their own and hide some of their content. */
const HIDDEN_IN_A_BOX = `[document.getElementById("conversation"),
  ...document.querySelectorAll("#conversation *")].filter((el) =>
    ["auto", "scroll"].includes(getComputedStyle(el).overflowY) && el.scrollHeight > el.clientHeight + 1
  ).map((el) => el.className || el.tagName)`;

/** Whether the centre of the line is on screen and not covered (by the sticky player). */
const visible = (selector: string, index: number) =>
  `(() => {
    const el = document.querySelectorAll(${JSON.stringify(selector)})[${index}];
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (y < 0 || y > innerHeight) return false;
    const hit = document.elementFromPoint(x, y);
    return hit !== null && el.contains(hit);
  })()`;

browserTest(
  "call page: a live call's lines arrive interleaved; at its end the player appears without a reload; every line is reachable on the page, in time order, and followed as it plays",
  async (browser) => {
    const phone = toCallAudio(await readWavFile("demo/inbound.wav"));
    const server = await testServer({ audioInput: "demo/outbound.wav", pacedInput: true });
    try {
      const pageErrors: string[] = [];
      let navigations = 0;
      const { callSid, call, page } = await openLiveCall(browser, server, {
        calleeAudio: phone,
        from: "+15005550006",
        to: "+15557654321",
      }, (page) => {
        page.on("pageerror", (error) => pageErrors.push(error.message));
        page.on("framenavigated", (frame) => {
          if (frame === page.mainFrame()) navigations++;
        });
      });
      const ended = () =>
        server.events.some((e) => e.type === "call-ended" && e.call.callSid === callSid);

      // While the call lasts, lines arrive live, both tracks in one list in time order.
      const rendered = (await shownLines(page)).length;
      let live: ShownLine[] = [];
      while (!ended()) {
        const now = await shownLines(page);
        if (await page.locator("#levels").count()) live = now;
        const starts = now.map((l) => l.start);
        assert.deepEqual(starts, [...starts].sort((a, b) => a - b), "lines in time order");
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.ok(live.length > rendered, `lines arrived live (${rendered} → ${live.length})`);
      assert.ok(new Set(live.map((l) => l.track)).size === 2, "both tracks' lines arrived live");
      // The live list is the server's finals so far, interleaved as their times say.
      const heardLive = heardInOrder(server.events, callSid).filter((h) =>
        live.some((l) => l.text === h.text && l.start === h.start)
      );
      assert.deepEqual(live.map((l) => [l.track, l.text]), heardLive.map((h) => [h.track, h.text]));
      await call;

      // The player and the audio quality replace the levels, without a reload.
      await page.locator('#player[data-ready="1"]').waitFor({ timeout: 30_000 });
      assert.equal(navigations, 1, "the page was not reloaded");
      assert.equal(await page.locator("#levels").count(), 0);
      await page.locator("#quality").waitFor();

      // Every line of the call, in document order by time, the tracks alternating as times say.
      const heard = heardInOrder(server.events, callSid);
      const shown = await shownLines(page);
      assert.deepEqual(shown.map((l) => [l.track, l.text]), heard.map((h) => [h.track, h.text]));
      const turns = heard.filter((h, i) => i === 0 || heard[i - 1].track !== h.track).length;
      assert.ok(turns >= 6, `the demo's turns alternate (${turns} turns in ${heard.length} lines)`);
      // None hidden in an inner scroll box: the page itself scrolls to each one.
      assert.deepEqual(await page.evaluate(HIDDEN_IN_A_BOX), []);
      const selector = "#conversation .msg.final";
      for (let i = 0; i < shown.length; i++) {
        await page.evaluate(`document.querySelectorAll("${selector}")[${i}]
          .scrollIntoView({ block: "center" })`);
        assert.ok(await page.evaluate(visible(selector, i)), `line ${i} can be seen`);
      }
      // Each side is marked: its label, its color and its side of the page.
      const sides = await page.evaluate(
        `[...document.querySelectorAll("${selector}")].map((el) => ({
        track: el.dataset.track,
        who: el.querySelector(".who")?.textContent,
        color: getComputedStyle(el).backgroundColor,
        left: el.getBoundingClientRect().left,
        right: el.getBoundingClientRect().right,
      }))`,
      ) as Array<{ track: string; who: string; color: string; left: number; right: number }>;
      const inbound = sides.filter((s) => s.track === "inbound");
      const outbound = sides.filter((s) => s.track === "outbound");
      assert.ok(inbound.every((s) => s.who === "Inbound · phone"));
      assert.ok(outbound.every((s) => s.who === "Outbound · laptop"));
      assert.notEqual(inbound[0].color, outbound[0].color);
      assert.ok(Math.max(...inbound.map((s) => s.left)) < Math.min(...outbound.map((s) => s.left)));
      assert.ok(
        Math.max(...inbound.map((s) => s.right)) < Math.max(...outbound.map((s) => s.right)),
      );

      // Played from a late line with the page at its top, the line is highlighted and brought in view.
      const last = shown.length - 1;
      await page.evaluate("scrollTo(0, 0)");
      await page.locator(selector).nth(last - 1).click();
      await page.evaluate("scrollTo(0, 0)");
      await page.locator("#play").click();
      await waitInPage(
        page,
        `document.querySelector("#conversation .msg.current") !== null`,
        15_000,
      );
      // The latest line highlighted: a line of the other track may still span the clicked one's start.
      const current = await page.evaluate(
        `[...document.querySelectorAll("${selector}")].findLastIndex((el) => el.classList.contains("current"))`,
      ) as number;
      assert.ok(current >= last - 1, `a late line is current (${current})`);
      await waitInPage(page, visible(selector, current), 5_000);
      await page.locator("#play").click();
      await waitInPage(page, "!callscribePlayer.isPlaying()", 5_000);
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.evaluate("scrollTo(0, 0)");
      await page.screenshot({ path: `${ARTIFACTS}call-page.png`, fullPage: true });
      assert.deepEqual(pageErrors, []);
    } finally {
      await server.shutdown();
    }
  },
);

browserTest(
  "call page: without a laptop microphone the silent outbound track is said to be the laptop leg off, not a muted microphone",
  async (browser) => {
    const server = await testServer({ engine: new NullEngine() });
    try {
      const callee = await conversation((await audioSet("asterisk-allison-8k")).slice(31, 33), 200);
      const { call, page } = await openLiveCall(browser, server, {
        calleeAudio: toMulaw(callee.samples),
        tailMs: 500,
      });
      await call;
      // Shown when the call ends, without a reload.
      const quality = page.locator("#quality");
      await quality.waitFor({ timeout: 15_000 });
      const text = await quality.innerText();
      assert.match(text, /outbound track silent: the laptop leg was off/);
      assert.doesNotMatch(text, /microphone muted/);
      // And so the page says once loaded anew.
      await page.reload();
      assert.match(await quality.innerText(), /the laptop leg was off/);
    } finally {
      await server.shutdown();
    }
  },
);

/**
 * An engine that labels speakers and languages as AssemblyAI does (speaker_labels, language
 * detection): at each track's first audio a final, inbound by speaker A in English at 0 ms,
 * outbound by B in Spanish at 300 ms. It stands for those labels; recognition is not tested here.
 */
class LabellingEngine implements TranscriberEngine {
  readonly name = "labelling";
  open(track: Track, sink: TranscriptSink): TrackTranscriber {
    let said = false;
    const [speaker, language, startMs] = track === "inbound" ? ["A", "en", 0] : ["B", "es", 300];
    return {
      write() {
        if (said) return;
        said = true;
        sink.onTranscript({
          type: "final",
          track,
          text: `${track} words`,
          startMs,
          endMs: startMs + 500,
          words: [],
          speaker,
          language,
        });
      },
      close: () => Promise.resolve(),
    };
  }
  whenCaughtUp(): Promise<void> {
    return Promise.resolve();
  }
  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

browserTest(
  "call page: live finals show their speaker and language, as the server renders them",
  async (browser) => {
    const server = await testServer({ engine: new LabellingEngine() });
    try {
      const { call, page } = await openLiveCall(browser, server, {
        calleeAudio: toMulaw(new Float32Array(8000 * 4)),
        tailMs: 500,
      });
      const labelled = async () =>
        await page.locator("#conversation .msg.final").evaluateAll((els) =>
          els.map((
            el,
          ) => [el.getAttribute("data-track"), el.querySelector(".speaker")?.textContent])
        );
      await page.locator("#conversation .msg.final").nth(1).waitFor({ timeout: 15_000 });
      assert.equal(await page.locator("#levels").count(), 1, "still live");
      const expected = [["inbound", "A, en"], ["outbound", "B, es"]];
      assert.deepEqual(await labelled(), expected);
      await call;
      await page.reload();
      assert.deepEqual(await labelled(), expected);
    } finally {
      await server.shutdown();
    }
  },
);
