/**
 * The dashboard and API secure by default, over real HTTP against servers
 * started as `deno task serve` starts them: reachable from outside (public
 * URL, tunnel, HOST) means a credential is needed, and one is generated and
 * kept when none is set; one-time login links; sessions that expire and end
 * at logout; failed logins and bearer checks rate-limited per client; the
 * Host check (DNS rebinding) and the cross-site check on every server;
 * security headers; every route in a group.
 */
import assert from "node:assert/strict";
import type { Context } from "hono";
import { loadConfig } from "../app/config.ts";
import { exposure } from "../app/server_settings.ts";
import { startServer } from "../app/start_server.ts";
import { memoryLogger } from "../lib/log.ts";
import { makeSid } from "../lib/sim/twilio_sim.ts";
import { signRequest } from "../lib/twilio/signature.ts";
import { routesInNoGroup } from "../lib/server/route_group.ts";
import {
  SESSION_IDLE_MS,
  SESSION_MAX_MS,
  Sessions,
  TICKET_TTL_MS,
} from "../lib/server/sessions.ts";
import { MAX_FAILURES } from "../lib/server/login_limiter.ts";
import { dashboardTokenPath } from "../lib/server/dashboard_token.ts";
import { clientAddress, PEER_HEADER } from "../lib/server/client_address.ts";
import { sharedEngine, testServer } from "./helpers.ts";
import { sleep, spawnServer } from "./reliability/fixtures.ts";

const STRONG_TOKEN = "dash-test-4b7e1c9a2f6d8e3b5a0c";

/** Every guarded route, as a stranger would try it. */
const GUARDED: [string, string][] = [
  ["GET", "/"],
  ["GET", "/calls/CA1"],
  ["GET", "/api/calls"],
  ["GET", "/api/calls/CA1"],
  ["GET", "/api/calls/CA1/transcript.txt"],
  ["GET", "/api/calls/CA1/recording.wav"],
  ["GET", "/api/calls/CA1/events"],
  ["GET", "/api/calls/CA1/levels"],
  ["GET", "/api/events"],
  ["GET", "/api/public-url"],
  ["GET", "/api/webhooks/deliveries"],
  ["DELETE", "/api/calls/CA1"],
  ["POST", "/api/webhooks/deliveries/retry"],
  ["POST", "/webhooks/retry"],
];

/** Webhooks on, so their admin routes exist (the receiver is never reached in these tests). */
const WEBHOOKS = {
  WEBHOOK_URL: "http://127.0.0.1:9/hooks",
  WEBHOOK_SECRET: "whsec_" + btoa("0123456789abcdef0123456789abcdef"),
};

async function statusOf(url: string, init: RequestInit = {}): Promise<number> {
  const response = await fetch(url, { redirect: "manual", ...init });
  await response.body?.cancel();
  return response.status;
}

/** One HTTP/1.1 request over a plain socket, so Host is what we say (fetch sets its own). */
async function rawRequest(
  url: string,
  request: {
    method?: string;
    path: string;
    host: string;
    headers?: Record<string, string>;
    body?: string;
  },
): Promise<{ status: number; headers: Headers; body: string }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const lines = [
    `${request.method ?? "GET"} ${request.path} HTTP/1.1`,
    `Host: ${request.host}`,
    "Connection: close",
    ...Object.entries(request.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    `Content-Length: ${new TextEncoder().encode(request.body ?? "").length}`,
    "",
    request.body ?? "",
  ];
  await conn.write(new TextEncoder().encode(lines.join("\r\n")));
  let text = "";
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  conn.close();
  const [head, ...body] = text.split("\r\n\r\n");
  const [statusLine, ...headerLines] = head.split("\r\n");
  const headers = new Headers();
  for (const line of headerLines) {
    const at = line.indexOf(":");
    headers.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body: body.join("\r\n\r\n") };
}

