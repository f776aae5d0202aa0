// Signed /files URLs (spec §6.2): "v1_" + unpadded standard base64 of
// SHA-256("<path>:<operation>:<username>:<token>[:<expiration>]").
import { createHash, timingSafeEqual } from "node:crypto";

export function fileSignature({ path, operation, username = "", token, expiration }) {
  let raw = `${path}:${operation}:${username}:${token}`;
  if (expiration !== undefined && expiration !== null) raw += `:${expiration}`;
  const digest = createHash("sha256").update(raw, "utf8").digest("base64");
  return "v1_" + digest.replace(/=+$/, "");
}

function constantTimeEqual(a, b) {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}

/**
 * envd's validateSigning. `query` is a URLSearchParams; `expiration` the
 * already-parsed signature_expiration (number) or undefined. Returns null
 * when the request may go on, else the 401 message.
 */
export function validateSigning({ token, headerToken, query, operation, expiration }) {
  if (!token) return null;
  if (headerToken) {
    return constantTimeEqual(headerToken, token)
      ? null
      : "access token present in header but does not match";
  }
  const signature = query.get("signature");
  if (signature === null) return "missing signature query parameter";
  const expected = fileSignature({
    path: query.get("path") ?? "",
    operation,
    username: query.get("username") ?? "",
    token,
    expiration,
  });
  if (!constantTimeEqual(expected, signature)) return "invalid signature";
  if (expiration !== undefined && expiration < Math.floor(Date.now() / 1000)) {
    return "signature is already expired";
  }
  return null;
}
