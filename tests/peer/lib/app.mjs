// Wires the pieces together in envd's middleware order:
// CORS -> access token -> Basic-auth user -> RPC services / HTTP API.
import { timingSafeEqual } from "node:crypto";
import { appendFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter, compressionGzip } from "@connectrpc/connect-node";
import { Process } from "../gen/process_pb.js";
import { Filesystem } from "../gen/filesystem_pb.js";
import { Sandbox, basicAuthUser } from "./sandbox.mjs";
import { XattrClient } from "./pyhelpers.mjs";
import { ProcessRegistry, processService } from "./process-service.mjs";
import { stopPipeHelper } from "./os-pipes.mjs";
import { WatcherRegistry, filesystemService } from "./filesystem-service.mjs";
import { HttpApi, jsonError } from "./http-api.mjs";
import { CodeInterpreter } from "./code-interpreter.mjs";
import { kRawRequest, userInterceptor } from "./rpc-util.mjs";
import { sandboxToken } from "./sandbox-tokens.mjs";

const AUTH_EXCLUDED = new Set(["GET /health", "GET /files", "POST /files", "POST /init"]);
const EXPOSED_HEADERS = [
  "Grpc-Status",
  "Grpc-Message",
  "Grpc-Status-Details-Bin",
  "Location",
  "Cache-Control",
  "X-Content-Type-Options",
].join(", ");

