/**
 * ffmpeg child processes, supervised: started from a list of plans (the
 * first that works wins), restarted with backoff when they die mid-call,
 * and always ended (SIGTERM, then SIGKILL) when the bridge closes.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { ProcessPlan } from "./devices.ts";
import { backoffDelay } from "../async/backoff.ts";
import { sleep } from "../async/sleep.ts";

/** `ffplay` beside a given ffmpeg (same folder), or on the PATH. */
export function ffplayBeside(ffmpeg: string): string {
  const slash = Math.max(ffmpeg.lastIndexOf("/"), ffmpeg.lastIndexOf("\\"));
  if (slash < 0) return "ffplay";
  const ext = /\.exe$/i.test(ffmpeg) ? ".exe" : "";
  return ffmpeg.slice(0, slash + 1) + "ffplay" + ext;
}

/** What a supervised process does. */
export interface SupervisorOptions {
  /** `microphone` or `speaker`: used in log lines. */
  label: string;
  log: Logger;
  /** Path of ffmpeg (`ffplay` is looked for beside it). */
  ffmpeg: string;
  /** The plans to try, best first; `restart` is true after the process died mid-call. */
  plans(restart: boolean): Promise<ProcessPlan[]>;
  /** Pipe stdin (the speaker writes to it). */
  stdin?: boolean;
  /** Handles stdout (the microphone reads it); awaited, so it can apply backpressure. */
  onData?(chunk: Uint8Array): void | Promise<void>;
  /** A clean exit (code 0) is the end, not a failure: a file input reached its end. */
  cleanExitIsEnd?: boolean;
  /** Called once when the source has ended or was given up. */
  onEnd?(reason: "ended" | "failed"): void;
  /** Backoff after the n-th consecutive failure, in ms (default 250 · 2ⁿ⁻¹, at most 5 s). */
  backoffMs?(failures: number): number;
}

/** A process that dies sooner than this after starting, before any output, counts as "did not work". */
const STARTUP_MS = 1500;
/** Running this long resets the backoff. */
const HEALTHY_MS = 10_000;
/** A process that keeps dying (a device that opens but fails) is given up after this many restarts in a row. */
export const MAX_FAILED_RESTARTS = 3;

