/**
 * The transcript API and the dashboard pages, registered on the route
 * groups of `createApp`:
 *
 * - `GET /api/calls` — newest first; `limit`, `offset`, `q` (full-text), `number`, `since`, `until`
 * - `GET /api/calls/:sid`, `DELETE /api/calls/:sid`
 * - `GET /api/calls/:sid/transcript.json|txt|srt|vtt`
 * - `GET /api/calls/:sid/recording.wav` — the stereo recording, with HTTP Range (seeking)
 * - `GET /api/events`, `GET /api/calls/:sid/events` — Server-Sent Events with `Last-Event-ID` resume
 * - `GET /api/calls/:sid/levels` — Server-Sent Events: each track's level once a second while live
 * - `GET /` (dashboard), `GET /calls/:sid` (call page)
 * - `GET /assets/…` — the dashboard's scripts and style (`browser_assets.ts`), the player (wavesurfer.js from node_modules)
 *
 * `createApp` puts all but the assets in its dashboard group (credential, cross-site check, security
 * headers); Twilio's routes are not here.
 *
 * @module
 */
import type { Context } from "hono";
import type { CallQuery, TranscriptStore } from "../store/db.ts";
import {
  audioJson,
  callJson,
  EXPORT_FORMATS,
  EXPORT_TYPES,
  type ExportFormat,
  exportTranscript,
  mergeByTime,
} from "../export/transcript_export.ts";
import type { LiveHub } from "../live/live_hub.ts";
import type { Recordings } from "../recording/recordings.ts";
import { callAudio } from "../export/call_audio.ts";
import { fileRangeResponse } from "./recording_response.ts";
import { callPage, dashboardPage, notFoundPage } from "./pages.ts";
import { BROWSER_ASSETS, readBrowserAsset } from "./browser_assets.ts";
import { parseWholeNumber } from "../parse.ts";
import { UserError } from "../user_error.ts";
import type { OutgoingWebhooks } from "../delivery/outgoing_webhooks.ts";
import { registerDeliveryRoutes } from "./deliveries_api.ts";
import type { RouteGroup } from "./route_group.ts";

/** What the transcript routes need. */
export interface TranscriptRoutesOptions {
  store: TranscriptStore;
  live: LiveHub;
  /** Call recordings; without them no call has one. */
  recordings?: Recordings;
  /** True when the dashboard needs a credential (its pages then offer to log out). */
  loginRequired?: boolean;
  /** Webhook delivery: mounts the deliveries API and shows counts on the dashboard. */
  webhooks?: Pick<OutgoingWebhooks, "outbox" | "worker">;
}

const MAX_LIMIT = 200;

/** Reads and checks the list filters of a query string; a bad one is a {@link UserError} (400). */
export function parseCallQuery(params: URLSearchParams): CallQuery {
  const query: CallQuery = {};
  const limit = params.get("limit");
  if (limit !== null) query.limit = parseWholeNumber(limit, "limit", { min: 1, max: MAX_LIMIT });
  const offset = params.get("offset");
  if (offset !== null) query.offset = parseWholeNumber(offset, "offset");
  const q = params.get("q")?.trim();
  if (q) {
    if (q.length > 200) throw new UserError("q must be at most 200 characters");
    query.search = q;
  }
  const number = params.get("number")?.trim();
  if (number) {
    if (!/^\+?[\d\s\-().]+$/.test(number) || !/\d/.test(number)) {
      throw new UserError(
        `number must be (part of) a phone number such as +15551234567, got "${number}"`,
      );
    }
    query.number = number;
  }
  const since = params.get("since")?.trim();
  if (since) query.since = parseDate("since", since, false);
  const until = params.get("until")?.trim();
  if (until) query.until = parseDate("until", until, true);
  if (query.since !== undefined && query.until !== undefined && query.since >= query.until) {
    throw new UserError("since must be before until");
  }
  return query;
}

/** `2024-05-01` (a whole day; `until` includes it) or an ISO date-time such as `2024-05-01T12:00:00Z`. */
function parseDate(name: string, value: string, endOfDay: boolean): number {
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(value);
  const ms = dateOnly
    ? Date.parse(`${value}T00:00:00Z`)
    : /^\d{4}-\d{2}-\d{2}T/.test(value)
    ? Date.parse(value)
    : NaN;
  if (Number.isNaN(ms)) {
    throw new UserError(
      `${name} must be a date (2024-05-01) or an ISO date-time (2024-05-01T12:00:00Z), got "${value}"`,
    );
  }
  return dateOnly && endOfDay ? ms + 24 * 3600 * 1000 : ms;
}

/**
 * Adds the routes: the dashboard, its API and the webhook deliveries to
 * `guarded` (the dashboard group: credential, cross-site check, security
 * headers), the player's and the dashboard's static files to `open` (the
 * public group).
 */
