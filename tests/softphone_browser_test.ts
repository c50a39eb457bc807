/**
 * The browser softphone in a real Chromium, with its fake microphone fed
 * from a WAV of real speech (`--use-file-for-fake-audio-capture`) and its
 * permission prompt answered yes (`--use-fake-ui-for-media-stream`), on a
 * server with a dashboard token, logged in through the login link as a user
 * is: the dashboard's Call form places the call (through the simulated
 * Twilio REST API) and opens it once answered; the tab takes its laptop leg; the simulated callee hears
 * the file (the Outbound transcript matches its words); the page receives
 * and schedules the callee's audio; the microphone track has echo
 * cancellation on; a plain-http page at a name that is not loopback says it needs a
 * secure page; a second tab is refused; closing the tab ends the leg and
 * not the call, and another tab can take it again.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { startTwilioRestSim } from "./fakes/twilio_rest.ts";
import { resample, writeWav } from "../lib/audio/wav.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { sleep } from "../lib/async/sleep.ts";
import { browserTest } from "./browser.ts";
import { audioSet, conversation, finals, testServer, toMulaw } from "./helpers.ts";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

/**
 * Measured through this path (Chromium's audio processing, the capture worklet, µ-law, the
 * local engine): 0.067 and 0.100 in two runs on this machine; the simulator sending the same speech straight is
 * held to 0.17 (call_e2e_test), and this bound leaves room for a loaded machine.
 */
const MAX_OUTBOUND_WER = 0.2;

/** Silence before the speech: the page's first frames go out only once the leg is taken. */
const LEAD_MS = 2500;
const CAPTURE_RATE = 48_000;

const caller = await conversation(
  (await audioSet("librivox-sense-and-sensibility")).slice(0, 2),
  800,
);
const callerWav = await Deno.makeTempFile({ suffix: ".wav" });
{
  const lead = new Float32Array(LEAD_MS * 8);
  const samples = new Float32Array(lead.length + caller.samples.length);
  samples.set(caller.samples, lead.length);
  await Deno.writeFile(callerWav, writeWav(resample(samples, 8000, CAPTURE_RATE), CAPTURE_RATE));
}
/** A name for this machine that is not loopback, so http to it is not a secure context. */
const INSECURE_HOST = "softphone.test";
/** How long the file runs, in ms. */
const FILE_MS = LEAD_MS + caller.durationMs;

