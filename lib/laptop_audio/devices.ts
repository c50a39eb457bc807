/**
 * Audio endpoints of the laptop bridge (`AUDIO_INPUT`, `AUDIO_OUTPUT`) and
 * the ffmpeg arguments that open them on each OS.
 *
 * A value is read as follows, in this order:
 * - `none` (or empty): no microphone / no speaker.
 * - `default`: the OS default device (Linux: PulseAudio, then ALSA; macOS:
 *   AVFoundation / AudioToolbox; Windows: the first DirectShow microphone,
 *   and `ffplay` for playback).
 * - `FORMAT:DEVICE` where FORMAT is an ffmpeg device format we know
 *   (`pulse:NAME`, `alsa:hw:0`, `avfoundation::0`, `dshow:audio=Mic`,
 *   `lavfi:sine`, `audiotoolbox:0`, `ffplay:`): that device.
 * - anything else is a file path. Input: an existing file ffmpeg can read
 *   (WAV, MP3, …). Output: a path ending in `.wav`, written as µ-law 8 kHz.
 *
 * Windows drive letters (`C:\…`) are single letters, never a known format,
 * so they stay paths.
 *
 * @module
 */
import { UserError } from "../user_error.ts";
import { ffplayBeside } from "./ffmpeg.ts";

/** Where the laptop's audio comes from or goes to. */
export type AudioEndpoint =
  | { kind: "none" }
  | { kind: "file"; path: string }
  | { kind: "device"; format: string; name: string };

/** ffmpeg capture formats accepted in `AUDIO_INPUT` as `FORMAT:DEVICE`. */
export const INPUT_FORMATS = [
  "pulse",
  "alsa",
  "avfoundation",
  "dshow",
  "openal",
  "oss",
  "jack",
  "sndio",
  "lavfi",
] as const;

/** Playback targets accepted in `AUDIO_OUTPUT` as `FORMAT:DEVICE`. */
export const OUTPUT_FORMATS = ["pulse", "alsa", "audiotoolbox", "oss", "sndio", "ffplay"] as const;

const DEVICE_HELP = {
  input:
    "default, none, pulse:NAME, alsa:hw:0, avfoundation::0, dshow:audio=NAME, lavfi:FILTER, or the path of an existing audio file",
  output:
    "default, none, pulse:NAME, alsa:hw:0, audiotoolbox:INDEX, ffplay:, or a path ending in .wav",
};

/** Parses an `AUDIO_INPUT`-style value; `name` is the variable or flag it came from. */
export function parseAudioInput(value: string | undefined, name = "AUDIO_INPUT"): AudioEndpoint {
  return parseEndpoint(value, name, "input");
}

/** Parses an `AUDIO_OUTPUT`-style value; `name` is the variable or flag it came from. */
export function parseAudioOutput(value: string | undefined, name = "AUDIO_OUTPUT"): AudioEndpoint {
  return parseEndpoint(value, name, "output");
}

function parseEndpoint(
  raw: string | undefined,
  name: string,
  direction: "input" | "output",
): AudioEndpoint {
  const value = (raw ?? "").trim();
  if (value === "" || value === "none") return { kind: "none" };
  if (value === "default") return { kind: "device", format: "default", name: "default" };
  const formats: readonly string[] = direction === "input" ? INPUT_FORMATS : OUTPUT_FORMATS;
  const match = /^([a-z0-9]+):(.*)$/.exec(value);
  if (match && formats.includes(match[1])) {
    return { kind: "device", format: match[1], name: match[2] };
  }
  if (direction === "input") {
    let isFile = false;
    try {
      isFile = Deno.statSync(value).isFile;
    } catch {
      // Reported below with the accepted forms.
    }
    if (!isFile) {
      throw new UserError(
        `${name}="${value}" is neither an existing file nor a known device; use ${DEVICE_HELP.input} ` +
          "(deno task serve --list-devices shows what ffmpeg sees)",
      );
    }
    return { kind: "file", path: value };
  }
  if (!/\.wav$/i.test(value)) {
    throw new UserError(
      `${name}="${value}": a file output must end in .wav (it is written as a WAV file); ` +
        `or use ${DEVICE_HELP.output}`,
    );
  }
  const slash = Math.max(value.lastIndexOf("/"), value.lastIndexOf("\\"));
  const dir = slash > 0 ? value.slice(0, slash) : ".";
  try {
    if (!Deno.statSync(dir).isDirectory) throw new Error();
  } catch {
    throw new UserError(`${name}="${value}": folder "${dir}" does not exist; create it first`);
  }
  return { kind: "file", path: value };
}

