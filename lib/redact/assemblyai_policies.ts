/**
 * Our policies as AssemblyAI's streaming PII redaction names them
 * (`redact_pii_policies`, docs: Streaming, PII Redaction; the policy names
 * are those of its PII redaction guide), and its `entity_name` tags
 * (`[CREDIT_CARD_NUMBER]`) back as ours.
 *
 * @module
 */
import { REDACT_POLICIES, type RedactPolicy } from "./policies.ts";

/** AssemblyAI's policy for each of ours. */
export const ASSEMBLYAI_PII_POLICIES: Readonly<Record<RedactPolicy, string>> = {
  card: "credit_card_number",
  cvv: "credit_card_cvv",
  expiry: "credit_card_expiration",
  ssn: "us_social_security_number",
  phone: "phone_number",
  email: "email_address",
  dob: "date_of_birth",
};

/** Our policy of an AssemblyAI policy name (`credit_card_number` → `card`), if one. */
export function policyOfAssemblyAI(name: string): RedactPolicy | undefined {
  return REDACT_POLICIES.find((p) => ASSEMBLYAI_PII_POLICIES[p] === name.toLowerCase());
}