const cookieOf = (response: Response) => response.headers.get("set-cookie")?.split(";")[0] ?? "";

Deno.test("reachable from outside: exposure is read from PUBLIC_URL, a tunnel and HOST", () => {
  const base = { TWILIO_AUTH_TOKEN: "t" };
  assert.equal(exposure(loadConfig(base)), null);
  assert.equal(exposure(loadConfig({ ...base, PUBLIC_URL: "http://127.0.0.1:8080" })), null);
  assert.match(
    exposure(loadConfig({ ...base, PUBLIC_URL: "https://calls.example.com" }))!,
    /PUBLIC_URL/,
  );
  assert.match(exposure(loadConfig({ ...base, NGROK_AUTHTOKEN: "x" }))!, /ngrok/);
  assert.match(exposure(loadConfig({ ...base, HOST: "0.0.0.0" }))!, /HOST is 0\.0\.0\.0/);
  assert.match(
    exposure(loadConfig({ ...base, INSTANCE_URL: "https://b.example.com" }))!,
    /INSTANCE_URL/,
  );
});

for (
  const [what, env] of [
    ["PUBLIC_URL", { PUBLIC_URL: "https://calls.example.com" }],
    ["an ngrok tunnel", { NGROK_AUTHTOKEN: "ngrok-SECRET-5d1e7a3c9b2f" }],
  ] as const
) {
  Deno.test(`reachable through ${what} without DASHBOARD_TOKEN: a token is generated, kept 0600, and every guarded route needs it`, async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "callscribe-test-" });
    const server = await testServer({ dataDir, env: { ...env, ...WEBHOOKS } });
    const path = dashboardTokenPath(dataDir);
    let token: string;
    try {
      token = (await Deno.readTextFile(path)).trim();
      assert.match(token, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
      if (Deno.build.os !== "windows") {
        assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      }
      const said = server.log.lines.join("\n");
      assert.match(
        said,
        /warn: reachable from outside .*DASHBOARD_TOKEN is not set.*generated now/,
      );
      assert.ok(said.includes(path), said);
      assert.ok(!said.includes(token), "the token itself is never logged");
      for (const [method, route] of GUARDED) {
        assert.equal(await statusOf(server.url + route, { method }), 401, `${method} ${route}`);
      }
      // What a stranger sees: the login form, nothing else.
      const page = await fetch(server.url + "/");
      assert.match(await page.text(), /Log in/);
      const bearer = { authorization: `Bearer ${token}` };
      assert.equal(await statusOf(`${server.url}/api/calls`, { headers: bearer }), 200);
      const publicUrl = await fetch(`${server.url}/api/public-url`, { headers: bearer });
      assert.ok(!(await publicUrl.text()).includes(token), "no API answer holds the token");
      assert.equal(await statusOf(`${server.url}/healthz`), 200, "the health check is public");
    } finally {
      await server.shutdown();
    }
    // A restart keeps the token.
    const again = await testServer({ dataDir, env: { ...env } });
    try {
      assert.equal((await Deno.readTextFile(path)).trim(), token);
      assert.match(again.log.lines.join("\n"), /token kept in/);
      const bearer = { authorization: `Bearer ${token}` };
      assert.equal(await statusOf(`${again.url}/api/calls`, { headers: bearer }), 200);
    } finally {
      await again.shutdown();
    }
  });
}

