/**
 * The public URL Twilio reaches the server at: `PUBLIC_URL` when set;
 * otherwise, with `NGROK_AUTHTOKEN`, an ngrok tunnel opened in-process with
 * `@ngrok/ngrok` (a Node-API addon, loaded only when needed); otherwise the
 * local address, with a warning that Twilio cannot reach it.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { UserError } from "../user_error.ts";

/** Where Twilio reaches us, and how to stop offering it. */
export interface PublicEndpoint {
  url: string;
  source: "PUBLIC_URL" | "ngrok" | "local";
  close(): Promise<void>;
}

/** Options of {@link openPublicUrl}. */
export interface TunnelOptions {
  /** `PUBLIC_URL`, already validated. */
  publicUrl?: string;
  /** `NGROK_AUTHTOKEN`; never logged. */
  ngrokAuthtoken?: string;
  /** The local address the tunnel forwards to, e.g. `http://127.0.0.1:8080`. */
  localUrl: string;
  log: Logger;
  /** Give up on the tunnel after this long (default 15 s). */
  timeoutMs?: number;
}

/** Decides the public URL, opening an ngrok tunnel if that is how it is configured. */
export async function openPublicUrl(options: TunnelOptions): Promise<PublicEndpoint> {
  const none = async () => {};
  if (options.publicUrl) return { url: options.publicUrl, source: "PUBLIC_URL", close: none };
  if (!options.ngrokAuthtoken) {
    options.log.warn(
      `Twilio cannot reach ${options.localUrl} (a local address), so real calls will fail. ` +
        "Set NGROK_AUTHTOKEN in .env to open an ngrok tunnel at startup " +
        "(token: https://dashboard.ngrok.com/get-started/your-authtoken), or run a tunnel " +
        "yourself and set PUBLIC_URL to its https URL.",
    );
    return { url: options.localUrl, source: "local", close: none };
  }
  const token = options.ngrokAuthtoken;
  const redact = (text: string) => text.replaceAll(token, "<NGROK_AUTHTOKEN>");
  let ngrok: typeof import("@ngrok/ngrok");
  try {
    ngrok = (await import("@ngrok/ngrok")).default;
  } catch (error) {
    throw new UserError(
      `could not load @ngrok/ngrok (a Node-API addon; run with --allow-ffi, and check that ` +
        `your platform has a prebuilt binary): ${redact((error as Error).message)}. ` +
        "Alternatively run ngrok yourself and set PUBLIC_URL.",
    );
  }
  const timeoutMs = options.timeoutMs ?? 15_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const listener = await Promise.race([
      ngrok.forward({ addr: new URL(options.localUrl).host, authtoken: token }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer from ngrok within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
      }),
    ]);
    const url = listener.url();
    if (!url) throw new Error("ngrok gave no URL");
    options.log.info(`ngrok tunnel open: ${url} → ${options.localUrl}`);
    return {
      url: url.replace(/\/$/, ""),
      source: "ngrok",
      close: async () => {
        await listener.close().catch(() => {});
      },
    };
  } catch (error) {
    // A half-open session would keep the process alive.
    await ngrok.disconnect().catch(() => {});
    throw new UserError(
      `could not open the ngrok tunnel: ${redact((error as Error).message)}. ` +
        "Check NGROK_AUTHTOKEN (https://dashboard.ngrok.com/get-started/your-authtoken) and " +
        "your internet connection, or run a tunnel yourself and set PUBLIC_URL.",
    );
  } finally {
    clearTimeout(timer);
  }
}
