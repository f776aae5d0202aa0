// A loopback stub of the E2B-compatible sandbox API (E2B's spec/openapi.yml,
// and the OpenKruise sandbox-manager's routes, also under /kruise/api), for
// libenvd's tests. Node built-ins only.
//
// Every sandbox it hands out points at ONE envd (the reference server,
// --domain HOST:PORT): distinct IDs, a token each (or --envd-token T for
// all of them, when the envd behind checks one token, its --token; or, with
// --token-secret S, each sandbox's own token derived from its ID, which a
// reference server started with PEER_SANDBOX_TOKENS=S checks per sandbox).
//
//   node stub.mjs --port 0 --domain 127.0.0.1:PORT [--api-key K]
//        [--rate R --burst B]      creates allowed per second (429 past it,
//                                  with Retry-After and RateLimit-*)
//        [--max-live N]            403 quota once N sandboxes live
//        [--page-size N]           GET /v2/sandboxes pages (X-Next-Token)
//        [--create-delay-ms MS]    time a create takes
//        [--envd-token T | --token-secret S] [--envd-version V]
// prints "listening <port>" once it accepts.
//
// Test hooks (no API key): GET /_stub/live -> {"live": N}; GET /_stub/stats
// -> {live, created, maxConcurrentCreates, requests: [{t, method, path,
// status, retryAfter}]}; POST /_stub/throttle {"count": N, "retryAfter": S}
// answers the next N creates 429; POST /_stub/pause/{id} marks one paused;
// POST /_stub/domain {"domain": D} changes the domain handed out;
// POST /_stub/hold {"after": N} holds every create past the next N (they
// wait, counted in stats.held) until POST /_stub/unhold.
import http from "node:http";
import { randomBytes } from "node:crypto";
import { sandboxToken } from "../peer/lib/sandbox-tokens.mjs";

function args(argv) {
  const o = {};
  for (let i = 2; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
      console.error(`bad argument ${argv[i]}`);
      process.exit(2);
    }
    o[argv[i].slice(2)] = argv[i + 1];
  }
  return o;
}

const opt = args(process.argv);
if (!opt.domain) {
  console.error("--domain HOST:PORT is required");
  process.exit(2);
}
const apiKey = opt["api-key"] ?? "test-key";
const rate = Number(opt.rate ?? 0); // creates per second, 0 = none
const burst = Number(opt.burst ?? Math.max(1, rate));
const maxLive = Number(opt["max-live"] ?? 0);
const pageSize = Number(opt["page-size"] ?? 100);
const createDelay = Number(opt["create-delay-ms"] ?? 0);
const envdVersion = opt["envd-version"] ?? "0.2.0";
const t0 = performance.now();
const now = () => performance.now() - t0;

const sandboxes = new Map(); // id -> record
let seq = 0;
let created = 0;
let creating = 0;
let maxConcurrentCreates = 0;
let throttle = { count: 0, retryAfter: 1 };
let hold = null; // { after, seen, held, release, gate }
const requests = [];
let tokens = burst;
let refilled = now();

function send(res, status, body, headers = {}) {
  const data = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    ...(data ? { "content-type": "application/json" } : {}),
    "content-length": Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

// E2B's error body: {"code": <status>, "message": "..."}
const fail = (res, status, message, headers) => send(res, status, { code: status, message }, headers);

function readJSON(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const s = Buffer.concat(chunks).toString();
      if (!s) return resolve({});
      try {
        resolve(JSON.parse(s));
      } catch {
        resolve(null);
      }
    });
  });
}

function listed(s) {
  return {
    templateID: s.templateID,
    sandboxID: s.sandboxID,
    clientID: "stub",
    startedAt: s.startedAt,
    endAt: new Date(s.endAt).toISOString(),
    cpuCount: 2,
    memoryMB: 512,
    diskSizeMB: 1024,
    metadata: s.metadata,
    state: s.state,
    envdVersion,
  };
}

function detail(s) {
  return {
    templateID: s.templateID,
    sandboxID: s.sandboxID,
    clientID: "stub",
    envdVersion,
    envdAccessToken: s.token,
    domain: s.domain,
  };
}

function setTimeoutOf(s, seconds) {
  clearTimeout(s.timer);
  s.endAt = Date.now() + seconds * 1000;
  s.timer = setTimeout(() => sandboxes.delete(s.sandboxID), seconds * 1000);
  s.timer.unref();
}

// The creation rate: a token bucket of `burst`, `rate` per second.
function takeToken() {
  if (rate <= 0) return 0;
  const t = now();
  tokens = Math.min(burst, tokens + ((t - refilled) * rate) / 1000);
  refilled = t;
  if (tokens >= 1) {
    tokens -= 1;
    return 0;
  }
  return Math.max(1, Math.ceil((1 - tokens) / rate)); // seconds, as E2B: at least 1
}

