/**
 * A download progress bar on stderr.
 *
 * @module
 */
import type { ProgressCallback } from "../model/download.ts";

/** Where {@link progressBar} draws; defaults to stderr. */
export interface ProgressBarOptions {
  write?: (text: string) => void;
  isTTY?: boolean;
  width?: number;
}

/**
 * A download progress bar on stderr: redrawn in place with `\r` on a terminal
 * (at most every 100 ms), a line per 10% otherwise (per 10 MB when the size is
 * unknown). Ends with a newline when the download completes or stops.
 */
export function progressBar(label: string, options: ProgressBarOptions = {}): ProgressCallback {
  const encoder = new TextEncoder();
  const write = options.write ?? ((text: string) => {
    try {
      Deno.stderr.writeSync(encoder.encode(text));
    } catch {
      // stderr closed: nothing to show
    }
  });
  const tty = options.isTTY ?? safeIsTerminal();
  const width = options.width ?? 30;
  let lastDraw = 0;
  let lastStep = -1;
  let open = false; // a TTY line without its newline
  let done = false;
  const mb = (n: number) => (n / 1e6).toFixed(1);

  const callback: ProgressCallback = (received, total) => {
    if (done) return;
    const finished = total !== undefined && received >= total;
    const fraction = total ? Math.min(1, received / total) : undefined;
    const amount = total !== undefined ? `${mb(received)}/${mb(total)} MB` : `${mb(received)} MB`;
    if (tty) {
      const now = Date.now();
      if (!finished && now - lastDraw < 100 && open) return;
      lastDraw = now;
      const bar = fraction === undefined
        ? ""
        : `[${"#".repeat(Math.round(fraction * width)).padEnd(width, ".")}] ${
          String(Math.floor(fraction * 100)).padStart(3)
        }% `;
      write(`\r${label} ${bar}${amount}\x1b[K`);
      open = true;
    } else {
      if (finished) {
        if (lastStep !== 10 || fraction === undefined) write(`${label}: 100% (${amount})\n`);
      } else {
        // A line per 10%, or per 10 MB when the size is unknown.
        const step = fraction !== undefined
          ? Math.floor(fraction * 10)
          : Math.floor(received / 1e7);
        if (step > lastStep) {
          lastStep = step;
          write(`${label}: ${fraction !== undefined ? `${step * 10}% ` : ""}(${amount})\n`);
        }
      }
    }
    if (finished) {
      done = true;
      if (open) write("\n");
      open = false;
    }
  };
  callback.end = () => {
    if (open) write("\n");
    open = false;
    done = true;
  };
  return callback;
}

function safeIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}
