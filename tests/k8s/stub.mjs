#!/usr/bin/env node
// An HTTPS stub of the Kubernetes API for libenvd's NewFromK8s tests. It
// serves OpenKruise Agents Sandbox objects and nothing else:
//
//   GET /apis/agents.kruise.io/v1alpha1/namespaces/<ns>/sandboxes/<name>
//   GET /apis/agents.kruise.io/v1alpha1/namespaces/<ns>/sandboxes?labelSelector=S
//       (a SandboxList; equality selectors: k=v, k==v, k!=v, k, !k)
//   DELETE the same collection (deletecollection; claimed Sandboxes only)
//   POST, GET, DELETE .../namespaces/<ns>/sandboxclaims[/<name>]
//
// SandboxClaims (agents.kruise.io/v1alpha1, as in openkruise/agents
// api/v1alpha1/sandboxclaim_types.go): a created claim gets the CRD's
// defaults (replicas 1, claimTimeout 1m, waitReadyTimeout 30s,
// ttlAfterCompleted 5m) and phase Claiming; after fixtures.claims.delayMs
// the stub's "controller" makes spec.replicas Running Sandboxes labelled
// agents.kruise.io/claim-name=<claim> with a sandbox-id label and the
// fixtures' runtime token, and sets phase Completed, claimedReplicas and
// the Completed condition (templates in fixtures.claims.oneByOne: one
// Sandbox every claims.stepMs). Template "never-fills" claims none and
// "half-fills" half of them; both end when claimTimeout runs out as the
// controller ends them: phase Completed, conditions Completed and TimedOut
// True, a message. Deleting a claim leaves its Sandboxes (the types'
// comment: only the SandboxClaim is deleted); deletecollection removes
// them.
//
// Authentication as the API server does it: a bearer token, HTTP basic
// auth, or a client certificate signed by the test CA (CN = user name);
// Impersonate-User switches the user the request acts as. Authorization is
// a deny list. Answers are metav1.Status objects like the real server's.
//
//   node stub.mjs --certs DIR [--port 0] [--host 127.0.0.1] [--fixtures F]
//                 [--remove-on-exit yes]
//
// DIR holds ca.crt, server.crt and server.key (tests/k8s/gen-certs.sh).
// With --remove-on-exit the stub deletes DIR when it is told to stop, so a
// test that crashed (the stub gets SIGTERM when its parent dies) leaves
// nothing behind.
// Prints "listening <port>" on stdout once it accepts connections.
import http2 from "node:http2";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = {
    certs: null,
    port: 0,
    host: "127.0.0.1",
    fixtures: join(here, "fixtures.json"),
    "remove-on-exit": "no",
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    if (!(k in o) || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    o[k] = argv[i + 1];
  }
  if (!o.certs) throw new Error("--certs DIR is required");
  o.port = Number(o.port);
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const fx = JSON.parse(readFileSync(opts.fixtures, "utf8"));

function status(res, code, reason, message, details) {
  const body = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
  if (details) body.details = details;
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

// What the claims made: "ns/name" -> Sandbox; and the claims themselves.
const claimed = new Map();
const claims = new Map();
const claimTimers = new Map(); // "ns/name" -> [timeouts]

function sandbox(ns, name) {
  const key = `${ns}/${name}`;
  if (claimed.has(key)) return structuredClone(claimed.get(key));
  if (fx.sandboxes[key]) {
    const obj = structuredClone(fx.sandboxes[key]);
    obj.apiVersion = "agents.kruise.io/v1alpha1";
    obj.kind = "Sandbox";
    obj.metadata = { name, namespace: ns, uid: `uid-${ns}-${name}`, ...(obj.metadata || {}) };
    return obj;
  }
  const m = /^sbx-(\d+)$/.exec(name);
  if (ns === fx.bulk.namespace && m && Number(m[1]) < fx.bulk.count) {
    return {
      apiVersion: "agents.kruise.io/v1alpha1",
      kind: "Sandbox",
      metadata: {
        name,
        namespace: ns,
        annotations: { "agents.kruise.io/runtime-access-token": `${fx.bulk.tokenPrefix}${m[1]}` },
        labels: { app: "bulk", shard: String(Number(m[1]) % 4) },
      },
      status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
    };
  }
  return null;
}

// The user a request authenticates as, or null.
function authenticate(req) {
  const h = req.headers.authorization || "";
  if (h.startsWith("Bearer ")) return fx.tokens[h.slice(7)] || null;
  if (h.startsWith("Basic ")) {
    const pair = Buffer.from(h.slice(6), "base64").toString("utf8");
    return fx.basic[pair] || null;
  }
  if (h) return null;
  const sock = req.socket;
  if (sock.authorized) {
    const cert = sock.getPeerCertificate();
    if (cert && cert.subject && cert.subject.CN) return cert.subject.CN;
  }
  return null;
}

// The label selector's equality terms against an object's labels.
function selected(obj, selector) {
  const labels = obj.metadata.labels || {};
  for (const term of selector.split(",").map((t) => t.trim()).filter(Boolean)) {
    let m;
    if ((m = /^([^!=]+)!=(.*)$/.exec(term))) {
      if (labels[m[1].trim()] === m[2].trim()) return false;
    } else if ((m = /^([^!=]+)==?(.*)$/.exec(term))) {
      if (labels[m[1].trim()] !== m[2].trim()) return false;
    } else if (term.startsWith("!")) {
      if (term.slice(1).trim() in labels) return false;
    } else if (!(term in labels)) return false;
  }
  return true;
}

function list(ns, selector) {
  const names = Object.keys(fx.sandboxes).filter((k) => k.startsWith(`${ns}/`)).map((k) => k.slice(ns.length + 1));
  if (ns === fx.bulk.namespace) for (let i = 0; i < fx.bulk.count; i++) names.push(`sbx-${i}`);
  for (const k of claimed.keys()) if (k.startsWith(`${ns}/`)) names.push(k.slice(ns.length + 1));
  return {
    apiVersion: "agents.kruise.io/v1alpha1",
    kind: "SandboxList",
    metadata: { resourceVersion: "1" },
    items: names.map((n) => sandbox(ns, n)).filter((o) => selected(o, selector)),
  };
}

// A Go duration ("1m", "90s", "1500ms", "1m30s") in ms; NaN when bad.
function durationMs(d) {
  const units = { h: 3600000, m: 60000, s: 1000, ms: 1 };
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
  let m;
  let seen = 0;
  while ((m = re.exec(d))) {
    ms += Number(m[1]) * units[m[2]];
    seen = re.lastIndex;
  }
  return seen === d.length && d.length ? ms : NaN;
}

function forbidden(res, user, verb, resource, ns, name) {
  const what = name ? `${resource}.agents.kruise.io "${name}"` : `${resource}.agents.kruise.io`;
  return status(res, 403, "Forbidden", `${what} is forbidden: User "${user}" cannot ${verb} resource ` +
    `"${resource}" in API group "agents.kruise.io" in the namespace "${ns}"`, { group: "agents.kruise.io", kind: resource, name });
}

function later(key, ms, fn) {
  const t = setTimeout(fn, ms);
  t.unref();
  if (!claimTimers.has(key)) claimTimers.set(key, []);
  claimTimers.get(key).push(t);
}

function condition(type, reason, message) {
  return { type, status: "True", reason, message, lastTransitionTime: new Date().toISOString() };
}

// The stub's claim controller.
let serial = 0;
function fill(ns, claim) {
  const key = `${ns}/${claim.metadata.name}`;
  const want = claim.spec.replicas;
  const tmpl = claim.spec.templateName;
  const get = fx.claims.never.includes(tmpl) ? 0 : fx.claims.half.includes(tmpl) ? Math.floor(want / 2) : want;
  // one Sandbox a step (as the controller claims in batches) or all at once
  const step = (fx.claims.oneByOne || []).includes(tmpl) ? fx.claims.stepMs : 0;
  const claimOne = (i) => {
    const name = `${tmpl}-${(++serial).toString(36)}x${i}`;
    claimed.set(`${ns}/${name}`, {
      apiVersion: "agents.kruise.io/v1alpha1",
      kind: "Sandbox",
      metadata: {
        name,
        namespace: ns,
        uid: `uid-${ns}-${name}`,
        labels: { ...(claim.spec.labels || {}), "agents.kruise.io/claim-name": claim.metadata.name,
          "agents.kruise.io/sandbox-id": `sbx-${name}` },
        annotations: { ...(claim.spec.annotations || {}), "agents.kruise.io/runtime-access-token": fx.claims.token },
      },
      spec: { envVars: claim.spec.envVars || {} },
      status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
    });
    claim.status.claimedReplicas = i + 1;
  };
  const done = () => {
    claim.status.claimedReplicas = get;
    if (get === want) {
      claim.status.phase = "Completed";
      claim.status.completionTime = new Date().toISOString();
      claim.status.conditions = [condition("Completed", "AllClaimed", `claimed ${get} sandboxes`)];
    }
  };
  for (let i = 0; step && i < get; i++)
    later(key, fx.claims.delayMs + i * step, () => {
      if (claims.get(key) !== claim) return;
      claimOne(i);
      if (i === get - 1) done();
    });
  if (!step)
    later(key, fx.claims.delayMs, () => {
      if (claims.get(key) !== claim) return;
      for (let i = 0; i < get; i++) claimOne(i);
      done();
    });
  if (get < want)
    later(key, durationMs(claim.spec.claimTimeout), () => {
      if (claims.get(key) !== claim) return;
      claim.status.phase = "Completed";
      claim.status.completionTime = new Date().toISOString();
      claim.status.message = `claim timeout ${claim.spec.claimTimeout} reached: claimed ${claim.status.claimedReplicas}/${want} sandboxes from SandboxSet ${tmpl}`;
      claim.status.conditions = [condition("Completed", "ClaimTimeout", claim.status.message),
        condition("TimedOut", "ClaimTimeout", claim.status.message)];
    });
}

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on("data", (d) => parts.push(d));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
  });
}

