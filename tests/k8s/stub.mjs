#!/usr/bin/env node
// An HTTPS stub of the Kubernetes API for libenvd's NewFromK8s tests. It
// serves OpenKruise Agents Sandbox objects and nothing else:
//
//   GET /apis/agents.kruise.io/v1alpha1/namespaces/<ns>/sandboxes/<name>
//   GET /apis/agents.kruise.io/v1alpha1/namespaces/<ns>/sandboxes?labelSelector=S
//       (a SandboxList; equality selectors: k=v, k==v, k!=v, k, !k)
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

function sandbox(ns, name) {
  const key = `${ns}/${name}`;
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
  return {
    apiVersion: "agents.kruise.io/v1alpha1",
    kind: "SandboxList",
    metadata: { resourceVersion: "1" },
    items: names.map((n) => sandbox(ns, n)).filter((o) => selected(o, selector)),
  };
}

const LIST_PATH = /^\/apis\/agents\.kruise\.io\/v1alpha1\/namespaces\/([^/]+)\/sandboxes$/;
const PATH = /^\/apis\/agents\.kruise\.io\/v1alpha1\/namespaces\/([^/]+)\/sandboxes\/([^/?]+)$/;

function handle(req, res) {
  const url = new URL(req.url, "https://stub");
  let user = authenticate(req);
  if (!user) return status(res, 401, "Unauthorized", "Unauthorized");
  if (req.headers["impersonate-user"]) user = req.headers["impersonate-user"];
  const lm = LIST_PATH.exec(url.pathname);
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
    try {
      handle(req, res);
    } catch (err) {
      status(res, 500, "InternalError", String(err));
    }
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
