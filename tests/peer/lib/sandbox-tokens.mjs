// Per-sandbox access tokens for tests: the token of sandbox ID under a
// shared secret. The E2B API stub (tests/e2bapi/stub.mjs --token-secret S)
// hands them out; the reference server (PEER_SANDBOX_TOKENS=S) accepts a
// request only with the token of the sandbox its e2b-sandbox-id names, as
// a gateway in front of many sandboxes would.
import { createHmac } from "node:crypto";

export function sandboxToken(secret, id) {
  return `sbt-${createHmac("sha256", secret).update(String(id)).digest("hex").slice(0, 32)}`;
}
