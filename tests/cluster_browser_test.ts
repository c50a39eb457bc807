/**
 * The dashboard of instance A, in a real Chromium (./browser.ts), shows a
 * call that streams into instance B of the same PostgreSQL: it appears
 * live, its finals arrive on its lane as B prints them, and when B is
 * killed the call leaves the live section and shows `interrupted`.
 */
import assert from "node:assert/strict";
import { makeSid, simulateCall } from "../lib/sim/twilio_sim.ts";
import { browserTest } from "./browser.ts";
import { audioSet, conversation, toMulaw } from "./helpers.ts";
import { BOUND_MS, printedFinals, startInstance, TOKEN } from "./instances.ts";
import { startTestPostgres } from "./test_postgres.ts";

browserTest(
  "cluster: A's dashboard shows a call streaming into B, then interrupted",
  async (browser) => {
    const pg = await startTestPostgres();
    const databaseUrl = await pg.createDatabase();
    const [a, b] = await Promise.all([startInstance(databaseUrl), startInstance(databaseUrl)]);
    const speech = await conversation((await audioSet("asterisk-allison-8k")).slice(0, 6), 700);
    let call: Promise<unknown> = Promise.resolve();
    try {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(error.message));
      await page.goto(a.url + "/");
      await page.getByText("No call in progress.").waitFor();

      const callSid = makeSid("CA");
      call = simulateCall({
        serverUrl: b.url,
        calleeAudio: toMulaw(speech.samples),
        authToken: TOKEN,
        callSid,
      }).catch((error) => error);
      const card = page.locator(`section.card[data-call="${callSid}"]`);
      await card.waitFor({ timeout: 30_000 });
      const inbound = card.locator('.msg.final[data-track="inbound"]');
      await inbound.nth(1).waitFor({ timeout: 60_000 });
      // What A's page shows is what B printed.
      const shown = await inbound.evaluateAll((els) =>
        els.map((el) => el.lastChild?.textContent ?? "")
      );
      const printed = printedFinals(b, callSid).filter((p) => p.track === "inbound").map((p) =>
        p.text
      );
      assert.deepEqual(shown, printed.slice(0, shown.length));

      b.kill("SIGKILL");
      await b.status;
      // The call leaves the live section and its history row says interrupted.
      await card.waitFor({ state: "detached", timeout: BOUND_MS + 15_000 });
      const row = page.locator(`#history tr[data-call="${callSid}"]`);
      await row.waitFor({ timeout: 10_000 });
      assert.equal(await row.locator(".badge").innerText(), "interrupted");
      assert.deepEqual(pageErrors, []);
    } finally {
      a.kill("SIGKILL");
      b.kill("SIGKILL");
      await Promise.all([a.status, b.status]);
      await call;
      await pg.stop();
    }
  },
);
