/**
 * The redaction policies `REDACT=` names: which kinds of sensitive data are
 * replaced by a tag in transcripts (and silenced in recordings).
 *
 * @module
 */

/** One kind of sensitive data the redactor finds. */
export type RedactPolicy = "card" | "cvv" | "expiry" | "ssn" | "phone" | "email" | "dob";

/** Every policy, in the order `REDACT=all` lists them. */
export const REDACT_POLICIES: readonly RedactPolicy[] = [
  "card",
  "cvv",
  "expiry",
  "ssn",
  "phone",
  "email",
  "dob",
];

/** The tag a redacted entity of each policy becomes in a transcript. */
export const REDACT_TAGS: Readonly<Record<RedactPolicy, string>> = {
  card: "[CARD]",
  cvv: "[CVV]",
  expiry: "[EXPIRY]",
  ssn: "[SSN]",
  phone: "[PHONE]",
  email: "[EMAIL]",
  dob: "[DOB]",
};

/** True when `name` is a policy. */
export function isRedactPolicy(name: string): name is RedactPolicy {
  return (REDACT_POLICIES as readonly string[]).includes(name);
}

/**
 * Parses a comma-separated list of policies (`card,cvv,ssn`; `all` for every
 * one; empty for none). Throws naming the unknown policy and the valid ones.
 */
export function parseRedactPolicies(value: string | undefined): RedactPolicy[] {
  const names = (value ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  const policies = new Set<RedactPolicy>();
  for (const name of names) {
    if (name === "all") REDACT_POLICIES.forEach((p) => policies.add(p));
    else if (isRedactPolicy(name)) policies.add(name);
    else {
      throw new Error(
        `unknown policy "${name}"; valid: ${REDACT_POLICIES.join(", ")} or all`,
      );
    }
  }
  return REDACT_POLICIES.filter((p) => policies.has(p));
}