function send(res, code, obj) {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(obj));
}

const CLAIMS_PATH = /^\/apis\/agents\.kruise\.io\/v1alpha1\/namespaces\/([^/]+)\/sandboxclaims(?:\/([^/?]+))?$/;

async function handleClaims(req, res, user, ns, name) {
  const verb = req.method === "POST" ? "create" : req.method === "DELETE" ? "delete" : "get";
  if (fx.forbidden.includes(user)) return forbidden(res, user, verb, "sandboxclaims", ns, name);
  const details = { name, group: "agents.kruise.io", kind: "sandboxclaims" };
  if (req.method === "POST" && !name) {
    let obj;
    try {
      obj = JSON.parse(await readBody(req));
    } catch (e) {
      return status(res, 400, "BadRequest", `the body is not JSON: ${e.message}`);
    }
    const n = obj?.metadata?.name;
    const spec = obj?.spec || {};
    const invalid = (field, why) => status(res, 422, "Invalid",
      `SandboxClaim.agents.kruise.io "${n}" is invalid: ${field}: ${why}`, { name: n, group: "agents.kruise.io", kind: "SandboxClaim" });
    if (obj?.kind !== "SandboxClaim" || obj?.apiVersion !== "agents.kruise.io/v1alpha1")
      return status(res, 400, "BadRequest", `wrong kind ${obj?.apiVersion}/${obj?.kind}`);
    if (!n) return invalid("metadata.name", "Required value: name or generateName is required");
    if (!spec.templateName) return invalid("spec.templateName", "Required value");
    spec.replicas ??= 1;
    if (!Number.isInteger(spec.replicas) || spec.replicas < 1)
      return invalid("spec.replicas", `Invalid value: ${spec.replicas}: spec.replicas in body should be greater than or equal to 1`);
    spec.claimTimeout ??= "1m";
    spec.waitReadyTimeout ??= "30s";
    spec.ttlAfterCompleted ??= "5m";
    for (const f of ["claimTimeout", "waitReadyTimeout", "ttlAfterCompleted"])
      if (Number.isNaN(durationMs(spec[f]))) return invalid(`spec.${f}`, `Invalid value: "${spec[f]}"`);
    const key = `${ns}/${n}`;
    if (claims.has(key))
      return status(res, 409, "AlreadyExists", `sandboxclaims.agents.kruise.io "${n}" already exists`, { name: n, group: "agents.kruise.io", kind: "sandboxclaims" });
    const claim = {
      apiVersion: "agents.kruise.io/v1alpha1",
      kind: "SandboxClaim",
      metadata: { ...obj.metadata, namespace: ns, uid: `uid-claim-${++serial}`, creationTimestamp: new Date().toISOString() },
      spec,
      status: { phase: "Claiming", claimedReplicas: 0, claimStartTime: new Date().toISOString() },
    };
    claims.set(key, claim);
    fill(ns, claim);
    return send(res, 201, claim);
  }
  if (!name) return status(res, 405, "MethodNotAllowed", `${req.method} on the collection is not served by the stub`);
  const key = `${ns}/${name}`;
  const claim = claims.get(key);
  if (!claim) return status(res, 404, "NotFound", `sandboxclaims.agents.kruise.io "${name}" not found`, details);
  if (req.method === "GET") return send(res, 200, claim);
  if (req.method === "DELETE") {
    claims.delete(key);
    for (const t of claimTimers.get(key) || []) clearTimeout(t);
    claimTimers.delete(key);
    return send(res, 200, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details });
  }
  return status(res, 405, "MethodNotAllowed", `${req.method} is not served by the stub`);
}