/** A short human description of an endpoint, for log lines. */
export function describeEndpoint(endpoint: AudioEndpoint): string {
  if (endpoint.kind === "none") return "none";
  if (endpoint.kind === "file") return `file ${endpoint.path}`;
  return endpoint.format === "default" ? "default device" : `${endpoint.format}:${endpoint.name}`;
}

const COMMON = ["-hide_banner", "-nostdin", "-loglevel", "error"];
const MULAW_OUT = [
  "-vn",
  "-ac",
  "1",
  "-ar",
  "8000",
  "-f",
  "mulaw",
  "-flush_packets",
  "1",
  "pipe:1",
];
const MULAW_IN = ["-f", "mulaw", "-ar", "8000", "-ac", "1", "-i", "pipe:0"];

/** One way to start a process: the program (`ffmpeg` or `ffplay`) and its arguments. */
export interface ProcessPlan {
  program: "ffmpeg" | "ffplay";
  args: string[];
}

/**
 * The ffmpeg invocations that capture `endpoint` as µ-law 8 kHz mono on
 * stdout, best first (for `default`, the fallbacks). `seekMs` resumes a file,
 * which is read as fast as it is taken (the microphone paces what it sends).
 */
export async function capturePlans(
  endpoint: AudioEndpoint,
  options: { os?: typeof Deno.build.os; seekMs?: number; ffmpeg?: string } = {},
): Promise<ProcessPlan[]> {
  const os = options.os ?? Deno.build.os;
  const plan = (input: string[]): ProcessPlan => ({
    program: "ffmpeg",
    args: [...COMMON, ...input, ...MULAW_OUT],
  });
  if (endpoint.kind === "none") return [];
  if (endpoint.kind === "file") {
    const seek = options.seekMs ? ["-ss", (options.seekMs / 1000).toFixed(3)] : [];
    return [plan([...seek, "-i", endpoint.path])];
  }
  if (endpoint.format !== "default") {
    // lavfi generates as fast as it can; -re makes it behave like a live device.
    const re = endpoint.format === "lavfi" ? ["-re"] : [];
    return [plan([...re, "-f", endpoint.format, "-i", endpoint.name])];
  }
  if (os === "darwin") {
    return [
      plan(["-f", "avfoundation", "-i", ":default"]),
      plan(["-f", "avfoundation", "-i", ":0"]),
    ];
  }
  if (os === "windows") {
    const name = options.ffmpeg ? await firstDshowMicrophone(options.ffmpeg) : undefined;
    return name ? [plan(["-f", "dshow", "-i", `audio=${name}`])] : [];
  }
  return [plan(["-f", "pulse", "-i", "default"]), plan(["-f", "alsa", "-i", "default"])];
}

/** The invocations that play µ-law 8 kHz mono from stdin on `endpoint` (a device), best first. */
export function playbackPlans(
  endpoint: AudioEndpoint,
  options: { os?: typeof Deno.build.os } = {},
): ProcessPlan[] {
  const os = options.os ?? Deno.build.os;
  if (endpoint.kind !== "device") return [];
  const ffmpeg = (output: string[]): ProcessPlan => ({
    program: "ffmpeg",
    args: [...COMMON, ...MULAW_IN, ...output],
  });
  // ffmpeg has no Windows audio output device; ffplay (shipped with it) plays through SDL/WASAPI.
  const ffplay: ProcessPlan = {
    program: "ffplay",
    args: [
      "-hide_banner",
      "-loglevel",
      "error",
      "-nodisp",
      "-autoexit",
      "-f",
      "mulaw",
      "-sample_rate",
      "8000",
      "-i",
      "pipe:0",
    ],
  };
  const { format, name } = endpoint;
  switch (format) {
    case "default":
      if (os === "darwin") return [ffmpeg(["-f", "audiotoolbox", "-"]), ffplay];
      if (os === "windows") return [ffplay];
      return [
        ffmpeg(["-f", "pulse", "callscribe"]),
        ffmpeg(["-f", "alsa", "default"]),
        ffplay,
      ];
    case "ffplay":
      return [ffplay];
    case "pulse":
      return [ffmpeg(["-f", "pulse", ...(name ? ["-device", name] : []), "callscribe"])];
    case "audiotoolbox":
      return [ffmpeg(["-f", "audiotoolbox", ...(name ? ["-audio_device_index", name] : []), "-"])];
    default:
      return [ffmpeg(["-f", format, name || "default"])];
  }
}