export function registerTranscriptRoutes(
  groups: { guarded: RouteGroup; open: RouteGroup },
  options: TranscriptRoutesOptions,
): void {
  const { store, live, recordings } = options;
  const { guarded: app, open } = groups;
  const isActive = (sid: string) => live.activeCalls.some((c) => c.callSid === sid);
  const audioOf = (sid: string) => callAudio(store, recordings, sid);

  // The dashboard's own files and the player's library (from node_modules): public code.
  for (const path of BROWSER_ASSETS) {
    open.get(`/assets/${path}`, async (c) => {
      const { body, contentType } = await readBrowserAsset(path);
      return c.body(body, 200, { "content-type": contentType, "cache-control": "no-cache" });
    });
  }

  const webhooks = options.webhooks;
  if (webhooks) registerDeliveryRoutes(app, webhooks.outbox, () => webhooks.worker.wake());

  app.get("/api/calls", async (c) => {
    const params = new URL(c.req.url).searchParams;
    const query = parseCallQuery(params);
    const page = await store.listCalls(query);
    return c.json({
      calls: page.calls.map((call) => callJson(call, isActive(call.callSid))),
      total: page.total,
      limit: query.limit ?? 50,
      offset: query.offset ?? 0,
    });
  });

  app.get("/api/events", (c) => {
    const lastId = c.req.header("last-event-id") ?? c.req.query("since");
    return live.sse(lastId);
  });

  app.get("/api/calls/:sid", async (c) => {
    const call = await store.getCall(c.req.param("sid"));
    if (!call) return unknownCall(c);
    return c.json({
      ...callJson(call, isActive(call.callSid)),
      ...audioJson(await audioOf(call.callSid)),
      segments: mergeByTime(await store.segments(call.callSid)),
    });
  });

  app.delete("/api/calls/:sid", async (c) => {
    const sid = c.req.param("sid");
    if (isActive(sid)) {
      return c.json({ error: `call ${sid} is in progress; delete it after it ends` }, 409);
    }
    const deleted = await store.deleteCall(sid);
    // A recording whose call is gone (deleted elsewhere) goes too.
    const recordingDeleted = await recordings?.remove(sid) ?? false;
    if (!deleted && !recordingDeleted) return unknownCall(c);
    return c.json({ deleted: sid, recordingDeleted });
  });

  app.get("/api/calls/:sid/recording.wav", async (c) => {
    const sid = c.req.param("sid");
    const recording = await recordings?.info(sid);
    if (!recording) {
      return c.json({
        error: (await store.getCall(sid))
          ? `call ${sid} has no recording (RECORD_CALLS=0, or removed to stay under RECORDINGS_MAX_GB)`
          : `no call with SID ${sid}`,
      }, 404);
    }
    return fileRangeResponse(recording.path, recording.bytes, c.req.header("range") ?? null, {
      "content-type": "audio/wav",
      "content-disposition": `inline; filename="${sid}.wav"`,
    });
  });

  app.get("/api/calls/:sid/levels", async (c) => {
    const sid = c.req.param("sid");
    if (!isActive(sid) && !(await store.getCall(sid))) return unknownCall(c);
    return live.levelsSse(sid);
  });

  app.get("/api/calls/:sid/events", async (c) => {
    const sid = c.req.param("sid");
    if (!isActive(sid) && !(await store.getCall(sid))) return unknownCall(c);
    const lastId = c.req.header("last-event-id") ?? c.req.query("since");
    return live.sse(lastId, sid);
  });

  app.get("/api/calls/:sid/:file", async (c) => {
    const file = c.req.param("file");
    const format = /^transcript\.([a-z]+)$/.exec(file)?.[1] as ExportFormat | undefined;
    if (!format || !EXPORT_FORMATS.includes(format)) {
      return c.json({
        error: `unknown export "${file}"; use transcript.${EXPORT_FORMATS.join(", transcript.")}`,
      }, 404);
    }
    const call = await store.getCall(c.req.param("sid"));
    if (!call) return unknownCall(c);
    const body = exportTranscript(
      format,
      call,
      await store.segments(call.callSid),
      await audioOf(call.callSid),
    );
    return c.body(body, 200, {
      "content-type": EXPORT_TYPES[format],
      "content-disposition": `attachment; filename="${call.callSid}.${format}"`,
      "cache-control": "no-store",
    });
  });

  app.get("/", async (c) => {
    const params = new URL(c.req.url).searchParams;
    let query: CallQuery;
    try {
      query = parseCallQuery(params);
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      return c.html(
        dashboardPage({
          active: [],
          history: { calls: [], total: 0 },
          query: {},
          params,
          error: error.message,
          lastEventId: live.lastId,
          activeSegments: new Map(),
        }),
        400,
      );
    }
    query.limit ??= 25;
    const active = (await Promise.all(
      live.activeCalls.map((a) => store.getCall(a.callSid as string)),
    )).filter((call) => call !== null);
    const activeSids = new Set(active.map((call) => call.callSid));
    const history = await store.listCalls(query);
    const activeSegments = new Map(
      await Promise.all(
        active.map(async (call) => [call.callSid, await store.segments(call.callSid)] as const),
      ),
    );
    history.calls = history.calls.filter((call) => !activeSids.has(call.callSid));
    return c.html(dashboardPage({
      active,
      history,
      query,
      params,
      lastEventId: live.lastId,
      activeSegments,
      loggedIn: Boolean(options.loginRequired),
      webhooks: webhooks && {
        failed: await webhooks.outbox.count("failed"),
        pending: await webhooks.outbox.count("pending"),
      },
    }));
  });

  app.get("/calls/:sid", async (c) => {
    const call = await store.getCall(c.req.param("sid"));
    if (!call) return c.html(notFoundPage(c.req.param("sid")), 404);
    return c.html(callPage({
      styleNonce: c.get("styleNonce"),
      loggedIn: Boolean(options.loginRequired),
      call,
      active: isActive(call.callSid),
      segments: mergeByTime(await store.segments(call.callSid)),
      lastEventId: live.lastId,
      audio: await audioOf(call.callSid),
    }));
  });
}

function unknownCall(c: Context) {
  return c.json({ error: `no call with SID ${c.req.param("sid")}` }, 404);
}
