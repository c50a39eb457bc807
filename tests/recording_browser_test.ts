/**
 * The call page's player in a real browser (Chromium from tests/browser.ts,
 * driven by playwright-core): while a simulated call with speech on both
 * tracks lasts, the call page shows each track's level; once it ended, the
 * recording loads into wavesurfer.js with both lanes and a region per line;
 * space plays (the player's time advances) and the line being spoken is
 * highlighted; a click on a line sets the player's time to its start.
 * Its screenshot is tests/artifacts/call-player.png (docs/call-page.png comes from
 * call_page_browser_test.ts).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import type { Page } from "playwright-core";
import { browserTest } from "./browser.ts";
import {
  audioSet,
  callTestServer,
  conversation,
  finals,
  tempWav,
  testServer,
  toMulaw,
} from "./helpers.ts";

/** What the page exposes of its wavesurfer.js player (`window.callscribePlayer`). */
interface PagePlayer {
  getCurrentTime(): number;
  isPlaying(): boolean;
  getDecodedData(): { numberOfChannels: number } | null;
  getActivePlugins(): Array<{ getRegions(): Array<{ start: number; channelIdx: number }> }>;
}
const pagePlayer = () =>
  (globalThis as unknown as { callscribePlayer: PagePlayer }).callscribePlayer;

/**
 * Waits until `expression` is true in the page. Polled with page.evaluate, which the page's
 * Content-Security-Policy (no eval) allows; page.waitForFunction evaluates a string with eval.
 */
async function waitInPage(page: Page, expression: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting in the page for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

browserTest(
  "recording: the call page shows live levels, then plays the recording, follows the spoken line, and seeks to a clicked line",
  async (browser) => {
    // Real time (about 16 s), so the page shows the duration a real call of this audio has.
    const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 2), 700);
    const caller = await conversation(
      (await audioSet("librivox-sense-and-sensibility")).slice(0, 1),
      700,
    );
    const server = await testServer({
      audioInput: await tempWav(caller.samples),
      pacedInput: true,
    });
    try {
      const callSid = makeSid("CA");
      const call = callTestServer(server, {
        calleeAudio: toMulaw(callee.samples),
        callSid,
        from: "+15005550006",
        to: "+15557654321",
        tailMs: Math.max(1000, caller.durationMs - callee.durationMs + 1000),
      });
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(error.message));

      // While the call lasts, the page shows each track's level (the callee speaks first).
      while (!server.events.some((e) => e.type === "call-started" && e.call.callSid === callSid)) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await page.goto(`${server.url}/calls/${callSid}`);
      const inboundLevel = page.locator('#levels [data-track="inbound"]');
      await waitInPage(
        page,
        `document.querySelector('#levels [data-track="inbound"] meter').value > -50`,
        15_000,
      );
      assert.match(await inboundLevel.innerText(), /-\d+ dBFS/);
      await call;
      const inbound = finals(server.events, callSid, "inbound");
      const outbound = finals(server.events, callSid, "outbound");
      assert.ok(inbound.length > 0 && outbound.length > 0, "both tracks were transcribed");

      // Once it ended, the page shows the player instead.
      await page.reload();
      await page.locator('#player[data-ready="1"]').waitFor({ timeout: 30_000 });
      // Functions handed to page.evaluate run in the page: they reach its player by name.
      const player = {
        time: () => page.evaluate(`(${pagePlayer})().getCurrentTime()`) as Promise<number>,
        playing: () => page.evaluate(`(${pagePlayer})().isPlaying()`) as Promise<boolean>,
      };
      // Two lanes (stereo, split), a region per line on its own lane.
      const layout = await page.evaluate(`(() => {
      const p = (${pagePlayer})();
      return {
        channels: p.getDecodedData().numberOfChannels,
        regions: p.getActivePlugins()[0].getRegions().map((r) => ({ start: r.start, channel: r.channelIdx })),
      };
    })()`) as { channels: number; regions: Array<{ start: number; channel: number }> };
      assert.equal(layout.channels, 2);
      assert.equal(layout.regions.length, inbound.length + outbound.length);
      assert.equal(layout.regions.filter((r) => r.channel === 1).length, outbound.length);

      // A click on a line sets the player's time to its start.
      const lines = page.locator("#conversation .msg.final");
      for (const index of [await lines.count() - 1, 0]) {
        const line = lines.nth(index);
        const start = Number(await line.getAttribute("data-start")) / 1000;
        await line.click();
        assert.ok(Math.abs(await player.time() - start) < 0.01, `line ${index} starts at ${start}`);
      }
      // Space plays: the time advances and the line being spoken is highlighted.
      const first = lines.first();
      const firstStart = Number(await first.getAttribute("data-start")) / 1000;
      await page.locator("h1").click(); // the page, not a button, has the focus
      await page.keyboard.press("Space");
      await waitInPage(page, `(${pagePlayer})().getCurrentTime() > ${firstStart + 0.6}`, 15_000);
      assert.equal(await player.playing(), true);
      const current = page.locator("#conversation .msg.current");
      await current.first().waitFor({ timeout: 5_000 });
      const now = (await player.time()) * 1000;
      const span = [
        Number(await current.first().getAttribute("data-start")),
        Number(await current.first().getAttribute("data-end")),
      ];
      assert.ok(span[0] <= now + 300 && now - 300 < span[1], `${now} ms within ${span}`);
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}call-player.png`, fullPage: true });
      await page.keyboard.press("Space");
      await waitInPage(page, `!(${pagePlayer})().isPlaying()`, 30_000);
      assert.deepEqual(pageErrors, []);
    } finally {
      await server.shutdown();
    }
  },
);
