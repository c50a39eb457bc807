/**
 * The real path, end to end, configured the way a user runs callscribe on
 * the internet: `deno task serve` as its own process with `TWILIO_*` set
 * (signatures checked) and `PUBLIC_URL` on an HTTPS tunnel
 * (tests/tls_tunnel.ts: TLS with a test CA, the public Host passed through,
 * `X-Forwarded-For`/`-Proto` added, every client arriving from 127.0.0.1);
 * `deno task call +1…` in a second process, which asks the server for its
 * public URL through the tunnel with the token the server generated; Twilio's
 * side (the REST simulator, a third process) sending the webhooks and both
 * Media Streams through the tunnel; the transcript on the server's console;
 * the dashboard in Chromium through the tunnel, refused before login and
 * showing the call's transcript and recording after the one-time login link
 * the server printed. A stranger through the tunnel, without the credential,
 * gets nothing, and the call is still stored afterwards.
 */
import assert from "node:assert/strict";
import { type ChildServer, freePort, spawnServer } from "./reliability/fixtures.ts";
import { audioSet, conversation, tempWav, toMulaw } from "./helpers.ts";
import type { Browser } from "playwright-core";
import { CHROMIUM, launchChromium } from "./browser.ts";
import { startTlsTunnel } from "./tls_tunnel.ts";
import { makeCall } from "./call_command.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { wordErrorRate } from "../lib/metrics/wer.ts";
import { dashboardTokenPath } from "../lib/server/dashboard_token.ts";

const TO = "+15551234567";
const FROM = "+15005550006";

