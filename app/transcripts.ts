/**
 * `deno task transcripts`: the stored transcripts from the command line.
 *
 *   list [--search words] [--number digits] [--since date] [--until date] [--limit n] [--json]
 *   show <sid>
 *   export <sid> --format json|txt|srt|vtt [--output file]
 *   delete <sid>
 *   purge --before <date>
 *
 * A `<sid>` is a Call SID, any unique start of one, or `last` (the newest call).
 *
 * Reads the database in DATA_DIR (default ./data), or the PostgreSQL database
 * of DATABASE_URL, also while the server runs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { loadConfig } from "./config.ts";
import { stderrLogger } from "../lib/log.ts";
import { dbPath, type StoredCall, type TranscriptStore } from "../lib/store/db.ts";
import { openTranscriptStore } from "../lib/store/open.ts";
import { Recordings } from "../lib/recording/recordings.ts";
import { callAudio } from "../lib/export/call_audio.ts";
import {
  EXPORT_FORMATS,
  type ExportFormat,
  exportTranscript,
} from "../lib/export/transcript_export.ts";
import { formatDuration } from "../lib/text/time_format.ts";
import { parseCallQuery } from "../lib/server/transcripts_api.ts";
import { UserError } from "../lib/user_error.ts";
import { purgeBefore } from "../lib/store/retention.ts";

const USAGE = `Usage:
  deno task transcripts list [--search words] [--number digits] [--since 2024-05-01]
                             [--until 2024-05-31] [--limit 20] [--offset 0] [--json]
  deno task transcripts show <call-sid>
  deno task transcripts export <call-sid> --format json|txt|srt|vtt [--output file]
  deno task transcripts delete <call-sid>
  deno task transcripts purge --before 2024-05-01   (deletes older calls, their recordings
                                                      and delivered webhook rows)

<call-sid> is a Call SID, any unique start of one (CA3f9e), or last (the newest call).

Reads the transcripts the server stored in DATA_DIR (default ./data),
or in the PostgreSQL database of DATABASE_URL when it is set.`;

/** Runs `deno task transcripts` with `args`; returns the exit code. */
export async function transcriptsCommand(
  args: string[],
  env = Deno.env.toObject(),
): Promise<number> {
  const log = stderrLogger();
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        search: { type: "string" },
        number: { type: "string" },
        since: { type: "string" },
        until: { type: "string" },
        limit: { type: "string" },
        offset: { type: "string" },
        json: { type: "boolean", default: false },
        format: { type: "string" },
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
        before: { type: "string" },
      },
    });
  } catch (error) {
    log.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, sid, ...extra] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  if (!["list", "show", "export", "delete", "purge"].includes(command)) {
    log.error(`unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  const needsSid = command !== "list" && command !== "purge";
  if (needsSid && !sid) {
    log.error(`${command} needs a Call SID (see: deno task transcripts list)\n\n${USAGE}`);
    return 2;
  }
  if (extra.length || (!needsSid && sid)) {
    log.error(`unexpected argument "${extra[0] ?? sid}"\n\n${USAGE}`);
    return 2;
  }

  let before = NaN;
  if (command === "purge") {
    before = purgeCutoff(values.before);
    if (Number.isNaN(before)) {
      log.error(
        `purge needs --before DATE, a date (2024-05-01) or an ISO date-time ` +
          `(2024-05-01T12:00:00Z)${values.before ? `, got "${values.before}"` : ""}`,
      );
      return 2;
    }
  }
  const config = loadConfig(env);
  if (!config.databaseUrl && !existsSync(dbPath(config.dataDir))) {
    log.error(
      `no transcripts in ${
        dbPath(config.dataDir)
      } yet: the server creates it on start (DATA_DIR=${config.dataDir})`,
    );
    return 1;
  }
  let store;
  try {
    store = await openTranscriptStore(config);
  } catch (error) {
    log.error(`${(error as Error).message}${config.databaseUrl ? " (check DATABASE_URL)" : ""}`);
    return 1;
  }
  const path = store.location;
  try {
    if (command === "purge") {
      const recordings = new Recordings({
        dir: Recordings.folder(config.dataDir),
        ...config.recordings,
        log,
      });
      const done = await purgeBefore(store, before, recordings);
      console.log(
        `Deleted ${done.calls} call(s), ${done.recordings} recording(s) and ${done.webhooks} ` +
          `webhook row(s) from before ${new Date(before).toISOString()}.`,
      );
      return 0;
    }
    if (command === "list") {
      const params = new URLSearchParams();
      for (const key of ["number", "since", "until", "limit", "offset"] as const) {
        if (values[key] !== undefined) params.set(key, values[key]);
      }
      if (values.search !== undefined) params.set("q", values.search);
      const query = parseCallQuery(params);
      query.limit ??= 20;
      const page = await store.listCalls(query);
      if (values.json) {
        console.log(JSON.stringify(page, null, 2));
        return 0;
      }
      if (page.calls.length === 0) {
        console.log("No calls.");
        return 0;
      }
      for (const call of page.calls) {
        const started = new Date(call.startedAt).toISOString().replace("T", " ").slice(0, 19);
        const duration = call.durationMs === null ? "-" : formatDuration(call.durationMs);
        console.log(
          [
            call.callSid,
            started,
            `${call.from ?? "?"} -> ${call.to ?? "?"}`,
            duration.padStart(7),
            call.status.padEnd(11),
            `${call.segmentCount} lines`,
          ].join("  "),
        );
      }
      const shown = (query.offset ?? 0) + page.calls.length;
      if (shown < page.total) {
        console.log(`(${shown} of ${page.total}; --offset ${shown} for more)`);
      }
      return 0;
    }

    const call = await findCall(store, sid);
    if (typeof call === "string") {
      log.error(`${call} in ${path} (see: deno task transcripts list)`);
      return 1;
    }
    const recordings = new Recordings({
      dir: Recordings.folder(config.dataDir),
      ...config.recordings,
      log,
    });
    if (command === "delete") {
      if (call.status === "in-progress") {
        log.error(`call ${call.callSid} is in progress; delete it after it ends`);
        return 1;
      }
      await store.deleteCall(call.callSid);
      const recording = await recordings.remove(call.callSid);
      log.info(`deleted call ${call.callSid}${recording ? " and its recording" : ""}`);
      return 0;
    }
    let format: ExportFormat = "txt";
    if (command === "export") {
      if (!values.format || !EXPORT_FORMATS.includes(values.format as ExportFormat)) {
        log.error(
          `export needs --format ${EXPORT_FORMATS.join("|")}${
            values.format ? `, got "${values.format}"` : ""
          }`,
        );
        return 2;
      }
      format = values.format as ExportFormat;
    }
    const audio = await callAudio(store, recordings, call.callSid);
    const text = exportTranscript(format, call, await store.segments(call.callSid), audio);
    if (values.output) {
      Deno.writeTextFileSync(values.output, text);
      log.info(`wrote ${values.output}`);
    } else {
      Deno.stdout.writeSync(new TextEncoder().encode(text));
    }
    return 0;
  } catch (error) {
    if (error instanceof UserError) {
      log.error(error.message.replace(/^q /, "--search ").replace(/^(\w+) must/, "--$1 must"));
      return 2;
    }
    throw error;
  } finally {
    await store.close();
  }
}

/** Calls are scanned for a SID prefix this many at a time. */
const SCAN_PAGE = 500;

/**
 * The call `given` names: its full SID, a unique start of one (any case), or
 * `last`, the newest call. Otherwise why not, e.g. `no call with SID CA12`.
 */
async function findCall(store: TranscriptStore, given: string): Promise<StoredCall | string> {
  if (given === "last") {
    const { calls } = await store.listCalls({ limit: 1 });
    return calls[0] ?? "no calls yet";
  }
  const exact = await store.getCall(given);
  if (exact) return exact;
  const prefix = given.toLowerCase();
  const matches: StoredCall[] = [];
  for (let offset = 0;; offset += SCAN_PAGE) {
    const { calls } = await store.listCalls({ limit: SCAN_PAGE, offset });
    matches.push(...calls.filter((c) => c.callSid.toLowerCase().startsWith(prefix)));
    if (calls.length < SCAN_PAGE || matches.length > 1) break;
  }
  if (matches.length === 1) return matches[0];
  return matches.length
    ? `"${given}" starts more than one Call SID (${matches[0].callSid}, ${
      matches[1].callSid
    }, …): give more of it`
    : `no call with SID ${given}`;
}

/** `--before`: a date (midnight UTC) or an ISO date-time, as epoch ms; NaN when not one. */
function purgeCutoff(value: string | undefined): number {
  if (!value) return NaN;
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return Date.parse(`${value}T00:00:00Z`);
  return /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : NaN;
}