/** Runs one ffmpeg (or ffplay) for as long as the bridge lives. */
export class Supervisor {
  #options: SupervisorOptions;
  #child: Deno.ChildProcess | null = null;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #stop = new AbortController();
  #done: Promise<void>;
  /** Restarts after a mid-call death. */
  restarts = 0;
  /**
   * Audio writes a process took and kept running with (until closed, or {@link HEALTHY_MS}
   * past its first write): what was played. Writes to a process that failed sooner are not
   * counted: ffmpeg opens the device only after probing seconds of its input, so one that
   * cannot open it takes audio for a while, then fails.
   */
  audioPlayed = 0;
  #audioPending = 0;
  #firstWriteAt: number | null = null;
  /** PIDs of every process this supervisor started. */
  readonly pids: number[] = [];

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#done = this.#run().catch((error) => {
      options.log.error(`${options.label}: ${(error as Error).message}`);
    });
  }

  /** PID of the running process, if any. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Writes to the process's stdin; dropped while it is down, restarting or
   * given up. `audio`: the bytes are the call's audio (not filler silence),
   * counted in {@link audioPlayed} once the process proves it plays.
   */
  write(bytes: Uint8Array, audio = false): void {
    const writer = this.#writer;
    if (!writer) return;
    this.#firstWriteAt ??= performance.now();
    if (audio) this.#audioPending++;
    // A dead pipe rejects: the exit is handled by the run loop, not here.
    writer.write(bytes).catch(() => {});
  }

  /** Counts (or drops) the audio written to the process that just exited or is being closed. */
  #settleWrites(played: boolean): void {
    if (played) this.audioPlayed += this.#audioPending;
    this.#audioPending = 0;
    this.#firstWriteAt = null;
  }

  /** Ends the process (SIGTERM, then SIGKILL after 1 s) and waits until it is gone. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#kill();
    await this.#done;
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000)),
    ]);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited in between.
      }
      await child.status;
    }
  }

  async #run(): Promise<void> {
    const o = this.#options;
    const signal = this.#stop.signal;
    let plans = await o.plans(false);
    let planIndex = 0;
    let everWorked = false;
    let failures = 0;
    while (!signal.aborted) {
      const plan = plans[planIndex];
      if (!plan) {
        o.log.error(
          `${o.label}: no way to open the device worked; the call goes on without the ${o.label}` +
            (o.label === "microphone" ? " (silence is sent)" : ""),
        );
        o.onEnd?.("failed");
        return;
      }
      const program = plan.program === "ffmpeg" ? o.ffmpeg : ffplayBeside(o.ffmpeg);
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(program, {
          args: plan.args,
          stdin: o.stdin ? "piped" : "null",
          stdout: o.onData ? "piped" : "null",
          stderr: "piped",
        }).spawn();
      } catch (error) {
        o.log.warn(`${o.label}: could not start ${program}: ${(error as Error).message}`);
        planIndex++;
        continue;
      }
      this.#child = child;
      this.pids.push(child.pid);
      if (o.stdin) this.#writer = child.stdin.getWriter();
      const startedAt = performance.now();
      let produced = false;
      const stderrTail = collectTail(child.stderr);
      const reading = o.onData
        ? (async () => {
          for await (const chunk of child.stdout) {
            produced = true;
            await o.onData!(chunk);
          }
        })().catch(() => {})
        : Promise.resolve();
      const status = await child.status;
      await reading;
      const tail = await stderrTail;
      if (this.#writer) {
        this.#writer.releaseLock();
        await child.stdin.close().catch(() => {});
        this.#writer = null;
      }
      this.#child = null;
      const firstWriteAt = this.#firstWriteAt;
      this.#settleWrites(
        signal.aborted || (firstWriteAt !== null && performance.now() - firstWriteAt >= HEALTHY_MS),
      );
      if (signal.aborted) return;

      const lived = performance.now() - startedAt;
      if (status.success && o.cleanExitIsEnd) {
        o.onEnd?.("ended");
        return;
      }
      const why = (status.signal ? `killed by ${status.signal}` : `exit code ${status.code}`) +
        (tail ? `: ${tail}` : "");
      const worked = o.onData ? produced : lived >= STARTUP_MS;
      if (!everWorked && !worked) {
        // This way of opening the device does not work here: try the next (pulse → alsa → …).
        o.log.warn(`${o.label}: ${program} ${plan.args.join(" ")} failed (${why})`);
        planIndex++;
        continue;
      }
      everWorked = true;
      failures = lived >= HEALTHY_MS ? 1 : failures + 1;
      if (failures > MAX_FAILED_RESTARTS) {
        o.log.error(
          `${o.label}: ffmpeg stopped ${failures} times in a row (${why}); giving up: the call ` +
            `goes on without the ${o.label}. \`deno task serve --list-devices\` shows the devices ffmpeg sees`,
        );
        o.onEnd?.("failed");
        return;
      }
      const delay = o.backoffMs?.(failures) ?? backoffDelay(failures)!;
      o.log.warn(
        `${o.label}: ffmpeg stopped mid-call (${why}); restarting in ${delay} ms` +
          (o.label === "microphone" ? ", sending silence meanwhile" : ""),
      );
      await sleep(delay, signal);
      if (signal.aborted) return;
      this.restarts++;
      plans = await o.plans(true);
      planIndex = Math.min(planIndex, plans.length - 1);
    }
  }
}

/** Drains a stderr pipe (so ffmpeg never blocks on it) and keeps its last lines. */
async function collectTail(stream: ReadableStream<Uint8Array>): Promise<string> {
  let tail = "";
  try {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      tail = (tail + text).slice(-600);
    }
  } catch {
    // The pipe broke with the process.
  }
  return tail.trim().split("\n").slice(-2).join(" | ");
}
