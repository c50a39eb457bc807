/**
 * The webhook deliveries API (our outgoing webhooks; Twilio's incoming ones
 * are in `webhooks.ts`), registered on the dashboard's route group (behind
 * its credential and cross-site checks):
 *
 * - `GET /api/webhooks/deliveries` — newest first; `status` (`pending`, `delivered`, `failed`), `limit`, `offset`
 * - `POST /api/webhooks/deliveries/:id/retry` — a failed delivery is sent again, with a new retry window
 * - `POST /api/webhooks/deliveries/retry` — every failed delivery is
 * - `POST /webhooks/retry` — the same from the dashboard's form (redirects back)
 *
 * @module
 */
import { DELIVERY_STATUSES, type DeliveryStatus, type Outbox } from "../delivery/outbox.ts";
import { endpointLabel } from "../delivery/settings.ts";
import type { RouteGroup } from "./route_group.ts";

/** Adds the routes to `app`; `wake` is told when failed deliveries are pending again. */
export function registerDeliveryRoutes(
  app: RouteGroup,
  outbox: Outbox,
  wake: () => void = () => {},
): void {
  app.get("/api/webhooks/deliveries", async (c) => {
    const status = c.req.query("status");
    if (status !== undefined && !DELIVERY_STATUSES.includes(status as DeliveryStatus)) {
      return c.json(
        { error: `status must be ${DELIVERY_STATUSES.join(", ")}, got "${status}"` },
        400,
      );
    }
    const limit = bounded(c.req.query("limit"), 50, 1, 200);
    const offset = bounded(c.req.query("offset"), 0, 0, Number.MAX_SAFE_INTEGER);
    if (limit === null || offset === null) {
      return c.json(
        { error: "limit must be a whole number from 1 to 200, offset one from 0" },
        400,
      );
    }
    const page = await outbox.list({ status: status as DeliveryStatus | undefined, limit, offset });
    return c.json({
      deliveries: page.deliveries.map((d) => ({
        id: d.id,
        webhookId: d.messageId,
        // Without user info or query: either may hold the endpoint's credentials.
        endpoint: endpointLabel(d.endpoint),
        callSid: d.callSid,
        event: d.eventType,
        status: d.status,
        attempts: d.attempts,
        createdAt: new Date(d.createdAt).toISOString(),
        nextAttemptAt: d.status === "pending" ? new Date(d.nextAttemptAt).toISOString() : null,
        deliveredAt: d.deliveredAt === null ? null : new Date(d.deliveredAt).toISOString(),
        lastError: d.lastError,
        body: JSON.parse(d.body),
      })),
      total: page.total,
      limit,
      offset,
    });
  });

  app.post("/api/webhooks/deliveries/retry", async (c) => {
    const retried = await outbox.retryFailed(Date.now());
    if (retried) wake();
    return c.json({ retried });
  });

  app.post("/api/webhooks/deliveries/:id/retry", async (c) => {
    const id = c.req.param("id");
    if (!/^\d+$/.test(id)) {
      return c.json({ error: `delivery id must be a number, got "${id}"` }, 400);
    }
    const retried = await outbox.retryFailed(Date.now(), Number(id));
    if (!retried) return c.json({ error: `no failed delivery with id ${id}` }, 404);
    wake();
    return c.json({ retried });
  });

  app.post("/webhooks/retry", async (c) => {
    if (await outbox.retryFailed(Date.now())) wake();
    return c.redirect("/", 303);
  });
}

function bounded(value: string | undefined, fallback: number, min: number, max: number) {
  if (value === undefined) return fallback;
  const n = Number(value);
  return /^\d+$/.test(value) && n >= min && n <= max ? n : null;
}
