/**
 * Fixtures of the reliability suite: raw Twilio-protocol sockets, waiting
 * helpers, a server run as a child process, and the counts each test prints.
 */
import { fileURLToPath } from "node:url";
import { startMessage } from "../../lib/twilio/protocol.ts";
import type { CallEvent } from "../../lib/call/events.ts";
import { readLines } from "../read_lines.ts";

/** The project root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export { openSigned } from "../helpers.ts";

/** Resolves with the close code and reason once `ws` closes (or `timeoutMs` passes: code -1). */
export function closed(
  ws: WebSocket,
  timeoutMs = 10_000,
): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -2, reason: "" });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ code: -1, reason: "timeout" }), timeoutMs);
    ws.addEventListener("close", (e) => {
      clearTimeout(timer);
      resolve({ code: e.code, reason: e.reason });
    });
  });
}

/** A `start` message for both tracks. */
export function start(streamSid: string, callSid: string, tracks = ["inbound", "outbound"]) {
  return startMessage({
    streamSid,
    callSid,
    accountSid: "AC" + "0".repeat(32),
    sequenceNumber: 1,
    tracks: tracks as Array<"inbound" | "outbound">,
    customParameters: {},
  });
}

/** Prints one line of figures at the end of a test (the README quotes them). */
export function report(test: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v}`);
  console.log(`[reliability] ${test}: ${parts.join(" ")}`);
}

/** Finals of a call (both tracks), as comparable plain data. */
export function finalsOf(events: CallEvent[], callSid: string) {
  return events.flatMap((e) =>
    e.type === "transcript" && e.call.callSid === callSid && e.transcript.type === "final"
      ? [e.transcript]
      : []
  );
}

/** Ports {@link freePort} picks from: below the kernels' ranges for outgoing connections. */
const FREE_PORTS = { from: 20_000, to: 32_767 };

/**
 * A free TCP port on 127.0.0.1 (for child servers that need PUBLIC_URL
 * before listening). Not one the kernel picks for port 0: those come from
 * the range it hands out to outgoing connections (Linux 32768–60999, macOS
 * and Windows 49152–65535), so another test's client could take it before
 * the child binds it (the suite saw "port … is in use" so).
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FREE_PORTS.from + Math.floor(Math.random() * (FREE_PORTS.to - FREE_PORTS.from));
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error(`no free port on 127.0.0.1 in ${FREE_PORTS.from}-${FREE_PORTS.to}`);
}

/** A server in a child process, with every line it wrote kept. */
export interface ChildServer {
  process: Deno.ChildProcess;
  pid: number;
  url: string;
  stdout: string[];
  stderr: string[];
  /** Resolves once the child exited. */
  status: Promise<Deno.CommandStatus>;
  /** Sends a line on the child's stdin (child_server.ts commands). */
  command(line: string): Promise<string>;
  kill(signal?: Deno.Signal): void;
}

/**
 * Runs `main.ts` (or `tests/reliability/child_server.ts`) with `env`, waits
 * for "listening on", and collects stdout and stderr line by line. With
 * `task`, `script` names a deno.json task (`deno task serve`, as users run it).
 */
export async function spawnServer(
  script: string,
  args: string[],
  env: Record<string, string>,
  options: { v8Flags?: string; fileLimit?: number; task?: boolean } = {},
): Promise<ChildServer> {
  const flags = options.v8Flags ? [`--v8-flags=${options.v8Flags}`] : [];
  const command = options.task
    ? [Deno.execPath(), "task", script, ...args]
    : [Deno.execPath(), "run", "-A", ...flags, script, ...args];
  // With a file limit, through bash's `ulimit -n` (the limit then holds for the server alone).
  const [program, ...programArgs] = options.fileLimit === undefined ? command : [
    "bash",
    "-c",
    `ulimit -n ${options.fileLimit} && exec "$@"`,
    "bash",
    ...command,
  ];
  const process = new Deno.Command(program, {
    args: programArgs,
    cwd: ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout: string[] = [];
  const stderr: string[] = [];
  const listening = Promise.withResolvers<string>();
  const replies: Array<(line: string) => void> = [];
  const pump = async (stream: ReadableStream<Uint8Array>, into: string[], isOut: boolean) => {
    for await (const line of readLines(stream, { rest: true })) {
      into.push(line);
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) listening.resolve(match[1]);
      if (isOut && line.startsWith('{"reply"')) replies.shift()?.(line);
    }
  };
  const pumps = Promise.all([
    pump(process.stdout, stdout, true),
    pump(process.stderr, stderr, false),
  ]);
  const writer = process.stdin.getWriter();
  const status = process.status.then(async (s) => {
    await writer.close().catch(() => {});
    await pumps;
    listening.reject(
      new Error(`the server exited (${s.code}) before listening:\n${stderr.join("\n")}`),
    );
    return s;
  });
  const url = await listening.promise;
  return {
    process,
    pid: process.pid,
    url,
    stdout,
    stderr,
    status,
    async command(line: string) {
      const reply = new Promise<string>((resolve) => replies.push(resolve));
      await writer.write(new TextEncoder().encode(line + "\n"));
      return await reply;
    },
    kill(signal: Deno.Signal = "SIGTERM") {
      try {
        process.kill(signal);
      } catch {
        // already gone
      }
    },
  };
}
