/**
 * Console keys for `deno task serve` when stdin is a terminal: `c` clears
 * the audio queued for the bridged call. Raw mode turns Ctrl-C into a byte
 * rather than SIGINT, so it is handed back as an interrupt.
 *
 * @module
 */

/** What the keys do. */
export interface KeyHandlers {
  /** `c`: drop the queued audio of the bridged call. */
  onClear(): void;
  /** Ctrl-C (or Ctrl-D): stop the server, as SIGINT would. */
  onInterrupt(): void;
}

/** Starts listening when stdin is a terminal; returns a function that restores the terminal. */
export function watchKeys(handlers: KeyHandlers): () => void {
  if (!Deno.stdin.isTerminal()) return () => {};
  let active = true;
  Deno.stdin.setRaw(true, { cbreak: true });
  (async () => {
    const buffer = new Uint8Array(16);
    while (active) {
      const n = await Deno.stdin.read(buffer).catch(() => null);
      if (n === null) return;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 0x63 || byte === 0x43) handlers.onClear(); // c, C
        else if (byte === 0x03 || byte === 0x04) handlers.onInterrupt(); // Ctrl-C, Ctrl-D
      }
    }
  })();
  return () => {
    if (!active) return;
    active = false;
    try {
      Deno.stdin.setRaw(false);
    } catch {
      // stdin already gone.
    }
  };
}