function deleteCollection(res, user, ns, selector) {
  if (fx.forbidden.includes(user)) return forbidden(res, user, "deletecollection", "sandboxes", ns);
  const gone = [];
  for (const [k, obj] of claimed)
    if (k.startsWith(`${ns}/`) && selected(obj, selector)) {
      claimed.delete(k);
      gone.push(obj);
    }
  send(res, 200, { apiVersion: "agents.kruise.io/v1alpha1", kind: "SandboxList", metadata: {}, items: gone });
}

const LIST_PATH = /^\/apis\/agents\.kruise\.io\/v1alpha1\/namespaces\/([^/]+)\/sandboxes$/;
const PATH = /^\/apis\/agents\.kruise\.io\/v1alpha1\/namespaces\/([^/]+)\/sandboxes\/([^/?]+)$/;

function handle(req, res) {
  const url = new URL(req.url, "https://stub");
  let user = authenticate(req);
  if (!user) return status(res, 401, "Unauthorized", "Unauthorized");
  if (req.headers["impersonate-user"]) user = req.headers["impersonate-user"];
  const cm = CLAIMS_PATH.exec(url.pathname);
  if (cm && !fx.noCrdNamespaces.includes(cm[1])) return handleClaims(req, res, user, cm[1], cm[2]);
  const lm = LIST_PATH.exec(url.pathname);
  if (req.method === "DELETE" && lm && !fx.noCrdNamespaces.includes(lm[1]))
    return deleteCollection(res, user, lm[1], url.searchParams.get("labelSelector") || "");
  if (req.method === "GET" && lm && !fx.noCrdNamespaces.includes(lm[1])) {
    if (fx.forbidden.includes(user))
      return status(res, 403, "Forbidden", `sandboxes.agents.kruise.io is forbidden: User "${user}" cannot list ` +
        `resource "sandboxes" in API group "agents.kruise.io" in the namespace "${lm[1]}"`, { group: "agents.kruise.io", kind: "sandboxes" });
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(list(lm[1], url.searchParams.get("labelSelector") || "")));
    return;
  }
  const m = PATH.exec(url.pathname);
  if (req.method !== "GET" || !m || fx.noCrdNamespaces.includes(m[1]))
    return status(res, 404, "NotFound", "the server could not find the requested resource", {});
  const [, ns, name] = m;
  const details = { name, group: "agents.kruise.io", kind: "sandboxes" };
  if (fx.forbidden.includes(user))
    return status(
      res,
      403,
      "Forbidden",
      `sandboxes.agents.kruise.io "${name}" is forbidden: User "${user}" cannot get resource ` +
        `"sandboxes" in API group "agents.kruise.io" in the namespace "${ns}"`,
      details,
    );
  const obj = sandbox(ns, name);
  if (!obj) return status(res, 404, "NotFound", `sandboxes.agents.kruise.io "${name}" not found`, details);
  const send = () => {
    // the client may have gone (a canceled lookup): nothing to answer
    if (res.destroyed || res.closed || (res.stream && res.stream.destroyed)) return;
    try {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(obj));
    } catch {}
  };
  if (ns === fx.slowNamespace) setTimeout(send, 5000).unref();
  else send();
}

// HTTP/2 where the client offers it (as the API server does), HTTP/1.1
// otherwise.
const server = http2.createSecureServer(
  {
    allowHTTP1: true,
    key: readFileSync(join(opts.certs, "server.key")),
    cert: readFileSync(join(opts.certs, "server.crt")),
    ca: readFileSync(join(opts.certs, "ca.crt")),
    requestCert: true,
    rejectUnauthorized: false, // token clients have no certificate
  },
  (req, res) => {
    Promise.resolve()
      .then(() => handle(req, res))
      .catch((err) => status(res, 500, "InternalError", String(err)));
  },
);
server.listen(opts.port, opts.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"])
  process.on(sig, () => {
    if (opts["remove-on-exit"] === "yes") rmSync(opts.certs, { recursive: true, force: true });
    process.exit(0);
  });