browserTest(
  "softphone: the dashboard places a call and a tab takes its laptop leg; the callee hears the microphone and the page plays the callee; closing it keeps the call",
  async (browser) => {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 2), 800);
    const accountSid = makeSid("AC");
    const authToken = "softphone-browser-auth-token-0123456789";
    // Twilio's REST API: the dashboard's Call form places the call through it, as a user's would.
    const sim = await startTwilioRestSim({
      accountSid,
      authToken,
      calleeAudio: toMulaw(callee.samples),
      // Long enough for the tab to talk through the whole file, leave, and another to take it.
      tailMs: Math.max(1000, FILE_MS - callee.durationMs) + 12_000,
    });
    const server = await testServer({
      dashboardToken: "softphone-browser-dashboard-token-0123",
      token: authToken,
      env: {
        TWILIO_ACCOUNT_SID: accountSid,
        TWILIO_PHONE_NUMBER: "+15005550006",
        TWILIO_API_URL: sim.url,
        // A name that is not loopback (mapped to 127.0.0.1 in Chromium): an insecure context.
        ALLOWED_HOSTS: INSECURE_HOST,
      },
    });
    let callSid = "";
    try {
      const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(error.message));
      await page.goto(server.loginLink()!);
      await page.getByText("No call in progress.").waitFor();

      await page.getByLabel("Number to call").fill("+15557654321");
      await page.getByRole("button", { name: "Call", exact: true }).click();
      // Once answered, the page opens the call.
      await page.waitForURL(/\/calls\/CA[0-9a-f]{32}$/, { timeout: 30_000 });
      callSid = new URL(page.url()).pathname.split("/").pop()!;
      assert.equal(sim.calls.get(callSid)?.to, "+15557654321");
      const panel = page.locator("#softphone");
      await panel.getByRole("button", { name: "Take the laptop leg" }).click();
      await page.locator('#softphone[data-state="live"]').waitFor({ timeout: 15_000 });
      const tookAt = performance.now();
      assert.equal(
        await panel.getAttribute("data-echo-cancellation"),
        "true",
        "getSettings().echoCancellation",
      );

      // On plain http at a name that is not loopback, the page has no microphone, and says so.
      const insecure = await browser.newContext();
      const port = new URL(server.url).port;
      const plain = await insecure.newPage();
      await plain.goto(server.loginLink(`http://${INSECURE_HOST}:${port}`)!);
      await plain.goto(`http://${INSECURE_HOST}:${port}/calls/${callSid}`);
      assert.equal(await plain.evaluate("isSecureContext"), false);
      assert.match(
        await plain.locator("#softphone .softphone-status").innerText(),
        /needs a secure page: open the dashboard on http:\/\/localhost:<port> or on the server's https public URL/,
      );
      assert.ok(
        await plain.getByRole("button", { name: "Take the laptop leg" }).isDisabled(),
        "no take button without a secure context",
      );
      await insecure.close();

      // A second tab on the same call is refused, and says why.
      const second = await context.newPage();
      await second.goto(page.url());
      await second.locator("#softphone").getByRole("button", { name: "Take the laptop leg" })
        .click();
      await second.locator('#softphone[data-state="refused"]').waitFor({ timeout: 15_000 });
      assert.match(
        await second.locator("#softphone .softphone-status").innerText(),
        /another browser tab has this call's laptop leg/,
      );

      // Mid-speech, for the README; then the page talks through the whole file (its clock started
      // at getUserMedia, before `live`).
      await sleep(LEAD_MS + 2000);
      // docs/softphone.png is a copy of this one (the test never writes into docs/).
      await page.screenshot({ path: `${ARTIFACTS}softphone-live.png` });
      await sleep(FILE_MS - LEAD_MS - 2000 + 1500);
      await page.screenshot({ path: `${ARTIFACTS}softphone.png` });
      const heldMs = performance.now() - tookAt;
      const counts = await panel.evaluate((el) => ({
        sent: Number(el.dataset.framesSent),
        received: Number(el.dataset.framesReceived),
        scheduled: Number(el.dataset.samplesScheduled),
      }));
      const expected = heldMs / 20;
      assert.ok(counts.received >= expected * 0.5, `received ${counts.received} of ~${expected}`);
      assert.equal(counts.scheduled, counts.received * 160, "every frame received is scheduled");
      assert.ok(counts.sent >= expected * 0.5, `sent ${counts.sent} of ~${expected}`);

      // Closing the tab ends the leg, not the call.
      await page.close();
      const left = /the browser left the laptop leg; the call goes on/;
      for (let i = 0; i < 50 && !left.test(server.log.lines.join("\n")); i++) await sleep(100);
      assert.match(server.log.lines.join("\n"), left);
      assert.equal(server.registry.hasEnded(callSid), false, "the call is still in progress");

      // Another tab takes the freed leg (muted at once: the file is not said twice).
      await second.locator("#softphone").getByRole("button", { name: "Take the laptop leg" })
        .click();
      await second.locator('#softphone[data-state="live"]').waitFor({ timeout: 15_000 });
      await second.locator("#softphone").getByRole("button", { name: "Mute" }).click();
      // Muted, nothing more goes out.
      const sentCount = () => second.locator("#softphone").getAttribute("data-frames-sent");
      await sleep(200);
      const sentAtMute = await sentCount();
      await sleep(1200);
      assert.equal(await sentCount(), sentAtMute, "a muted tab sends nothing");
      await second.locator("#softphone").getByRole("button", { name: "Leave" }).click();
      await second.locator('#softphone[data-state="left"]').waitFor();

      await sim.calls.get(callSid)!.done;
      await server.registry.whenEnded(callSid);
      const outbound = finals(server.events, callSid, "outbound").map((t) => t.text).join(" ");
      const wer = wordErrorRate(caller.text, outbound);
      console.log(`softphone: outbound WER ${wer.wer.toFixed(3)}; page ${JSON.stringify(counts)}`);
      assert.ok(wer.wer <= MAX_OUTBOUND_WER, `outbound WER ${wer.wer}: "${outbound}"`);
      assert.deepEqual(pageErrors, []);
    } finally {
      // A failed assertion hangs the call up, so the failure is reported, not a dangling call.
      await sim.close();
      await server.shutdown();
      await Deno.remove(callerWav).catch(() => {});
    }
  },
  {
    args: [
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`,
      // %noloop: the file is said once, then silence.
      `--use-file-for-fake-audio-capture=${callerWav}%noloop`,
    ],
  },
);