async function create(req, res, log) {
  const body = await readJSON(req);
  if (!body || typeof body.templateID !== "string" || !body.templateID)
    return fail(res, 400, "templateID is required");
  let wait = 0;
  if (throttle.count > 0) {
    throttle.count--;
    wait = throttle.retryAfter;
  } else {
    wait = takeToken();
  }
  if (wait > 0) {
    log.retryAfter = wait;
    return fail(res, 429, "Rate limit exceeded", {
      "retry-after": String(wait),
      "ratelimit-limit": String(burst),
      "ratelimit-remaining": "0",
      "ratelimit-reset": String(wait),
    });
  }
  if (maxLive > 0 && sandboxes.size + creating >= maxLive)
    return fail(res, 403, `You have reached the maximum number of concurrent sandboxes (${maxLive})`);
  creating++;
  maxConcurrentCreates = Math.max(maxConcurrentCreates, creating);
  if (createDelay > 0) await new Promise((r) => setTimeout(r, createDelay));
  if (hold && ++hold.seen > hold.after) {
    const h = hold;
    h.held++;
    await h.gate;
    h.held--;
  }
  creating--;
  const id = `sbx${++seq}${randomBytes(4).toString("hex")}`;
  const token = opt["token-secret"] ? sandboxToken(opt["token-secret"], id) : undefined;
  const s = {
    sandboxID: id,
    templateID: body.templateID,
    token: token ?? opt["envd-token"] ?? `tok-${randomBytes(8).toString("hex")}`,
    metadata: body.metadata ?? {},
    envVars: body.envVars ?? {},
    state: "running",
    startedAt: new Date().toISOString(),
    domain: opt.domain,
  };
  setTimeoutOf(s, body.timeout ?? 15); // E2B's default
  sandboxes.set(id, s);
  created++;
  send(res, 201, detail(s));
}

// "k=v&k2=v2", keys and values URL-encoded (the whole again as the query
// value: URLSearchParams decoded that layer).
function metadataFilter(q) {
  if (!q) return null;
  const f = {};
  for (const pair of q.split("&")) {
    if (!pair) continue;
    const i = pair.indexOf("=");
    if (i < 0) return undefined;
    f[decodeURIComponent(pair.slice(0, i))] = decodeURIComponent(pair.slice(i + 1));
  }
  return f;
}

function list(url, res) {
  const filter = metadataFilter(url.searchParams.get("metadata"));
  if (filter === undefined) return fail(res, 400, "Error parsing metadata");
  const limit = Number(url.searchParams.get("limit") ?? 100);
  if (!(limit >= 1 && limit <= 100)) return fail(res, 400, "limit must be between 1 and 100");
  const all = [...sandboxes.values()]
    .filter((s) => !filter || Object.entries(filter).every(([k, v]) => s.metadata[k] === v))
    .sort((a, b) => (a.sandboxID < b.sandboxID ? -1 : 1));
  const after = url.searchParams.get("nextToken");
  const start = after ? all.findIndex((s) => s.sandboxID > after) : 0;
  const page = start < 0 ? [] : all.slice(start, start + Math.min(limit, pageSize));
  const more = start >= 0 && start + page.length < all.length;
  send(res, 200, page.map(listed), more ? { "x-next-token": page[page.length - 1].sandboxID } : {});
}

async function route(req, res, log) {
  const url = new URL(req.url, "http://stub");
  let path = url.pathname;
  if (path.startsWith("/kruise/api/")) path = path.slice("/kruise/api".length);
  if (path === "/_stub/live") return send(res, 200, { live: sandboxes.size });
  if (path === "/_stub/stats")
    return send(res, 200, { live: sandboxes.size, created, maxConcurrentCreates, held: hold?.held ?? 0, requests });
  if (path === "/_stub/hold" && req.method === "POST") {
    const h = { after: Number((await readJSON(req))?.after ?? 0), seen: 0, held: 0 };
    h.gate = new Promise((r) => (h.release = r));
    hold = h;
    return send(res, 200, { after: h.after });
  }
  if (path === "/_stub/unhold" && req.method === "POST") {
    hold?.release();
    hold = null;
    return send(res, 200, {});
  }
  if (path === "/_stub/throttle" && req.method === "POST") {
    throttle = { count: 0, retryAfter: 1, ...(await readJSON(req)) };
    return send(res, 200, throttle);
  }
  if (path === "/_stub/domain" && req.method === "POST") {
    opt.domain = (await readJSON(req)).domain;
    return send(res, 200, {});
  }
  let m = path.match(/^\/_stub\/pause\/([^/]+)$/);
  if (m && sandboxes.has(m[1])) {
    sandboxes.get(m[1]).state = "paused";
    return send(res, 200, {});
  }
  if (req.headers["x-api-key"] !== apiKey) return fail(res, 401, "Invalid API Key");
  if (path === "/sandboxes" && req.method === "POST") return create(req, res, log);
  if (path === "/v2/sandboxes" && req.method === "GET") return list(url, res);
  m = path.match(/^\/sandboxes\/([^/]+)(\/timeout|\/connect)?$/);
  if (!m) return fail(res, 404, `no route ${req.method} ${path}`);
  const s = sandboxes.get(decodeURIComponent(m[1]));
  if (!s) return fail(res, 404, `Sandbox ${m[1]} not found`);
  if (!m[2] && req.method === "DELETE") {
    clearTimeout(s.timer);
    sandboxes.delete(s.sandboxID);
    return send(res, 204);
  }
  if (!m[2] && req.method === "GET") return send(res, 200, { ...listed(s), ...detail(s) });
  if (req.method !== "POST") return fail(res, 405, "method not allowed");
  const body = await readJSON(req);
  if (!body || !Number.isInteger(body.timeout) || body.timeout < 0)
    return fail(res, 400, "timeout is required");
  if (m[2] === "/timeout") {
    setTimeoutOf(s, body.timeout);
    return send(res, 204);
  }
  const resumed = s.state === "paused"; // connect: resume, TTL only extended
  s.state = "running";
  if (Date.now() + body.timeout * 1000 > s.endAt) setTimeoutOf(s, body.timeout);
  send(res, resumed ? 201 : 200, detail(s));
}

const server = http.createServer((req, res) => {
  const log = { t: now(), method: req.method, path: req.url };
  if (!req.url.startsWith("/_stub/")) requests.push(log);
  res.on("finish", () => (log.status = res.statusCode));
  route(req, res, log).catch((e) => {
    console.error(e);
    if (!res.headersSent) fail(res, 500, String(e));
  });
});
server.listen(Number(opt.port ?? 0), opt.host ?? "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