/** The first line of `lines` matching `pattern`, waited for (up to a minute). */
async function lineOf(lines: string[], pattern: RegExp): Promise<RegExpMatchArray> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    for (const line of lines) {
      const match = line.match(pattern);
      if (match) return match;
    }
    if (Date.now() > deadline) throw new Error(`no line matched ${pattern}:\n${lines.join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Ends a child (SIGTERM) and waits for it. */
function stop(child: ChildServer): Promise<Deno.CommandStatus> {
  child.kill("SIGTERM");
  return child.status;
}

Deno.test({
  name:
    "the real path: deno task serve behind an HTTPS tunnel, deno task call, Twilio through the tunnel, the dashboard in Chromium; a stranger gets nothing",
  ignore: CHROMIUM.path === undefined,
  async fn() {
    const callee = await conversation((await audioSet("librispeech-samples")).slice(0, 1), 700);
    const caller = await conversation(
      (await audioSet("librivox-sense-and-sensibility")).slice(0, 1),
      700,
    );
    const calleeAudio = await Deno.makeTempFile({ suffix: ".ulaw" });
    await Deno.writeFile(calleeAudio, toMulaw(callee.samples));
    const dataDir = await Deno.makeTempDir({ prefix: "callscribe-e2e-" });
    const accountSid = makeSid("AC");
    const authToken = makeSid("").slice(0, 32);
    const twilio = {
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_PHONE_NUMBER: FROM,
    };

    const port = freePort();
    const tunnel = await startTlsTunnel(`http://127.0.0.1:${port}`);
    // deno task serve, as a user runs it (its stderr and stdout kept line by line).
    const server = await spawnServer("serve", ["--port", String(port)], {
      ...twilio,
      PUBLIC_URL: tunnel.publicUrl,
      DATA_DIR: dataDir,
      TRANSCRIBER: "local",
      AUDIO_INPUT: await tempWav(caller.samples),
      DENO_NO_UPDATE_CHECK: "1",
    }, { task: true });
    let sim: ChildServer | undefined;
    let browser: Browser | undefined;
    // This test process reaches the public URL as everyone else does: through the tunnel.
    const client = Deno.createHttpClient({
      proxy: { url: tunnel.resolverUrl },
      caCerts: [await Deno.readTextFile(tunnel.caFile)],
    });
    const publicFetch = (path: string, init: RequestInit = {}) =>
      fetch(`${tunnel.publicUrl}${path}`, { ...init, client });
    const statusOf = async (path: string, init: RequestInit = {}) => {
      const response = await publicFetch(path, { redirect: "manual", ...init });
      await response.body?.cancel();
      return response.status;
    };
    try {
      await lineOf(
        server.stderr,
        /listening on http:\/\/127\.0\.0\.1:\d+ \(Twilio reaches it as https:/,
      );
      const [, loginLink] = await lineOf(
        server.stderr,
        /login link .*: (http:\/\/\S+\/login\?ticket=\S+)/,
      );
      const token = (await Deno.readTextFile(dashboardTokenPath(dataDir))).trim();

      // The laptop side speaks in real time, after ffmpeg has started (seconds on a loaded machine).
      const tailMs = String(caller.durationMs + 4000);
      sim = await spawnServer("tests/twilio_rest_process.ts", [accountSid, calleeAudio, tailMs], {
        ...tunnel.clientEnv,
        TWILIO_AUTH_TOKEN: authToken,
      });

      // deno task call: the public URL from the server (through the tunnel, with the token the
      // server kept in DATA_DIR), the call through the REST API.
      const call = await makeCall(["--server", tunnel.publicUrl, TO], {
        ...twilio,
        ...tunnel.clientEnv,
        NO_COLOR: "1",
        DATA_DIR: dataDir,
        TWILIO_API_URL: sim.url,
      }, { task: true }).output();
      const callOutput = new TextDecoder().decode(call.stdout) +
        new TextDecoder().decode(call.stderr);
      assert.equal(call.code, 0, callOutput);
      const callSid = callOutput.match(/Call SID: (CA[0-9a-f]{32})/)?.[1];
      assert.ok(callSid, callOutput);
      assert.match(callOutput, /completed after \d+ s/);

      // Twilio's side went through the tunnel, signed, and was accepted every time.
      const [, doneLine] = await lineOf(sim.stdout, new RegExp(`^(\\{"sid":"${callSid}".*)$`));
      const done = JSON.parse(doneLine);
      assert.equal(done.error, undefined);
      assert.deepEqual(
        done.statusCallbacks.map((c: { event: string; status: number }) => [c.event, c.status]),
        [["initiated", 204], ["ringing", 204], ["answered", 204], ["completed", 204]],
      );
      assert.deepEqual(
        done.streamCallbacks.map((c: { event: string; status: number }) => [c.event, c.status]),
        [["stream-started", 204], ["stream-stopped", 204]],
      );
      assert.ok(done.framesSent > 0);
      assert.ok(tunnel.connections >= 8, `${tunnel.connections} connections through the tunnel`);

      // The transcript on the server's console, both sides.
      await lineOf(server.stderr, new RegExp(`${callSid}.*ended|ended.*${callSid}`));
      const console = server.stdout.join("\n");
      const said = (track: string) =>
        [...console.matchAll(new RegExp(`^.*${track}: (.*) \\[\\d+ - \\d+\\]$`, "gm"))]
          .map((m) => m[1]).join(" ");
      assert.ok(wordErrorRate(callee.text, said("Inbound")).wer < 0.3, console);
      // The laptop side is a microphone in real time (AUDIO_INPUT, paced by ffmpeg), which a
      // loaded machine delays and splits; its accuracy is measured where it is paced by the test.
      const heard = said("Outbound").toLowerCase();
      const callerWords = caller.text.split(" ").filter((w) => w.length > 3);
      assert.ok(
        callerWords.filter((w) => heard.includes(w)).length >= 3,
        `outbound: ${heard}\n${server.stderr.join("\n")}`,
      );
      const words = said("Inbound").split(" ").filter((w) => w.length > 3);

      // A stranger through the tunnel, without the credential, gets nothing.
      const forged = { "x-forwarded-for": "127.0.0.1" };
      assert.equal(await statusOf("/api/calls"), 401, "call list");
      assert.equal(await statusOf("/api/calls", { headers: forged }), 401, "a forged local hop");
      assert.equal(await statusOf(`/api/calls/${callSid}`), 401, "call");
      for (const format of ["json", "txt", "srt", "vtt"]) {
        assert.equal(await statusOf(`/api/calls/${callSid}/transcript.${format}`), 401, format);
      }
      assert.equal(await statusOf(`/api/calls/${callSid}/recording.wav`), 401, "recording");
      assert.equal(await statusOf("/api/events"), 401, "live events");
      assert.equal(await statusOf(`/api/calls/${callSid}/events`), 401, "a call's live events");
      assert.equal(await statusOf("/api/public-url"), 401);
      assert.equal(await statusOf(`/calls/${callSid}`, { headers: forged }), 401, "call page");
      const sameSite: Record<string, string>[] = [
        {},
        { origin: tunnel.publicUrl, "sec-fetch-site": "same-origin" },
      ];
      for (const headers of sameSite) {
        const status = await statusOf(`/api/calls/${callSid}`, { method: "DELETE", headers });
        assert.ok(status === 401 || status === 403, `delete: ${status}`);
      }
      const guessed = await statusOf("/api/calls", {
        headers: { authorization: `Bearer ${"0".repeat(43)}` },
      });
      assert.equal(guessed, 401, "a guessed token");
      const front = await publicFetch("/", { redirect: "manual" });
      const frontPage = await front.text();
      assert.ok(!frontPage.includes(callSid), "the front page names no call");
      for (const word of words) assert.ok(!frontPage.includes(word), `"${word}" on the front page`);

      // The dashboard in Chromium through the tunnel: refused before login.
      browser = await launchChromium(tunnel.chromiumArgs);
      const context = await browser.newContext();
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(error.message));
      const refused = await page.goto(`${tunnel.publicUrl}/calls/${callSid}`);
      assert.ok(refused && refused.status() === 401, `before login: ${refused?.status()}`);
      assert.equal(await page.locator('input[type="password"]').count(), 1, "the login form");
      assert.ok(!(await page.content()).includes(words[0]));

      // The one-time link the server printed, opened on the public URL as from another machine.
      const link = new URL(loginLink);
      await page.goto(`${tunnel.publicUrl}${link.pathname}${link.search}`);
      assert.equal(new URL(page.url()).host, new URL(tunnel.publicUrl).host);
      const [session] = await context.cookies();
      assert.ok(session?.secure && session.httpOnly, "a Secure, HttpOnly session cookie");
      assert.ok((await page.content()).includes(callSid), "the call in the list");
      await page.goto(`${tunnel.publicUrl}/calls/${callSid}`);
      const conversationText = await page.locator("#conversation").innerText();
      for (const word of words) assert.ok(conversationText.includes(word), `"${word}" shown`);
      await page.locator('#player[data-ready="1"]').waitFor({ timeout: 30_000 });
      const channels = await page.evaluate(
        "callscribePlayer.getDecodedData().numberOfChannels",
      );
      assert.equal(channels, 2, "the recording, both sides, decoded in the page");
      assert.deepEqual(pageErrors, []);
      await context.close();

      // The stranger's attempts deleted nothing; the token still reads the call.
      const kept = await publicFetch(`/api/calls/${callSid}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(kept.status, 200);
      const stored = await kept.json();
      assert.equal(stored.callSid, callSid);
      assert.ok(stored.segments.length > 0, "its transcript");

      // The token was never printed by any process.
      for (const line of [...server.stdout, ...server.stderr, ...callOutput.split("\n")]) {
        assert.ok(!line.includes(token) && !line.includes(authToken), `printed: ${line}`);
      }
      // Ctrl-C's sibling: deno task passes SIGTERM on, and the server ends cleanly.
      const status = await stop(server);
      assert.equal(status.code, 0, server.stderr.join("\n"));
    } finally {
      await browser?.close();
      if (sim) await stop(sim);
      await stop(server);
      client.close();
      await tunnel.close();
    }
  },
});
