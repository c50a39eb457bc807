/**
 * speexdsp 1.2.1's echo canceller and preprocessor, compiled to WebAssembly by
 * scripts/build_speexdsp_wasm.sh and committed beside this module: it runs
 * wherever Deno does, with nothing to install. The module imports nothing.
 *
 * @module
 */

/** SHA-256 of the committed speexdsp.wasm; any other file is refused. */
export const SPEEXDSP_WASM_SHA256 =
  "00c01cbbfae06736cc7ec7da10a2dc168552bafca139e29beb978e6ec3522a69";

/** The functions speexdsp.wasm exports (pointers are byte offsets into `memory`). */
export interface SpeexDspExports {
  memory: WebAssembly.Memory;
  malloc(bytes: number): number;
  free(pointer: number): void;
  speex_echo_state_init_mc(
    frameSize: number,
    filterLength: number,
    mics: number,
    speakers: number,
  ): number;
  speex_echo_cancellation(state: number, rec: number, play: number, out: number): void;
  speex_echo_ctl(state: number, request: number, pointer: number): number;
  speex_echo_state_reset(state: number): void;
  speex_echo_state_destroy(state: number): void;
  speex_preprocess_state_init(frameSize: number, sampleRate: number): number;
  speex_preprocess_run(state: number, pointer: number): number;
  speex_preprocess_ctl(state: number, request: number, pointer: number): number;
  speex_preprocess_state_destroy(state: number): void;
}

const WASM_URL = new URL("./speexdsp.wasm", import.meta.url);
// The compiled module (code, no state) is shared; each canceller gets its own instance and memory.
let compiled: Promise<WebAssembly.Module> | null = null;

/** Reads speexdsp.wasm, checks its SHA-256 against the pin, compiles it once. */
export function loadSpeexDsp(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const bytes = await Deno.readFile(WASM_URL);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== SPEEXDSP_WASM_SHA256) {
      throw new Error(
        `Cannot load ${WASM_URL.pathname}: its SHA-256 is ${hex}, not the pinned ` +
          `${SPEEXDSP_WASM_SHA256}; restore it with git checkout, or rebuild it with ` +
          `scripts/build_speexdsp_wasm.sh and update the pin`,
      );
    }
    return await WebAssembly.compile(bytes);
  })();
  compiled.catch(() => (compiled = null));
  return compiled;
}

/** A fresh instance of the compiled speexdsp (its own memory). */
export function instantiateSpeexDsp(module: WebAssembly.Module): SpeexDspExports {
  return new WebAssembly.Instance(module, {}).exports as unknown as SpeexDspExports;
}
