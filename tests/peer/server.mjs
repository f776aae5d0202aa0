#!/usr/bin/env node
// envd-compatible reference server for libenvd's tests.
//
//   node server.mjs --port P [--host 127.0.0.1] --root DIR [--token T]
//                   [--http h1|both] [--default-user U] [--seed N] [--code-port P]
//                   [--max-streams N]
//
// --seed (or PEER_SEED) fixes the order in which the process table is walked
// (envd walks a Go sync.Map: unspecified order); without it a random seed is
// chosen and printed on stderr, so a failing run can be replayed.
// Prints "listening <port>" on stdout once it accepts connections.
// --code-port: the code interpreter (lib/code-interpreter.mjs) on a port of
// its own too ("code-port <port>" on stdout, before "listening");
// requests with e2b-sandbox-port: 49999 reach it on the main port anyway.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import { mkdirSync, readFileSync } from "node:fs";
import { createApp } from "./lib/app.mjs";

const USAGE =
  "usage: node server.mjs --port P [--host 127.0.0.1] --root DIR [--token T] [--http h1|both] [--default-user U] [--seed N] [--code-port P] [--max-streams N]";

function parseArgs(argv) {
  const opts = { port: null, host: "127.0.0.1", root: null, token: null, http: "h1", defaultUser: "root", seed: process.env.PEER_SEED ?? null, maxStreams: "1000" };
  const names = {
    "--port": "port",
    "--host": "host",
    "--root": "root",
    "--token": "token",
    "--http": "http",
    "--default-user": "defaultUser",
    "--seed": "seed",
    "--code-port": "codePort",
    "--max-streams": "maxStreams",
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      process.exit(0);
    }
    const key = names[arg];
    if (!key) throw new Error(`unknown argument ${arg}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      value = argv[++i];
    }
    opts[key] = value;
  }
  if (opts.port === null || !/^\d+$/.test(opts.port)) throw new Error("--port is required (0 picks one)");
  if (!opts.root) throw new Error("--root is required");
  if (opts.http !== "h1" && opts.http !== "both") throw new Error("--http must be h1 or both");
  if (opts.token === "") opts.token = null;
  if (opts.seed === null || opts.seed === "") opts.seed = String(Math.floor(Math.random() * 2 ** 32));
  if (!/^\d{1,10}$/.test(opts.seed) || Number(opts.seed) >= 2 ** 32) throw new Error("--seed must be 0..4294967295");
  opts.seed = Number(opts.seed);
  if (!/^\d{1,10}$/.test(opts.maxStreams) || Number(opts.maxStreams) < 1 || Number(opts.maxStreams) >= 2 ** 32)
    throw new Error("--max-streams must be 1..4294967295");
  opts.maxStreams = Number(opts.maxStreams);
  opts.port = Number(opts.port);
  if (opts.codePort !== undefined && !/^\d+$/.test(opts.codePort)) throw new Error("--code-port must be a port (0 picks one)");
  return opts;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

mkdirSync(opts.root, { recursive: true });
const app = createApp({ root: opts.root, token: opts.token, defaultUser: opts.defaultUser, seed: opts.seed });
process.stderr.write(`peer: process table walk seed ${opts.seed} (replay with PEER_SEED=${opts.seed})\n`);

// HTTP/1.1 as envd's net/http serves it: no read/write timeouts, 640 s idle.
const h1 = http.createServer(
  { requestTimeout: 0, keepAliveTimeout: 640_000, headersTimeout: 60_000 },
  app.handler,
);
h1.keepAliveTimeout = 640_000;
let h2 = null;
let listener = h1;

if (opts.http === "both") {
  // h2c with prior knowledge on the same port: look at the first bytes of
  // each connection and hand it to the HTTP/2 or the HTTP/1.1 server.
  // SETTINGS_MAX_CONCURRENT_STREAMS: envd's Go server and E2B's edge say
  // 100; 1000 by default here so that tests not about the limit never meet it.
  h2 = http2.createServer({ settings: { maxConcurrentStreams: opts.maxStreams } }, app.handler);
  // An answer complete while the request is still coming: envd's Go server
  // resets the stream with NO_ERROR behind its END_STREAM (RFC 9113 8.1;
  // x/net/http2 wroteFrame), so the client stops sending. Node does that
  // only when the handler never read the body; one that read some and
  // answered early (StreamInput for an unknown pid) left the stream open
  // and unread, and a client out of flow-control window could neither end
  // its request nor see the stream close. The compatibility API ends each
  // answer with trailers, sent from its own 'wantTrailers' listener; the
  // reset waits a turn so that it leaves after them (sooner, nghttp2 sends
  // it first and the END_STREAM never goes).
  h2.on("stream", (stream) => {
    stream.on("wantTrailers", () =>
      setImmediate(() => {
        if (!stream.closed && !stream.destroyed && !stream.state.remoteClose)
          stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }),
    );
  });
  const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  listener = net.createServer((socket) => {
    // As Go (and so envd) does by default; the h2c hand-off below would
    // otherwise leave Nagle on and every small reply waiting ~40 ms on the
    // client's delayed ACK.
    socket.setNoDelay(true);
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, PREFACE.length);
      const isH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && head.length < PREFACE.length) return; // need more bytes
      socket.removeListener("data", onData);
      socket.pause();
      if (isH2) {
        // The HTTP/2 session reads the socket's handle directly and would
        // miss the bytes already read, so it gets a stream that replays them.
        h2.emit("connection", replaying(socket, head));
      } else {
        socket.unshift(head);
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => {});
  });
}

/** A duplex over `socket` whose readable side starts with `head`. */
function replaying(socket, head) {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, encoding, cb) {
      socket.write(chunk, encoding, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  d.push(head);
  socket.on("data", (chunk) => {
    if (!d.push(chunk)) socket.pause();
  });
  socket.on("end", () => d.push(null));
  socket.on("close", () => d.destroy());
  d.remoteAddress = socket.remoteAddress;
  d.remotePort = socket.remotePort;
  d.localAddress = socket.localAddress;
  d.localPort = socket.localPort;
  return d;
}

const sockets = new Set();
listener.on("connection", (s) => {
  sockets.add(s);
  s.on("close", () => sockets.delete(s));
});

listener.once("error", (err) => {
  console.error(`peer: cannot listen on ${opts.host}:${opts.port}: ${err.message}`);
  app.shutdown();
  process.exit(1);
});
// envd (Go's net.Listen) asks the kernel for net.core.somaxconn as its
// accept backlog; Node's default is 511, which a thousand clients
// connecting at once overflow (resets a real envd would not give).
let backlog = 4096;
try {
  backlog = parseInt(readFileSync("/proc/sys/net/core/somaxconn", "utf8"), 10) || backlog;
} catch {
  /* not Linux: keep 4096 */
}
const codeListener = opts.codePort === undefined ? null : http.createServer((req, res) => app.code.handle(req, res));
const listenMain = () =>
  listener.listen({ port: opts.port, host: opts.host, backlog }, () => {
    process.stdout.write(`listening ${listener.address().port}\n`);
  });
if (codeListener)
  codeListener.listen({ port: Number(opts.codePort), host: opts.host }, () => {
    process.stdout.write(`code-port ${codeListener.address().port}\n`);
    listenMain();
  });
else listenMain();

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  app.shutdown();
  listener.close();
  codeListener?.close();
  codeListener?.closeAllConnections?.();
  h1.closeAllConnections?.();
  for (const s of sockets) s.destroy();
  h2?.close();
  // Let the SIGKILLs land and the helper pipes close, then leave.
  setTimeout(() => process.exit(0), 50).unref();
}
process.on("SIGTERM", stop);
// Test harnesses set this so that a server whose parent died goes too.
if (process.env.PEER_EXIT_ON_STDIN_EOF === "1") {
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
}
process.on("SIGINT", stop);
process.on("SIGHUP", stop);
process.on("uncaughtException", (err) => {
  process.stderr.write(`peer: uncaught exception: ${err.stack ?? err}\n`);
});