/** How long a device probe waits for a device to give (or take) audio. */
const PROBE_MS = 3000;

/**
 * Opens a device endpoint for a moment, as the bridge would: a microphone
 * must produce audio, a speaker must take 200 ms of silence and exit
 * cleanly. Resolves with null when one of its plans works, else why not
 * (the last line ffmpeg printed).
 */
export async function probeDevice(
  endpoint: AudioEndpoint,
  direction: "input" | "output",
  ffmpeg: string,
): Promise<string | null> {
  if (endpoint.kind !== "device") return null;
  const plans = direction === "input"
    ? await capturePlans(endpoint, { ffmpeg })
    : playbackPlans(endpoint);
  // Why each way failed, e.g. "pulse: Unknown input format; alsa: default: Input/output error".
  const reasons: string[] = [];
  for (const plan of plans) {
    const format = plan.program === "ffplay"
      ? "ffplay"
      : plan.args.filter((arg, i) => plan.args[i - 1] === "-f" && arg !== "mulaw")[0] ?? "ffmpeg";
    const program = plan.program === "ffmpeg" ? ffmpeg : ffplayBeside(ffmpeg);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args: plan.args,
        stdin: direction === "output" ? "piped" : "null",
        stdout: direction === "input" ? "piped" : "null",
        stderr: "piped",
      }).spawn();
    } catch {
      reasons.push(`${format}: not found${plan.program === "ffplay" ? " beside ffmpeg" : ""}`);
      continue;
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, PROBE_MS);
    const stderr = new Response(child.stderr).text();
    let works = false;
    if (direction === "input") {
      const reader = child.stdout.getReader();
      const first = await reader.read().catch(() => ({ done: true, value: undefined }));
      works = !first.done && (first.value?.length ?? 0) > 0;
      await reader.cancel().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited already.
      }
      await child.status;
    } else {
      const writer = child.stdin.getWriter();
      await writer.write(new Uint8Array(1600).fill(0xff)).catch(() => {});
      await writer.close().catch(() => {});
      works = (await child.status).success;
    }
    clearTimeout(timer);
    const lines = (await stderr).trim().split("\n").filter(Boolean);
    if (works) return null;
    reasons.push(`${format}: ${lines.at(-1) ?? "failed"}`);
  }
  return reasons.join("; ") || "no way to open it on this OS";
}

/** Windows has no "default" DirectShow name: take the first audio device ffmpeg lists. */
async function firstDshowMicrophone(ffmpeg: string): Promise<string | undefined> {
  const text = await ffmpegOutput(ffmpeg, [
    "-hide_banner",
    "-list_devices",
    "true",
    "-f",
    "dshow",
    "-i",
    "dummy",
  ]);
  for (const line of text.split("\n")) {
    const match = /"([^"]+)"\s+\(audio\)/.exec(line);
    if (match) return match[1];
  }
  return undefined;
}

/** Runs ffmpeg to completion and returns stdout and stderr together (empty when it cannot run). */
export async function ffmpegOutput(ffmpeg: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(ffmpeg, { args, stdin: "null" }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return decode(out.stdout) + decode(out.stderr);
  } catch {
    return "";
  }
}

