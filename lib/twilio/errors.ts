/** A message that does not follow the Twilio Media Streams protocol. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}
