/** The public URL: PUBLIC_URL, an ngrok tunnel (real @ngrok/ngrok addon), or a clear warning. */
import assert from "node:assert/strict";
import { memoryLogger } from "../lib/log.ts";
import { openPublicUrl } from "../lib/server/tunnel.ts";
import { UserError } from "../lib/user_error.ts";

Deno.test("PUBLIC_URL wins; no tunnel is opened", async () => {
  const log = memoryLogger();
  const endpoint = await openPublicUrl({
    publicUrl: "https://example.ngrok.app",
    ngrokAuthtoken: "unused",
    localUrl: "http://127.0.0.1:8080",
    log,
  });
  assert.equal(endpoint.url, "https://example.ngrok.app");
  assert.equal(endpoint.source, "PUBLIC_URL");
  assert.deepEqual(log.lines, []);
});

Deno.test("neither PUBLIC_URL nor NGROK_AUTHTOKEN: a warning says Twilio cannot reach us and how to fix it", async () => {
  const log = memoryLogger();
  const endpoint = await openPublicUrl({ localUrl: "http://127.0.0.1:8080", log });
  assert.equal(endpoint.source, "local");
  assert.equal(endpoint.url, "http://127.0.0.1:8080");
  assert.match(
    log.lines.join("\n"),
    /Twilio cannot reach http:\/\/127\.0\.0\.1:8080.*NGROK_AUTHTOKEN.*PUBLIC_URL/,
  );
});

Deno.test("a bogus ngrok token fails with a clear error in bounded time, never showing the token", async () => {
  const token = "2bogusTokenForTests_0123456789abcdefghij";
  const log = memoryLogger();
  const error = await openPublicUrl({
    ngrokAuthtoken: token,
    localUrl: "http://127.0.0.1:8080",
    log,
    timeoutMs: 20_000,
  }).then(() => null, (e) => e);
  assert.ok(error instanceof UserError, String(error));
  assert.match(error.message, /could not open the ngrok tunnel: .+Check NGROK_AUTHTOKEN/);
  assert.ok(!error.message.includes(token));
  assert.ok(!log.lines.join("\n").includes(token));
});
