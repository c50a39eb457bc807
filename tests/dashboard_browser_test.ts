/**
 * The dashboard in a real browser (Chromium from ./browser.ts, driven by
 * playwright-core): a real-time simulated call shows up live, partials and
 * finals of both tracks without a reload; after it ends the call page
 * offers the SRT, which downloads and parses.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseSync } from "subtitle";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { browserTest } from "./browser.ts";
import { audioSet, conversation, finals, tempWav, testServer, toMulaw } from "./helpers.ts";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

browserTest(
  "dashboard: a live call shows partials and finals of both tracks; the SRT downloads",
  async (browser) => {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const said = await audioSet("librispeech-samples");
    const callee = await conversation([said[0], said[2]], 800);
    const caller = await conversation(
      (await audioSet("librivox-sense-and-sensibility")).slice(0, 2),
      800,
    );
    const server = await testServer({ audioInput: await tempWav(caller.samples) });
    try {
      const context = await browser.newContext({
        acceptDownloads: true,
        viewport: { width: 1100, height: 760 },
      });
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(error.message));
      await page.goto(server.url + "/");
      await page.getByText("No call in progress.").waitFor();

      const callSid = makeSid("CA");
      const ended = server.registry.whenEnded(callSid);
      // Real time, so partials stay on screen long enough to be seen.
      const call = simulateCall({
        serverUrl: server.url,
        calleeAudio: toMulaw(callee.samples),
        authToken: server.token,
        callSid,
        from: "+15005550006",
        to: "+15557654321",
        tailMs: Math.max(1000, caller.durationMs - callee.durationMs + 1000),
      });

      const card = page.locator(`section.card[data-call="${callSid}"]`);
      await card.waitFor({ timeout: 15_000 });
      for (const track of ["inbound", "outbound"]) {
        const side = `[data-track="${track}"]`;
        // A greyed partial appears, then a final with its times replaces it.
        await card.locator(`.msg.partial${side}`).filter({ hasText: /\w/ }).first().waitFor({
          timeout: 60_000,
        });
        await card.locator(`.msg.final${side}`).first().waitFor({ timeout: 60_000 });
        assert.match(
          await card.locator(`.msg.final${side} time`).first().innerText(),
          /\d\d:\d\d\.\d{3}/,
        );
      }
      // The card interleaves both tracks by time, as the call page does.
      const starts = await card.locator(".msg.final").evaluateAll((els) =>
        els.map((el) => Number(el.getAttribute("data-start")))
      );
      assert.deepEqual(starts, [...starts].sort((a, b) => a - b), "the card's lines in time order");
      await page.screenshot({ path: `${ARTIFACTS}dashboard-live.png` });
      await call;
      await ended;

      // The call moves from the live section to the history without a reload.
      await card.waitFor({ state: "detached", timeout: 15_000 });
      const row = page.locator(`#history tr[data-call="${callSid}"]`);
      await row.waitFor({ timeout: 10_000 });
      await page.screenshot({ path: `${ARTIFACTS}dashboard.png` });
      // Every final reached the page live: compare with the server's own events.
      const inbound = finals(server.events, callSid, "inbound");
      const outbound = finals(server.events, callSid, "outbound");
      assert.ok(inbound.length > 0 && outbound.length > 0);

      await row.getByRole("link", { name: "view" }).click();
      await page.waitForURL(`**/calls/${callSid}`);
      for (const [track, heard] of [["inbound", inbound], ["outbound", outbound]] as const) {
        const texts = await page.locator(`.msg.final[data-track="${track}"]`).evaluateAll(
          (els) => els.map((el) => el.lastChild?.textContent ?? ""),
        );
        assert.deepEqual(texts, heard.map((t) => t.text));
      }
      await page.screenshot({ path: `${ARTIFACTS}call.png`, fullPage: true });

      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.locator('a[data-format="srt"]').click(),
      ]);
      assert.equal(download.suggestedFilename(), `${callSid}.srt`);
      const path = `${ARTIFACTS}${callSid}.srt`;
      await download.saveAs(path);
      const cues = parseSync(await Deno.readTextFile(path)).filter((n) => n.type === "cue");
      assert.equal(cues.length, inbound.length + outbound.length);
      const texts = cues.map((c) => c.type === "cue" ? c.data.text : "");
      for (const t of inbound) assert.ok(texts.includes(`Inbound: ${t.text}`), t.text);
      for (const t of outbound) assert.ok(texts.includes(`Outbound: ${t.text}`), t.text);
      await Deno.remove(path);
      assert.deepEqual(pageErrors, []);
      await context.close();
    } finally {
      await server.shutdown();
    }
  },
);
