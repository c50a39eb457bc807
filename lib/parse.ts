/**
 * The value parsers for text that comes from people (environment variables,
 * flags, query strings): each returns the value or throws a {@link UserError}
 * like `PORT must be a port number (0-65535), got "x"`, naming the setting.
 *
 * @module
 */
import { UserError } from "./user_error.ts";

/** How a parser describes the value it expects, e.g. `a port number (0-65535)`. */
export interface ExpectedValue {
  /** Replaces the default description in the message. */
  expected?: string;
  /** Appended to the message, e.g. ` (default 30)`. */
  hint?: string;
}

function fail(name: string, value: string, expected: string, hint = ""): never {
  throw new UserError(`${name} must be ${expected}, got "${value}"${hint}`);
}

/** A whole number from `min` (default 0) to `max`; surrounding spaces are ignored. */
export function parseWholeNumber(
  value: string,
  name: string,
  options: ExpectedValue & { min?: number; max?: number } = {},
): number {
  const min = options.min ?? 0;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  const text = value.trim();
  const number = Number(text);
  if (!/^\d+$/.test(text) || number < min || number > max) {
    fail(name, value, options.expected ?? `a whole number from ${min} to ${max}`, options.hint);
  }
  return number;
}

/** A finite number of at least 0, or above 0 when `positive`. */
export function parseNumber(
  value: string,
  name: string,
  options: ExpectedValue & { positive?: boolean } = {},
): number {
  const number = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(number) || number < 0 || (options.positive && number === 0)) {
    const kind = options.positive ? "a positive number" : "a non-negative number";
    fail(name, value, options.expected ?? kind, options.hint);
  }
  return number;
}

/** A URL with one of `protocols` (e.g. `["https:", "http:"]`). */
export function parseUrl(
  value: string,
  name: string,
  protocols: readonly string[],
  options: ExpectedValue = {},
): URL {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (!url || !protocols.includes(url.protocol)) {
    fail(name, value, options.expected ?? `a ${protocols.join(" or ")} URL`, options.hint);
  }
  return url;
}

/** E.164: `+`, country code, up to 15 digits in all. */
export const E164 = /^\+[1-9]\d{1,14}$/;

/** A phone number in E.164 form; surrounding spaces are ignored. */
export function parsePhoneNumber(value: string, name: string): string {
  const trimmed = value.trim();
  if (!E164.test(trimmed)) {
    fail(
      name,
      value,
      "a phone number in E.164 form such as +15551234567 (plus sign, country code, no " +
        "spaces or dashes)",
    );
  }
  return trimmed;
}
