// Bits shared by the RPC services: the user a request acts as, access to the
// raw HTTP request behind a handler context, abort handling.
import http2 from "node:http2";
import { createContextKey } from "@connectrpc/connect";
import { Code, ConnectError } from "./errors.mjs";
import { basicAuthUser } from "./sandbox.mjs";

/** Context value holding the Node.js request (http1 or http2 compat). */
export const kRawRequest = createContextKey(null, { description: "raw node request" });

/**
 * The user of an RPC: the Basic-auth user if the header carries one (an
 * unknown name is `unauthenticated`), else the sandbox default user.
 */
export function authUser(sb, headers) {
  const name = basicAuthUser(headers.get("authorization"));
  if (name !== null) {
    const u = sb.lookupUser(name);
    if (!u) throw new ConnectError(`invalid username: '${name}'`, Code.Unauthenticated);
    return u;
  }
  const u = sb.lookupUser(sb.defaultUser);
  if (!u) throw new ConnectError(`invalid default user: '${sb.defaultUser}'`, Code.Unauthenticated);
  return u;
}

/**
 * Interceptor standing in for envd's authn middleware: every RPC with a
 * Basic-auth header naming an unknown user fails with unauthenticated.
 */
export function userInterceptor(sb) {
  return (next) => async (req) => {
    const name = basicAuthUser(req.header.get("authorization"));
    if (name !== null && !sb.lookupUser(name)) {
      throw new ConnectError(`invalid username: '${name}'`, Code.Unauthenticated);
    }
    return next(req);
  };
}

/**
 * Ends the HTTP exchange without a response, the way envd's connection
 * drops when a handler panics. Throws so the caller stops.
 */
export function dropConnection(ctx, why) {
  const req = ctx.values.get(kRawRequest);
  process.stderr.write(`peer: dropping connection: ${why}\n`);
  if (req) {
    if (req.stream && typeof req.stream.close === "function") {
      req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    } else if (req.socket) {
      req.socket.destroy();
    }
  }
  throw new ConnectError(why, Code.Internal);
}

export function abortError(ctx) {
  const reason = ctx.signal.reason;
  if (reason instanceof ConnectError) return reason;
  return new ConnectError(String(reason?.message ?? reason ?? "canceled"), Code.Canceled);
}

/** net/http's maxPostHandlerReadBytes: how much of an unread request body
 * Go reads after the handler before it gives up on the connection. */
export const MAX_POST_HANDLER_READ = 256 << 10;

/**
 * Ends an HTTP/1.1 connection after this answer the way Go's net/http does
 * when the request body was left unread (server.go: closeWriteAndWait):
 * `Connection: close`, then once the answer is written a FIN, then 500 ms
 * (rstAvoidanceDelay) before the socket closes, which resets it if the
 * client is still sending. Node would close right after the FIN, so a proxy
 * still forwarding the body could meet the reset before it read the answer.
 */
export function closeAfterAnswerLikeNetHttp(res, socket) {
  if (!res || res.headersSent) return;
  res.setHeader("Connection", "close");
  if (!socket || socket.peerLingerClose) return;
  socket.peerLingerClose = true;
  socket.destroySoon = function lingerThenClose() {
    this.end();
    setTimeout(() => this.destroy(), 500).unref();
  };
}
