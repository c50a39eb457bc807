/**
 * The per-call stream token: it opens exactly one call's stream of one kind
 * until it expires, in exactly one spelling, and one stream at a time.
 */
import assert from "node:assert/strict";
import { StreamAccess } from "../lib/server/stream_access.ts";

const sid = "CA" + "1".repeat(32);
const tokenOf = (path: string) => path.split("/").at(-1)!;

Deno.test("stream token: valid only for its call, kind and key, until it expires", () => {
  const access = StreamAccess.fromSecrets({ authToken: "auth-token-1" });
  const path = access.path(sid, "transcription");
  assert.match(path, new RegExp(`^/stream/${sid}/[0-9a-z]+\\.[\\w-]{43}$`));
  assert.match(access.path(sid, "audio"), new RegExp(`^/audio/${sid}/`));
  const token = tokenOf(path);
  assert.equal(access.check(sid, "transcription", token), null);
  assert.match(access.check(sid, "audio", token)!, /not valid for the audio stream/);
  assert.match(access.check("CA" + "2".repeat(32), "transcription", token)!, /not valid/);
  const otherKey = StreamAccess.fromSecrets({ authToken: "auth-token-2" });
  assert.match(otherKey.check(sid, "transcription", token)!, /not valid/);
  // STREAM_SECRET wins over the auth token.
  const secret = StreamAccess.fromSecrets({
    streamSecret: "s".repeat(16),
    authToken: "auth-token-1",
  });
  assert.match(secret.check(sid, "transcription", token)!, /not valid/);
  // Expired: the expiry is signed, so it cannot be moved either.
  const now = Date.now();
  assert.match(access.check(sid, "transcription", token, now + 11 * 60_000)!, /expired/);
  const [expiry, mac] = token.split(".");
  const later = (parseInt(expiry, 36) + 3_600_000).toString(36);
  assert.match(access.check(sid, "transcription", `${later}.${mac}`)!, /not valid/);
  assert.match(access.check(sid, "transcription", "x")!, /malformed/);
  assert.match(access.check("../../etc", "transcription", token)!, /Call SID/);
});

Deno.test("stream token: another spelling of the same bytes is refused", () => {
  const access = StreamAccess.fromSecrets({ authToken: "auth-token-1" });
  const token = tokenOf(access.path(sid, "transcription"));
  // The last base64url character carries two unused bits: four spellings decode alike.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (const c of alphabet) {
    const other = token.slice(0, -1) + c;
    if (other !== token) assert.notEqual(access.check(sid, "transcription", other), null, other);
  }
});

Deno.test("stream claim: one stream per call and kind until it is given back", () => {
  const access = StreamAccess.fromSecrets({});
  const release = access.claim(sid, "transcription");
  assert.ok(release);
  assert.equal(access.claim(sid, "transcription"), null);
  assert.ok(access.claim(sid, "audio"));
  release();
  release();
  assert.ok(access.claim(sid, "transcription"));
});
