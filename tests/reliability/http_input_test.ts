/**
 * Hostile HTTP input on the Twilio webhooks: oversized bodies (with and
 * without Content-Length), wrong content types, broken form encodings and
 * generated junk. Every answer is a 4xx, never a 5xx, and the server goes on.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { postSigned } from "../../lib/sim/twilio_sim.ts";
import { signRequest } from "../../lib/twilio/signature.ts";
import { testServer } from "../helpers.ts";
import { report } from "./fixtures.ts";

const WEBHOOKS = ["/twiml/outbound", "/twiml/inbound", "/twilio/status", "/twilio/stream-status"];
const FORM = "application/x-www-form-urlencoded";

/** A body of `bytes` bytes sent as a stream: no Content-Length, chunked on the wire. */
function streamed(bytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  const chunk = new TextEncoder().encode("a=" + "b".repeat(16 * 1024 - 3) + "&");
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      controller.enqueue(chunk);
      sent += chunk.length;
    },
  });
}

Deno.test("webhooks: oversized, mistyped and badly encoded bodies get a 4xx, never a 5xx", async () => {
  const server = await testServer();
  const statuses = new Map<number, number>();
  let requests = 0;
  const send = async (path: string, init: RequestInit, expect: number | "4xx", what: string) => {
    const response = await fetch(server.url + path, { method: "POST", ...init });
    await response.body?.cancel();
    requests++;
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    if (expect === "4xx") {
      assert.ok(
        response.status >= 400 && response.status < 500,
        `${path} ${what}: ${response.status}`,
      );
    } else {
      assert.equal(response.status, expect, `${path} ${what}`);
    }
  };
  try {
    for (const path of WEBHOOKS) {
      const url = server.url + path;
      // Too big: 64 KiB is far above any Twilio webhook, so more is refused before it is read.
      const big = { CallSid: "CA1", Junk: "x".repeat(70 * 1024) };
      await send(
        path,
        {
          headers: {
            "content-type": FORM,
            "X-Twilio-Signature": signRequest(server.token, url, big),
          },
          body: new URLSearchParams(big),
        },
        413,
        "70 KiB signed form",
      );
      await send(
        path,
        {
          headers: { "content-type": FORM },
          body: new Uint8Array(8 * 1024 * 1024).fill(0x61),
        },
        413,
        "8 MiB body",
      );
      await send(
        path,
        { headers: { "content-type": FORM }, body: streamed(1024 * 1024) },
        413,
        "1 MiB chunked body",
      );

      // Not a form.
      for (
        const type of ["application/json", "text/plain", "multipart/form-data; boundary=x", ""]
      ) {
        await send(
          path,
          { headers: type ? { "content-type": type } : {}, body: "CallSid=CA1" },
          400,
          `type "${type}"`,
        );
      }
      // Broken encodings: parsed leniently, then refused for the missing signature.
      for (
        const body of [
          "%",
          "%zz=%",
          "a=%E0%A4%A",
          "&&&===&",
          "a=\u0000b",
          "CallSid=" + "%FF".repeat(100),
          new Uint8Array([0xff, 0xfe, 0x3d, 0xc3, 0x28]),
        ]
      ) {
        await send(
          path,
          { headers: { "content-type": FORM }, body },
          403,
          `body ${String(body).slice(0, 20)}`,
        );
      }
      // A correctly signed form with odd but valid content is accepted.
      const odd = { CallSid: "CA" + "é".repeat(10), From: "+15005550006", "ü key": "\u2028" };
      const ok = await postSigned(url, odd, server.token);
      await ok.body?.cancel();
      assert.ok(ok.status === 200 || ok.status === 204, `${path} odd but signed: ${ok.status}`);
      requests++;
    }

    // Generated: any bytes under any content type on any webhook.
    let generated = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...WEBHOOKS),
        fc.constantFrom(FORM, `${FORM}; charset=utf-8`, "application/json", "text/xml", "", "a/b"),
        fc.oneof(fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 })),
        fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
        async (path, type, body, signature) => {
          generated++;
          const headers: Record<string, string> = {};
          if (type) headers["content-type"] = type;
          if (signature !== undefined) {
            headers["X-Twilio-Signature"] = signature.replace(/[^\x20-\x7e]/g, "");
          }
          await send(path, { headers, body }, "4xx", `generated ${type}`);
        },
      ),
      { numRuns: 300 },
    );

    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    assert.ok(
      !server.log.lines.some((l) => l.includes("request failed")),
      "a request failed (500)",
    );
    assert.ok(![...statuses.keys()].some((s) => s >= 500));
    report("http input", {
      requests,
      generated,
      ...Object.fromEntries([...statuses].map(([s, n]) => [`status${s}`, n])),
    });
  } finally {
    await server.shutdown();
  }
});
