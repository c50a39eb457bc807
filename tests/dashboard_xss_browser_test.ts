/**
 * Outside values stay text in the dashboard, in a real browser (Chromium
 * from ./browser.ts): a call whose From and To (a SIP caller sets any
 * string; they reach the server as webhook fields and again as the
 * streams' custom parameters), transcript text and webhook endpoint's
 * answers carry script payloads is shown live, in the history, on its call
 * page and in the deliveries list. No payload runs (`window.__pwned` is
 * never set, no dialog opens) and each is shown literally. The server runs
 * as users run it: a dashboard token, logged in through the login link.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import type {
  Track,
  TrackTranscriber,
  TranscriberEngine,
  TranscriptSink,
} from "../lib/transcribe/engine.ts";
import { browserTest } from "./browser.ts";
import { callTestServer, testServer, toMulaw } from "./helpers.ts";

/** Each runs if HTML is made of it: as an element, inside an attribute, or closing a script. */
const PAYLOADS = {
  from: `<img src=x onerror="window.__pwned='from';alert(1)">`,
  to: `"><svg onload="window.__pwned='to'">`,
  partial: `<script>window.__pwned='partial'</script>`,
  final: `</script><img src=x onerror="window.__pwned='final'"> & <b>bold</b>`,
};

/**
 * An engine whose every track says the payloads: a partial at its first
 * audio, a final when it ends. It stands for a caller whose words come out
 * as markup (the real engines transcribe speech; the words are what is
 * tested here, not recognition).
 */
class PayloadEngine implements TranscriberEngine {
  readonly name = "payload";
  open(track: Track, sink: TranscriptSink): TrackTranscriber {
    let said = false;
    const at = { track, startMs: 0, endMs: 500, words: [] };
    return {
      write() {
        if (said) return;
        said = true;
        sink.onTranscript({ ...at, type: "partial", text: PAYLOADS.partial });
      },
      close() {
        sink.onTranscript({ ...at, type: "final", text: PAYLOADS.final });
        return Promise.resolve();
      },
    };
  }
  whenCaughtUp(): Promise<void> {
    return Promise.resolve();
  }
  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/** A webhook receiver that answers every event with markup, a bogus Retry-After and 500. */
function hostileReceiver() {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(`<script>window.__pwned='webhook'</script>`, {
        status: 500,
        headers: {
          "content-type": "text/html",
          "retry-after": `<img src=x onerror="window.__pwned='retry'">`,
        },
      }),
  );
  return { url: `http://127.0.0.1:${server.addr.port}/hooks`, close: () => server.shutdown() };
}

/** Nothing ran: no flag, no dialog, no page error. */
async function assertNothingRan(page: Page, dialogs: string[], errors: string[], where: string) {
  assert.equal(await page.evaluate("window.__pwned ?? null"), null, `${where}: a payload ran`);
  assert.deepEqual(dialogs, [], `${where}: a dialog opened`);
  assert.deepEqual(errors, [], `${where}: page errors`);
}

browserTest(
  "dashboard: script payloads in From, To, transcripts and webhook answers are shown as text and never run",
  async (browser) => {
    const receiver = hostileReceiver();
    const server = await testServer({
      dashboardToken: "dash-test-9c2e4a6b8d1f3e5a7c",
      engine: new PayloadEngine(),
      env: {
        WEBHOOK_URL: receiver.url,
        WEBHOOK_SECRET: "whsec_" + btoa("0123456789abcdef0123456789abcdef"),
        WEBHOOK_RETRY_WINDOW: "1",
        WEBHOOK_BACKOFF_BASE: "100",
      },
    });
    try {
      const page = await browser.newPage();
      const dialogs: string[] = [];
      const errors: string[] = [];
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        dialog.dismiss().catch(() => {});
      });
      page.on("pageerror", (error) => errors.push(error.message));

      // Logged in as a user is: the one-time link from the console.
      await page.goto(server.loginLink()!);
      await page.getByText("No call in progress.").waitFor();

      // Live: the card, its partial and its final arrive as events.
      const callSid = makeSid("CA");
      const call = callTestServer(server, {
        calleeAudio: toMulaw(new Float32Array(8000 * 2)),
        callSid,
        from: PAYLOADS.from,
        to: PAYLOADS.to,
        tailMs: 1500,
      });
      const card = page.locator(`section.card[data-call="${callSid}"]`);
      await card.waitFor({ timeout: 15_000 });
      assert.equal(
        await card.locator("strong").innerText(),
        `${PAYLOADS.from} → ${PAYLOADS.to}`,
      );
      await card.locator(".msg.partial").first().waitFor({ timeout: 15_000 });
      // The line's text, after its side and times.
      assert.equal(
        await card.locator(".msg.partial").first().evaluate((el) => el.lastChild?.textContent),
        PAYLOADS.partial,
      );
      await call;
      await assertNothingRan(page, dialogs, errors, "live dashboard");

      // The ended call moves to the history (added by the page's script from the API).
      const row = page.locator(`#history tr[data-call="${callSid}"]`);
      await row.waitFor({ timeout: 15_000 });
      assert.match(await row.innerText(), new RegExp(escapeRegExp(PAYLOADS.from)));
      assert.match(await row.innerText(), new RegExp(escapeRegExp(PAYLOADS.to)));
      await assertNothingRan(page, dialogs, errors, "history row from the API");

      // Server-rendered: the history after a reload, and the call page.
      await page.reload();
      await row.waitFor();
      assert.match(await row.innerText(), new RegExp(escapeRegExp(PAYLOADS.to)));
      await page.goto(`${server.url}/calls/${callSid}`);
      assert.equal(
        await page.locator("h1").innerText(),
        `${PAYLOADS.from} → ${PAYLOADS.to}`,
      );
      const finalsShown = await page.locator("#conversation .msg.final").allInnerTexts();
      assert.equal(finalsShown.length, 2, "one final per track");
      for (const text of finalsShown) assert.ok(text.endsWith(PAYLOADS.final), text);
      assert.match(await page.title(), new RegExp(escapeRegExp(PAYLOADS.from)));
      await assertNothingRan(page, dialogs, errors, "call page");

      // The webhook endpoint's answers: the deliveries fail, the dashboard and the list show it.
      const deadline = Date.now() + 30_000;
      while ((await server.webhooks!.outbox.count("failed")) === 0) {
        assert.ok(Date.now() < deadline, "no delivery failed");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await page.goto(server.url + "/");
      await page.locator("[data-webhooks-failed]").waitFor();
      await page.goto(`${server.url}/api/webhooks/deliveries?status=failed`);
      const listed = await page.locator("body").innerText();
      assert.match(listed, /"status":\s*"failed"/);
      await assertNothingRan(page, dialogs, errors, "webhook deliveries");
    } finally {
      await server.shutdown();
      await receiver.close();
    }
  },
);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