Deno.test("HOST beyond loopback without DASHBOARD_TOKEN: the token is required, never open", async () => {
  const log = memoryLogger();
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-test-" });
  const server = await startServer(
    loadConfig({ HOST: "0.0.0.0", PORT: "0", TWILIO_AUTH_TOKEN: "t", DATA_DIR: dataDir }),
    await sharedEngine(),
    log,
  );
  try {
    const url = server.url.replace("0.0.0.0", "127.0.0.1");
    assert.equal(await statusOf(`${url}/api/calls`), 401);
    assert.match(log.lines.join("\n"), /reachable from outside \(HOST is 0\.0\.0\.0\)/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("loopback only and no DASHBOARD_TOKEN: the dashboard stays open to this machine, no token is made", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-test-" });
  const server = await testServer({ dataDir });
  try {
    assert.equal(await statusOf(`${server.url}/api/calls`), 200);
    assert.equal(await statusOf(`${server.url}/`), 200);
    assert.equal(server.loginLink(), null);
    assert.ok(!server.log.lines.some((l) => /^warn:.*DASHBOARD_TOKEN/.test(l)));
    await assert.rejects(Deno.stat(dashboardTokenPath(dataDir)), Deno.errors.NotFound);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a login link works once; the session cookie is HttpOnly, SameSite=Strict, and dies at logout", async () => {
  const server = await testServer({ dashboardToken: STRONG_TOKEN });
  try {
    const link = server.loginLink()!;
    assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/login\?ticket=[A-Za-z0-9_-]{43}$/);
    assert.ok(!link.includes(STRONG_TOKEN), "the link carries a ticket, not the token");
    const first = await fetch(link, { redirect: "manual" });
    assert.equal(first.status, 303);
    assert.equal(first.headers.get("location"), "/");
    const setCookie = first.headers.get("set-cookie")!;
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Path=\//);
    assert.doesNotMatch(setCookie, /Secure/, "a loopback cookie never leaves this machine");
    const cookie = cookieOf(first);
    assert.equal(await statusOf(`${server.url}/api/calls`, { headers: { cookie } }), 200);
    // Used once: a second visit is refused.
    assert.equal(await statusOf(link), 401);

    // Two logins are two sessions: each its own random id.
    const second = await fetch(server.loginLink()!, { redirect: "manual" });
    const other = cookieOf(second);
    assert.notEqual(other, cookie);

    const logout = await fetch(`${server.url}/logout`, {
      method: "POST",
      headers: { cookie },
      redirect: "manual",
    });
    assert.equal(logout.status, 303);
    await logout.body?.cancel();
    assert.equal(
      await statusOf(`${server.url}/api/calls`, { headers: { cookie } }),
      401,
      "the session is revoked on the server, not only forgotten by the browser",
    );
    assert.equal(await statusOf(`${server.url}/api/calls`, { headers: { cookie: other } }), 200);

    // The login form with the token gives a session too.
    const form = await fetch(`${server.url}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: STRONG_TOKEN }),
      redirect: "manual",
    });
    assert.equal(form.status, 303);
    assert.equal(
      await statusOf(`${server.url}/api/calls`, { headers: { cookie: cookieOf(form) } }),
      200,
    );
    assert.ok(!cookieOf(form).includes(STRONG_TOKEN));
  } finally {
    await server.shutdown();
  }
});

Deno.test("the session cookie is Secure when set on the https public host", async () => {
  const server = await testServer({
    dashboardToken: STRONG_TOKEN,
    env: { PUBLIC_URL: "https://calls.example.com" },
  });
  try {
    const ticket = new URL(server.loginLink()!).searchParams.get("ticket")!;
    const response = await rawRequest(server.url, {
      path: `/login?ticket=${ticket}`,
      host: "calls.example.com",
      headers: { "x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https" },
    });
    assert.equal(response.status, 303);
    assert.match(response.headers.get("set-cookie")!, /; Secure/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("sessions expire on the server: idle and absolute limits; tickets expire too", () => {
  let now = 0;
  const sessions = new Sessions(() => now);
  const idle = sessions.create();
  now += SESSION_IDLE_MS + 1;
  assert.equal(sessions.touch(idle), false, "unused past the idle limit");

  const busy = sessions.create();
  const started = now;
  while (now - started < SESSION_MAX_MS - SESSION_IDLE_MS / 2) {
    now += SESSION_IDLE_MS / 2;
    assert.equal(sessions.touch(busy), true, "used within the idle limit");
  }
  now = started + SESSION_MAX_MS + 1;
  assert.equal(sessions.touch(busy), false, "past the absolute limit, however busy");

  const ticket = sessions.issueTicket();
  now += TICKET_TTL_MS + 1;
  assert.equal(sessions.redeemTicket(ticket), false);
  assert.equal(sessions.touch("made-up"), false);
});

Deno.test("failed logins and bearer checks are rate-limited per client and logged with its address", async () => {
  const server = await testServer({ dashboardToken: STRONG_TOKEN });
  const login = (token: string, headers: Record<string, string> = {}) =>
    statusOf(`${server.url}/login`, {
      method: "POST",
      headers,
      body: new URLSearchParams({ token }),
    });
  try {
    // Through a tunnel every client connects from 127.0.0.1; the last X-Forwarded-For hop
    // (the one the tunnel added) tells them apart.
    const attacker = { "x-forwarded-for": "10.9.9.9, 198.51.100.7" };
    for (let i = 0; i < MAX_FAILURES; i++) {
      assert.equal(await login(`guess-number-${i}`, attacker), 401);
    }
    assert.equal(await login(STRONG_TOKEN, attacker), 429, "refused before the token is compared");
    const limited = await fetch(`${server.url}/api/calls`, {
      headers: { ...attacker, authorization: `Bearer ${STRONG_TOKEN}` },
    });
    assert.equal(limited.status, 429, "bearer checks share the count");
    assert.ok(Number(limited.headers.get("retry-after")) > 0);
    await limited.body?.cancel();

    // Another client is not affected.
    const user = { "x-forwarded-for": "192.0.2.44" };
    assert.equal(await login(STRONG_TOKEN, user), 303);

    // Wrong bearer tokens count like wrong logins.
    const prober = { "x-forwarded-for": "198.51.100.99" };
    for (let i = 0; i < MAX_FAILURES; i++) {
      const status = await statusOf(`${server.url}/api/calls`, {
        headers: { ...prober, authorization: `Bearer wrong-${i}` },
      });
      assert.equal(status, 401);
    }
    assert.equal(
      await statusOf(`${server.url}/api/calls`, {
        headers: { ...prober, authorization: `Bearer ${STRONG_TOKEN}` },
      }),
      429,
    );

    const said = server.log.lines.join("\n");
    assert.match(said, /refused a wrong token from 198\.51\.100\.7/);
    assert.match(said, /refused a wrong bearer token from 198\.51\.100\.99/);
    assert.ok(!said.includes("10.9.9.9"), "only the hop the tunnel added is believed");
    assert.ok(!said.includes("guess-number"), "what was sent is never logged");
    const refusals = server.log.lines.filter((l) => l.includes("from 198.51.100.7")).length;
    assert.equal(refusals, MAX_FAILURES, "logged up to the limit, then summarised");
  } finally {
    await server.shutdown();
  }
});

Deno.test("Host check: a rebinding page's Host is refused on every route, Twilio's included", async () => {
  const server = await testServer({ env: { PUBLIC_URL: "https://calls.example.com" } });
  const port = new URL(server.url).port;
  try {
    const twimlUrl = "https://calls.example.com/twiml/outbound";
    const form = { CallSid: makeSid("CA"), From: "+15005550006", To: "+15551234567" };
    const signature = signRequest(server.token, twimlUrl, form);
    for (
      const host of [
        "attacker.example",
        `attacker.example:${port}`,
        `localhost:${Number(port) + 1}`,
      ]
    ) {
      for (
        const path of [
          "/api/calls",
          "/",
          "/healthz",
          "/login",
          "/assets/server/static/dashboard.ts",
        ]
      ) {
        const response = await rawRequest(server.url, { path, host });
        assert.equal(response.status, 421, `${host} ${path}`);
        assert.match(response.body, /Host .* is refused/);
        assert.ok(!response.body.includes("calls.example.com"), "a rebinding page learns no URL");
      }
      const twiml = await rawRequest(server.url, {
        method: "POST",
        path: "/twiml/outbound",
        host,
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-twilio-signature": signature,
        },
        body: new URLSearchParams(form).toString(),
      });
      assert.equal(twiml.status, 421, `${host} /twiml/outbound`);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "calls.example.com"]) {
      const response = await rawRequest(server.url, { path: "/api/calls", host });
      assert.equal(response.status, 401, `${host}: past the Host check, then the credential`);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("cross-site POST and DELETE are refused with or without a token; same-origin ones pass", async () => {
  for (const dashboardToken of [undefined, STRONG_TOKEN]) {
    const server = await testServer({ dashboardToken, env: WEBHOOKS });
    try {
      const auth: Record<string, string> = dashboardToken
        ? { authorization: `Bearer ${dashboardToken}` }
        : {};
      const attempts: [string, string][] = [
        ["DELETE", "/api/calls/CA1"],
        ["POST", "/webhooks/retry"],
        ["POST", "/api/webhooks/deliveries/retry"],
        ["POST", "/logout"],
        ["POST", "/login"],
      ];
      for (const [method, path] of attempts) {
        const crossSite: Record<string, string>[] = [
          { origin: "https://attacker.example" },
          { "sec-fetch-site": "cross-site" },
          { origin: "null" },
        ];
        for (const headers of crossSite) {
          const status = await statusOf(server.url + path, {
            method,
            headers: { ...auth, ...headers },
          });
          assert.equal(
            status,
            403,
            `${dashboardToken ? "token" : "open"} ${method} ${path} ${JSON.stringify(headers)}`,
          );
        }
      }
      const sameOrigin = { ...auth, origin: server.url, "sec-fetch-site": "same-origin" };
      assert.equal(
        await statusOf(`${server.url}/api/calls/CA1`, { method: "DELETE", headers: sameOrigin }),
        404,
        "past the check (no such call)",
      );
      assert.equal(
        await statusOf(`${server.url}/webhooks/retry`, { method: "POST", headers: sameOrigin }),
        303,
      );
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("dashboard pages carry a CSP without inline script, no framing, nosniff, no referrer; no inline script or style", async () => {
  const server = await testServer({ dashboardToken: STRONG_TOKEN });
  try {
    const cookie = cookieOf(await fetch(server.loginLink()!, { redirect: "manual" }));
    for (const path of ["/", "/login", "/calls/CA-unknown", "/api/calls"]) {
      const response = await fetch(server.url + path, {
        headers: path === "/login" ? {} : { cookie },
      });
      const body = await response.text();
      const csp = response.headers.get("content-security-policy") ?? "";
      assert.match(csp, /script-src 'self'(;|$)/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(response.headers.get("referrer-policy"), "no-referrer", path);
      if (response.headers.get("content-type")?.startsWith("text/html")) {
        assert.doesNotMatch(body, /<script(?![^>]*\ssrc=)[^>]*>/, `${path}: an inline script`);
        assert.doesNotMatch(body, /\sstyle=|<style/, `${path}: inline style`);
        assert.doesNotMatch(body, /\son[a-z]+=/, `${path}: an inline event handler`);
      }
    }
    // A refusal carries them too.
    const refused = await fetch(`${server.url}/`);
    await refused.body?.cancel();
    assert.match(refused.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
    // The files the pages load are served, as scripts and a stylesheet.
    for (
      const [file, type] of [
        ["server/static/dashboard.ts", "javascript"],
        ["server/static/dashboard.css", "css"],
      ]
    ) {
      const response = await fetch(`${server.url}/assets/${file}`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type")!, new RegExp(type));
      await response.body?.cancel();
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("every route the app registers is in a group; one added outside every group is found", async () => {
  const server = await testServer({ env: WEBHOOKS });
  try {
    assert.ok(server.app.routes.length > 20);
    assert.deepEqual(routesInNoGroup(server.app), []);
    server.app.get("/api/added-later", (c: Context) => c.text("oops"));
    assert.deepEqual(routesInNoGroup(server.app), ["GET /api/added-later"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("deno task serve reachable through PUBLIC_URL prints a one-time login link on its console, never the token", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "callscribe-test-" });
  const server = await spawnServer("main.ts", ["--port", "0"], {
    TWILIO_AUTH_TOKEN: "test-token-0123456789abcdef",
    TRANSCRIBER: "local",
    SHERPA_WORKERS: "0",
    DATA_DIR: dataDir,
    PUBLIC_URL: "https://calls.example.com",
  });
  try {
    let link: string | undefined;
    for (let i = 0; i < 50 && !link; i++) {
      link = server.stderr.join("\n").match(/login link .*: (http:\/\/\S+\/login\?ticket=\S+)/)
        ?.[1];
      if (!link) await sleep(100);
    }
    assert.ok(link, server.stderr.join("\n"));
    assert.match(server.stderr.join("\n"), /on https:\/\/calls\.example\.com/);
    const login = await fetch(link, { redirect: "manual" });
    assert.equal(login.status, 303);
    const cookie = cookieOf(login);
    assert.equal(await statusOf(`${server.url}/api/calls`, { headers: { cookie } }), 200);
    assert.equal(await statusOf(link), 401, "spent");
    const token = (await Deno.readTextFile(dashboardTokenPath(dataDir))).trim();
    assert.ok(!server.stderr.join("\n").includes(token), "the token is never printed");
    assert.ok(!server.stdout.join("\n").includes(token));
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
});

Deno.test("the client address logged is short and clean: the tunnel's last hop, else the socket's", () => {
  const request = (xff?: string) =>
    new Request("http://127.0.0.1/", { headers: xff ? { "x-forwarded-for": xff } : {} });
  assert.equal(clientAddress(request("1.2.3.4, 203.0.113.5"), "127.0.0.1"), "203.0.113.5");
  assert.equal(clientAddress(request("[2001:DB8::1]:443"), "::1"), "2001:db8::1");
  assert.equal(clientAddress(request("203.0.113.5"), "198.51.100.1"), "198.51.100.1");
  assert.equal(clientAddress(request("1.2.3.4\t<b>\x85forged"), "127.0.0.1"), "unknown");
  assert.equal(clientAddress(request("9".repeat(65536)), "127.0.0.1"), "unknown");
  assert.equal(clientAddress(request(), "127.0.0.1"), "127.0.0.1");
  // Through the connection front, the peer it names stands for the socket's address.
  const fronted = (peer: string, xff: string) =>
    new Request("http://127.0.0.1/", {
      headers: { [PEER_HEADER]: peer, "x-forwarded-for": xff },
    });
  assert.equal(clientAddress(fronted("198.51.100.1", "203.0.113.5"), "127.0.0.1"), "198.51.100.1");
  assert.equal(clientAddress(fronted("127.0.0.1", "203.0.113.5"), "127.0.0.1"), "203.0.113.5");
});

Deno.test("behind a proxy that rewrites Host, the public URL's pages are same-origin", async () => {
  const server = await testServer({
    dashboardToken: STRONG_TOKEN,
    env: { PUBLIC_URL: "https://calls.example.com" },
  });
  try {
    const login = (origin: string) =>
      statusOf(`${server.url}/login`, {
        method: "POST",
        headers: { origin, "sec-fetch-site": "same-origin" },
        body: new URLSearchParams({ token: STRONG_TOKEN }),
      });
    assert.equal(await login("https://calls.example.com"), 303);
    assert.equal(await login("http://calls.example.com"), 403, "another scheme is another site");
    assert.equal(await login("https://calls.example.com.attacker.example"), 403);
  } finally {
    await server.shutdown();
  }
});
