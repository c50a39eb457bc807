// @ts-check
/**
 * How the conversation marks each line's side, shared by the server's pages
 * (pages.ts) and the dashboard's script (served as `/assets/side_labels.js`):
 * one copy for both.
 *
 * @module
 */

/** Each track's side as its lines name it: the phone party, the laptop. */
export const SIDE_LABELS = Object.freeze({
  inbound: "Inbound · phone",
  outbound: "Outbound · laptop",
});