/** The `AUDIO_INPUT` / `AUDIO_OUTPUT` forms that work on each OS (the help `--list-devices` ends with). */
const OS_HELP: Record<"linux" | "darwin" | "windows", { input: string; output: string }> = {
  linux: {
    input: "default, none, pulse:NAME, alsa:NAME (e.g. alsa:hw:0), or the path of an audio file",
    output: "default, none, pulse:NAME, alsa:NAME, ffplay:, or a path ending in .wav",
  },
  darwin: {
    input:
      "default, none, avfoundation::INDEX (e.g. avfoundation::0), or the path of an audio file",
    output: "default, none, audiotoolbox:INDEX, ffplay:, or a path ending in .wav",
  },
  windows: {
    input:
      'default, none, dshow:audio=NAME (e.g. "dshow:audio=Microphone (USB)"), or an audio file',
    output: "default (ffplay), none, ffplay:, or a path ending in .wav",
  },
};

/**
 * What `--list-devices` prints: the devices ffmpeg finds on this OS (names
 * only, not ffmpeg's errors) and the forms of AUDIO_INPUT / AUDIO_OUTPUT
 * that work here.
 */
export async function listDevices(
  ffmpeg = "ffmpeg",
  os: typeof Deno.build.os = Deno.build.os,
): Promise<string> {
  const sections: string[] = [];
  /** Adds a section of the device lines `pick` finds in ffmpeg's output for `args`. */
  const run = async (
    title: string,
    args: string[],
    pick: RegExp,
    form: (name: string) => string,
  ) => {
    const text = await ffmpegOutput(ffmpeg, ["-hide_banner", ...args]);
    const names = [...text.matchAll(pick)].map((m) => form(m[1].trim()));
    sections.push(
      `${title}:\n` + (names.length ? names.map((n) => `  ${n}`).join("\n") : "  (none found)"),
    );
  };
  if (os === "darwin") {
    const text = await ffmpegOutput(ffmpeg, [
      "-hide_banner",
      "-f",
      "avfoundation",
      "-list_devices",
      "true",
      "-i",
      "",
    ]);
    const audio = text.split(/AVFoundation audio devices:/)[1] ?? "";
    const inputs = [...audio.matchAll(/\[(\d+)\] (.+)/g)].map((m) =>
      `avfoundation::${m[1]}  (${m[2]})`
    );
    sections.push(
      "Microphones (AUDIO_INPUT):\n" +
        (inputs.length ? inputs.map((n) => `  ${n}`).join("\n") : "  (none found)"),
    );
    await run(
      "Speakers (AUDIO_OUTPUT)",
      [
        "-f",
        "lavfi",
        "-i",
        "anullsrc",
        "-t",
        "0",
        "-f",
        "audiotoolbox",
        "-list_devices",
        "true",
        "-",
      ],
      /\[AudioToolbox[^\]]*\]\s*\[(\d+\][^\n]*)/g,
      (n) => `audiotoolbox:${n.replace("]", "  (")})`,
    );
  } else if (os === "windows") {
    await run(
      "Microphones (AUDIO_INPUT)",
      ["-list_devices", "true", "-f", "dshow", "-i", "dummy"],
      /"([^"]+)"\s+\(audio\)/g,
      (n) => `dshow:audio=${n}`,
    );
  } else {
    // `ffmpeg -sources FORMAT` lists devices as "  name [description]" (a * marks the default).
    const entry = /^[ *]\s*(\S+ \[[^\]]*\])$/gm;
    const described = (format: string) => (n: string) =>
      `${format}:${n.replace(/ \[(.*)\]$/, "  ($1)")}`;
    await run(
      "Microphones, PulseAudio (AUDIO_INPUT)",
      ["-sources", "pulse"],
      entry,
      described("pulse"),
    );
    await run("Microphones, ALSA (AUDIO_INPUT)", ["-sources", "alsa"], entry, described("alsa"));
    await run(
      "Speakers, PulseAudio (AUDIO_OUTPUT)",
      ["-sinks", "pulse"],
      entry,
      described("pulse"),
    );
    await run("Speakers, ALSA (AUDIO_OUTPUT)", ["-sinks", "alsa"], entry, described("alsa"));
  }
  const help = OS_HELP[os === "darwin" || os === "windows" ? os : "linux"];
  sections.push(
    `Set AUDIO_INPUT to one of: ${help.input}\nSet AUDIO_OUTPUT to one of: ${help.output}`,
  );
  return sections.join("\n\n");
}
