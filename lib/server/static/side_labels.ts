/**
 * How the conversation marks each line's side, shared by the server's pages
 * (pages.ts) and the dashboard's script (the browser loads this file too, as
 * `/assets/server/static/side_labels.ts`): one copy for both.
 *
 * @module
 */

/** Each track's side as its lines name it: the phone party, the laptop. */
export const SIDE_LABELS: Readonly<Record<string, string>> = Object.freeze({
  inbound: "Inbound · phone",
  outbound: "Outbound · laptop",
});
