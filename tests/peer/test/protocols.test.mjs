// The three RPC protocols as connect-node serves them, and the raw Connect
// wire shapes envd clients rely on. Stock envd speaks HTTP/1.1 only: what runs
// over h2c (--http both, gRPC) tests an envd-compatible server or a gateway in
// front of envd, and says so in its name; every behaviour those tests check
// is also checked over HTTP/1.1 (Connect, gRPC-Web) against the h1 server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { startServer, rpcClients, collect, bashStart } from "./helpers.mjs";

let both;
let h1only;

before(async () => {
  [both, h1only] = await Promise.all([startServer({ http: "both" }), startServer({ http: "h1" })]);
});
after(async () => {
  await Promise.all([both?.stop(), h1only?.stop()]);
});

for (const kind of ["connect-binary", "connect-json", "grpc", "grpc-web"]) {
  const h2 = kind === "grpc";
  const name = h2 ? "grpc over h2c (envd-compatible server or gateway, not stock envd)" : `${kind} over HTTP/1.1`;
  test(`${name}: unary, server stream and errors`, async () => {
    const rpc = rpcClients(h2 ? both : h1only, kind);
    const r = await collect(rpc.process.start(bashStart("echo via-" + kind, { stdin: false })));
    assert.equal(r.out, `via-${kind}\n`);
    assert.equal(r.end.exitCode, 0);
    const { entry } = await rpc.fs.makeDir({ path: `/proto-${kind}` });
    assert.equal(entry.path, `/proto-${kind}`);
    await assert.rejects(rpc.fs.stat({ path: "/missing" }), (err) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.NotFound);
      assert.equal(err.rawMessage, "file not found: lstat /missing: no such file or directory");
      return true;
    });
    // exit code -1 travels as ZigZag sint32
    const k = await collect(rpc.process.start(bashStart("kill -9 $$", { stdin: false })));
    assert.equal(k.end.exitCode, -1);
    assert.equal(k.end.status, "signal: killed");
  });
}

// Client streaming over HTTP/1.1: rpc-process "stdin: sendInput, streamInput,
// closeStdin" and the envd-process-conformance StreamInput tests.
test("grpc over h2c (envd-compatible server or gateway, not stock envd): client streaming", async () => {
  const rpc = rpcClients(both, "grpc");
  const r = await collect(rpc.process.start(bashStart("read a; read b; echo $a-$b")), {
    onStart: async (pid) => {
      async function* msgs() {
        const process = { selector: { case: "pid", value: pid } };
        yield { event: { case: "start", value: { process } } };
        for (const s of ["x\n", "y\n"]) {
          yield { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from(s) } } } } };
        }
      }
      await rpc.process.streamInput(msgs());
    },
  });
  assert.equal(r.out, "x-y\n");
});

test("the h1 server does not speak h2c (as stock envd); the both server does", async () => {
  const probe = (url) =>
    new Promise((resolve) => {
      const session = http2.connect(url);
      session.on("error", () => resolve(false));
      const req = session.request({ ":path": "/health" });
      req.on("response", (h) => {
        resolve(h[":status"] === 204);
        session.close();
      });
      req.on("error", () => resolve(false));
      req.end();
      setTimeout(() => {
        resolve(false);
        session.destroy();
      }, 3000).unref();
    });
  assert.equal(await probe(both.url), true);
  assert.equal(await probe(h1only.url), false);
});

test("connect over h2c (envd-compatible server or gateway, not stock envd): a unary error body offered gzip arrives whole and plain", async () => {
  // Go's HTTP client offers Accept-Encoding: gzip on every request. The
  // error body is sent uncompressed (as connect-go does); over HTTP/2 it
  // once ended short of its content-length (a stream PROTOCOL_ERROR), which
  // Go's Connect client read as "unimplemented: 404 Not Found".
  const session = http2.connect(both.url);
  try {
    const r = await new Promise((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": "/filesystem.Filesystem/Stat",
        "content-type": "application/json",
        "accept-encoding": "gzip",
        "connect-accept-encoding": "gzip",
      });
      const chunks = [];
      let headers;
      req.on("response", (h) => (headers = h));
      req.on("data", (d) => chunks.push(d));
      req.on("end", () => resolve({ headers, body: Buffer.concat(chunks), rst: req.rstCode }));
      req.on("error", reject);
      req.end(JSON.stringify({ path: "/nope" }));
    });
    assert.equal(r.headers[":status"], 404);
    assert.equal(r.headers["content-encoding"], undefined);
    assert.equal(Number(r.headers["content-length"]), r.body.length);
    assert.deepEqual(JSON.parse(r.body.toString()), {
      code: "not_found",
      message: "file not found: lstat /nope: no such file or directory",
    });
  } finally {
    session.close();
  }
});

test("connect wire: unary error JSON with HTTP status, stream error in the end frame", async () => {
  const res = await fetch(`${h1only.url}/filesystem.Filesystem/Stat`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path: "/nope" }),
  });
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), {
    code: "not_found",
    message: "file not found: lstat /nope: no such file or directory",
  });

  // Streaming: HTTP 200 and an end-of-stream frame carrying the error.
  const body = Buffer.from(JSON.stringify({ process: { pid: 4242424 } }));
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
  const sres = await fetch(`${h1only.url}/process.Process/Connect`, {
    method: "POST",
    headers: { "Content-Type": "application/connect+json" },
    body: frame,
  });
  assert.equal(sres.status, 200);
  const buf = Buffer.from(await sres.arrayBuffer());
  assert.equal(buf[0], 0x02);
  const eos = JSON.parse(buf.subarray(5, 5 + buf.readUInt32BE(1)).toString());
  assert.deepEqual(eos.error, { code: "not_found", message: "process with pid 4242424 not found" });

  // The spec's binary StartRequest vector, sent as-is.
  const vector = Buffer.from(
    "00000000200a1c0a092f62696e2f6261736812022d6c12022d6312076563686f206869200" + "0",
    "hex",
  );
  const vres = await fetch(`${h1only.url}/process.Process/Start`, {
    method: "POST",
    headers: { "Content-Type": "application/connect+proto" },
    body: vector,
  });
  const out = Buffer.from(await vres.arrayBuffer());
  assert.ok(out.includes(Buffer.from("hi\n")), "echo hi output in the stream");

  const nf = await fetch(`${h1only.url}/no/such/path`);
  assert.equal(nf.status, 404);
  assert.equal(await nf.text(), "404 page not found\n");
});
