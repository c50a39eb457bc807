/// <reference lib="dom" />
/**
 * The call page's player (served as `/assets/server/static/player.ts`): wavesurfer.js with
 * regions, two lanes (top inbound, bottom outbound), each line of the
 * conversation a region; while it plays, the line being spoken is
 * highlighted and scrolled into view; a click on a line plays from its start.
 * wavesurfer's shadow-DOM `<style>` carries the page's CSP nonce
 * (`#player[data-style-nonce]`). Loaded by the page, or by `dashboard.ts`
 * once a live call has ended and its player was put on the page.
 *
 * @module
 */
// @ts-ignore: served under /assets/ from node_modules (wavesurfer.js, pinned in deno.json)
import WaveSurfer from "/assets/wavesurfer.esm.js";
// @ts-ignore: as above
import RegionsPlugin from "/assets/regions.esm.js";
import { clock } from "../../text/time_format.ts";

const box = document.getElementById("player") as HTMLElement;
const regions = RegionsPlugin.create();
const player = WaveSurfer.create({
  container: "#waveform",
  url: box.dataset.src,
  height: 64,
  barWidth: 2,
  barGap: 1,
  cursorColor: "#111827",
  normalize: true,
  cspNonce: box.dataset.styleNonce,
  splitChannels: [{ waveColor: "#93b4f5", progressColor: "#2563eb" }, {
    waveColor: "#86d9a8",
    progressColor: "#16a34a",
  }],
  plugins: [regions],
});
(window as unknown as { callscribePlayer: unknown }).callscribePlayer = player;
const lines = [...document.querySelectorAll("#conversation .msg.final")].map((node) => {
  const el = node as HTMLElement;
  return {
    el,
    start: Number(el.dataset.start) / 1000,
    end: Number(el.dataset.end) / 1000,
    channel: el.dataset.track === "inbound" ? 0 : 1,
  };
});
const play = document.getElementById("play") as HTMLButtonElement;
const time = document.getElementById("player-time") as HTMLElement;
player.on("decode", () => {
  for (const l of lines) {
    regions.addRegion({
      start: l.start,
      end: Math.max(l.end, l.start + 0.05),
      channelIdx: l.channel,
      drag: false,
      resize: false,
      color: l.channel === 0 ? "rgba(37,99,235,.16)" : "rgba(22,163,74,.16)",
    });
  }
});
player.on("ready", () => {
  play.disabled = false;
  box.dataset.ready = "1";
});
player.on("play", () => {
  play.textContent = "Pause";
});
player.on("pause", () => {
  play.textContent = "Play";
});
player.on("timeupdate", (t: number) => {
  time.textContent = clock(t * 1000);
  for (const l of lines) {
    const now = t >= l.start && t < l.end;
    if (now === l.el.classList.contains("current")) continue;
    l.el.classList.toggle("current", now);
    // The page scrolls as a whole, under the sticky player: the middle of the window stays clear.
    if (now && player.isPlaying()) l.el.scrollIntoView({ block: "center" });
  }
});
play.addEventListener("click", () => player.playPause());
for (const l of lines) {
  l.el.addEventListener("click", () => {
    player.setTime(l.start);
  });
}
document.addEventListener("keydown", (event) => {
  const target = event.target as Element | null;
  if (event.code !== "Space" || target?.closest?.("input, textarea, select, button, a")) return;
  event.preventDefault();
  player.playPause();
});
