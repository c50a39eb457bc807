/**
 * Base64 for media payloads, on the engine's native implementation.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";

/** Decodes base64; throws {@link ProtocolError} on anything that is not base64. */
export function decodeBase64(text: string): Uint8Array {
  try {
    return Uint8Array.fromBase64(text);
  } catch {
    throw new ProtocolError("media.payload is not valid base64");
  }
}

/** Encodes bytes as base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}