function tokenMatches(given, token) {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A Connect-protocol unary call (not gRPC, gRPC-Web or a Connect stream). */
function isUnaryConnect(req) {
  const ct = String(req.headers["content-type"] ?? "");
  return req.method === "GET" || /^application\/(json|proto)\b/.test(ct);
}

/**
 * connect-go never compresses a unary error body (connectUnaryHandlerConn
 * Close writes the JSON as is; only Marshal of a message sets
 * Content-Encoding), where connect-node gzips it when the client offers
 * gzip. Undo that for answers other than 200.
 */
function plainErrorBodies(res) {
  const writeHead = res.writeHead.bind(res);
  let deferred = false;
  res.writeHead = (status, ...rest) => {
    // connect-node calls writeHead again when headersSent is still false.
    if (deferred) return res;
    const headers = typeof rest[0] === "string" ? rest[1] : rest[0];
    const encKey = headers && Object.keys(headers).find((k) => k.toLowerCase() === "content-encoding");
    if (status === 200 || !encKey || String(headers[encKey]).toLowerCase() !== "gzip") {
      return writeHead(status, ...rest);
    }
    deferred = true;
    const plain = { ...headers };
    delete plain[encKey];
    for (const k of Object.keys(plain)) if (k.toLowerCase() === "content-length") delete plain[k];
    const chunks = [];
    const end = res.end.bind(res);
    res.write = (chunk, ...more) => {
      chunks.push(Buffer.from(chunk));
      const cb = more.find((m) => typeof m === "function");
      if (cb) process.nextTick(cb);
      return true;
    };
    res.end = (chunk, ...more) => {
      if (typeof chunk === "function") more.unshift(chunk);
      else if (chunk) chunks.push(Buffer.from(chunk));
      let body = Buffer.concat(chunks);
      try {
        body = gunzipSync(body);
      } catch {
        // not gzip after all: pass it on
      }
      plain["content-length"] = body.length;
      writeHead(status, plain);
      // Http2ServerResponse.end writes its chunk through this.write: put
      // the real one back, or the body would land in chunks again and the
      // stream end short of its content-length (a PROTOCOL_ERROR to the
      // client, and Go's client reads the error as "unimplemented").
      delete res.write;
      return end(body, ...more.filter((m) => typeof m === "function"));
    };
    return res;
  };
}

// e2b-sandbox-port of the code interpreter (E2B's, and the Go client's
// CodeInterpreterPort default).
const CODE_PORT = "49999";

export function createApp({ root, token = null, defaultUser = "root", seed = 0 }) {
  const sb = new Sandbox({ root, token, defaultUser });
  sb.xattr = new XattrClient();
  const processes = new ProcessRegistry({ seed });
  const watchers = new WatcherRegistry();
  const api = new HttpApi(sb);
  const code = new CodeInterpreter(sb);

  const rpc = connectNodeAdapter({
    routes(router) {
      router.service(Process, processService(sb, processes));
      router.service(Filesystem, filesystemService(sb, watchers));
    },
    interceptors: [userInterceptor(sb)],
    acceptCompression: [compressionGzip],
    compressMinBytes: 0,
    contextValues: (req) => createContextValues().set(kRawRequest, req),
    fallback: (req, res) => api.handle(req, res),
  });

  // Test hook: with PEER_HEADER_LOG=<file>, one line per request with the
  // headers envd reads as settings and the media type, so a test can check
  // what a client sent.
  const headerLog = process.env.PEER_HEADER_LOG;
  function logHeaders(req) {
    const v = (name) => req.headers[name] ?? "-";
    const path = (req.url ?? "/").split("?")[0];
    appendFileSync(
      headerLog,
      `${req.method} ${path} connect-timeout-ms=${v("connect-timeout-ms")} keepalive-ping-interval=${v("keepalive-ping-interval")} content-type=${v("content-type").split(";")[0]}\n`,
    );
  }

  // Test hook: with PEER_TRAFFIC_CHECK=<file>, a gateway enforcing traffic
  // tokens stands in front: e2b-traffic-access-token must be
  // "tok-<unix ms expiry>" with the expiry still ahead, else 401. One line
  // per request: method, path, token (or -), ms left, ok or bad.
  const trafficLog = process.env.PEER_TRAFFIC_CHECK;
  function trafficRejected(req) {
    const tok = req.headers["e2b-traffic-access-token"];
    const m = typeof tok === "string" ? /^tok-(\d+)$/.exec(tok) : null;
    const left = m ? Number(m[1]) - Date.now() : NaN;
    const ok = m !== null && left > 0;
    const path = (req.url ?? "/").split("?")[0];
    appendFileSync(trafficLog, `${req.method} ${path} ${tok ?? "-"} ${left} ${ok ? "ok" : "bad"}\n`);
    return !ok;
  }

  // Test hook: with PEER_SANDBOX_TOKENS=<secret>, this server stands for
  // many sandboxes: every request must name one (e2b-sandbox-id) and carry
  // its own token (lib/sandbox-tokens.mjs), else 401. With
  // PEER_SANDBOX_LOG=<file> too, one line per request: sandbox ID (or -),
  // method, path, ok or bad.
  const sandboxSecret = process.env.PEER_SANDBOX_TOKENS;
  const sandboxLog = process.env.PEER_SANDBOX_LOG;
  function sandboxRejected(req) {
    const id = req.headers["e2b-sandbox-id"];
    const tok = req.headers["x-access-token"];
    const path = (req.url ?? "/").split("?")[0];
    let why = null;
    if (typeof id !== "string" || !id) why = "no e2b-sandbox-id: the request names no sandbox";
    else if (!(req.method === "GET" && path === "/health") && tok !== sandboxToken(sandboxSecret, id))
      why = `the access token is not sandbox ${id}'s`;
    if (sandboxLog) appendFileSync(sandboxLog, `${id || "-"} ${req.method} ${path} ${why ? "bad" : "ok"}\n`);
    return why;
  }

  function handler(req, res) {
    // For handlers that must shape the HTTP/1.1 exchange (connection close).
    req.peerResponse = res;
    if (headerLog) logHeaders(req);
    if (trafficLog && trafficRejected(req)) {
      jsonError(res, 401, "traffic access token missing, malformed or expired");
      return;
    }
    const notThisSandbox = sandboxSecret ? sandboxRejected(req) : null;
    if (notThisSandbox) {
      jsonError(res, 401, notThisSandbox);
      return;
    }
    // Routed by port as a sandbox gateway routes it: the code interpreter.
    if (req.headers["e2b-sandbox-port"] === CODE_PORT) return code.handle(req, res);
    const origin = req.headers.origin;
    if (origin !== undefined) {
      res.setHeader("Vary", "Origin");
      res.setHeader("Access-Control-Allow-Origin", "*");
      const preflightMethod = req.headers["access-control-request-method"];
      if (req.method === "OPTIONS" && preflightMethod) {
        res.setHeader("Access-Control-Allow-Methods", preflightMethod.toUpperCase());
        const reqHeaders = req.headers["access-control-request-headers"];
        if (reqHeaders) res.setHeader("Access-Control-Allow-Headers", reqHeaders);
        res.setHeader("Access-Control-Max-Age", "7200");
        res.writeHead(204);
        res.end();
        return;
      }
      res.setHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS);
    }

    const pathname = (req.url ?? "/").split("?")[0];
    if (sb.token && !tokenMatches(req.headers["x-access-token"], sb.token)) {
      if (!AUTH_EXCLUDED.has(`${req.method} ${pathname}`)) {
        jsonError(
          res,
          401,
          "unauthorized access, please provide a valid access token or method signing if supported",
        );
        return;
      }
    }

    const isRpc =
      pathname.startsWith("/process.Process/") || pathname.startsWith("/filesystem.Filesystem/");
    if (!isRpc) {
      // envd's authn middleware answers unknown Basic users on every path.
      const name = basicAuthUser(req.headers.authorization);
      if (name !== null && !sb.lookupUser(name)) {
        res.writeHead(401, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ code: "unauthenticated", message: `invalid username: '${name}'` }));
        return;
      }
      api.handle(req, res);
      return;
    }
    if (isUnaryConnect(req)) plainErrorBodies(res);
    rpc(req, res);
  }

  function shutdown() {
    code.shutdown();
    processes.killAll();
    watchers.stopAll();
    sb.xattr.stop();
    stopPipeHelper();
  }

  return { handler, shutdown, sandbox: sb, processes, code };
}
