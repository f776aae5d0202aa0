// envd's HTTP API without a token: /files up and down (multipart, raw, gzip,
// Range, metadata, error bodies), /health, /envs, /metrics.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import zlib from "node:zlib";
import { randomBytes } from "node:crypto";
import { startServer, rpcClients } from "./helpers.mjs";

let server;
let real;

before(async () => {
  server = await startServer({ http: "h1" }); // HTTP/1.1 only, as stock envd
  real = (p) => server.root + p;
});
after(async () => {
  await server?.stop();
});

const filesUrl = (q) => `${server.url}/files?${new URLSearchParams(q)}`;

async function expectJsonError(res, status, message) {
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type"), /^application\/json/);
  const body = await res.json();
  assert.equal(body.code, status);
  if (message instanceof RegExp) assert.match(body.message, message);
  else if (message !== undefined) assert.equal(body.message, message);
}

test("health, envs, metrics, unknown paths", async () => {
  const h = await fetch(`${server.url}/health`);
  assert.equal(h.status, 204);
  assert.equal(h.headers.get("cache-control"), "no-store");
  const e = await fetch(`${server.url}/envs`);
  assert.equal(e.status, 200);
  assert.equal((await e.json()).E2B_SANDBOX, "true");
  const m = await (await fetch(`${server.url}/metrics`)).json();
  for (const k of ["ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "disk_used", "disk_total"]) {
    assert.equal(typeof m[k], "number", k);
  }
  assert.equal((await fetch(`${server.url}/files`, { method: "HEAD" })).status, 405);
  assert.equal((await fetch(`${server.url}/nothing-here`)).status, 404);
});

test("raw upload and download, with Range and conditional requests", async () => {
  const data = randomBytes(300_000);
  const up = await fetch(filesUrl({ path: "raw/r.bin" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: data,
  });
  assert.equal(up.status, 200);
  assert.deepEqual(await up.json(), [{ path: "/root/raw/r.bin", name: "r.bin", type: "file" }]);
  assert.ok((await fs.readFile(real("/root/raw/r.bin"))).equals(data));

  // fetch asks for gzip by default, and envd would oblige: ask for identity.
  const down = await fetch(filesUrl({ path: "/root/raw/r.bin" }), { headers: { "Accept-Encoding": "identity" } });
  assert.equal(down.status, 200);
  assert.equal(down.headers.get("content-disposition"), "inline; filename=r.bin"); // mime.FormatMediaType: a bare token
  assert.equal(down.headers.get("accept-ranges"), "bytes");
  assert.equal(down.headers.get("content-length"), "300000");
  assert.ok(Buffer.from(await down.arrayBuffer()).equals(data));

  const part = await fetch(filesUrl({ path: "raw/r.bin" }), { headers: { Range: "bytes=10-19" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("content-range"), "bytes 10-19/300000");
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(10, 20)));

  const bad = await fetch(filesUrl({ path: "raw/r.bin" }), { headers: { Range: "bytes=400000-" } });
  assert.equal(bad.status, 416);
  await bad.arrayBuffer();

  const lm = down.headers.get("last-modified");
  const cond = await fetch(filesUrl({ path: "raw/r.bin" }), { headers: { "If-Modified-Since": lm } });
  assert.equal(cond.status, 304);
});

test("download: text type, gzip, 406, errors", async () => {
  await fs.mkdir(real("/root/d"), { recursive: true });
  await fs.writeFile(real("/root/d/t.txt"), "some text\n".repeat(100));
  const plain = await fetch(filesUrl({ path: "d/t.txt" }), { headers: { "Accept-Encoding": "identity" } });
  assert.equal(plain.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(plain.headers.get("vary"), "Accept-Encoding");
  await plain.arrayBuffer();

  const gz = await fetch(filesUrl({ path: "d/t.txt" }), { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(gz.status, 200);
  assert.equal(gz.headers.get("content-encoding"), "gzip");
  // fetch decodes gzip transparently
  assert.equal(await gz.text(), "some text\n".repeat(100));

  const none = await fetch(filesUrl({ path: "d/t.txt" }), {
    headers: { "Accept-Encoding": "br, identity;q=0" },
  });
  await expectJsonError(none, 406, "error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]");

  await expectJsonError(await fetch(filesUrl({ path: "d/missing" })), 404, "path '/root/d/missing' does not exist");
  await expectJsonError(await fetch(filesUrl({ path: "d" })), 400, "path '/root/d' is a directory");
  await expectJsonError(
    await fetch(filesUrl({ path: "d/t.txt", username: "no-such-user-q" })),
    401,
    "error looking up user 'no-such-user-q': user: unknown user no-such-user-q",
  );
});

test("multipart: several files, filenames as paths, users", async () => {
  const form = new FormData();
  form.append("file", new Blob(["first"]), "/mp/one.txt");
  form.append("other", "ignored");
  form.append("file", new Blob(["second"]), "mp/two.txt");
  const res = await fetch(`${server.url}/files`, { method: "POST", body: form });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), [
    { path: "/mp/one.txt", name: "one.txt", type: "file" },
    { path: "/root/mp/two.txt", name: "two.txt", type: "file" },
  ]);
  assert.equal(await fs.readFile(real("/mp/one.txt"), "utf8"), "first");
  assert.equal(await fs.readFile(real("/root/mp/two.txt"), "utf8"), "second");

  // ?username= picks the home for relative paths.
  const f2 = new FormData();
  f2.append("file", new Blob(["u"]), "u.txt");
  const r2 = await fetch(filesUrl({ username: "user" }), { method: "POST", body: f2 });
  assert.deepEqual(await r2.json(), [{ path: "/home/user/u.txt", name: "u.txt", type: "file" }]);

  // One path for two parts: the first is written, then 400.
  const f3 = new FormData();
  f3.append("file", new Blob(["a"]), "x");
  f3.append("file", new Blob(["b"]), "y");
  const r3 = await fetch(filesUrl({ path: "/dup.txt" }), { method: "POST", body: f3 });
  await expectJsonError(r3, 400, /^you cannot upload multiple files to the same path '\/dup.txt'/);
  assert.equal(await fs.readFile(real("/dup.txt"), "utf8"), "a");

  const empty = new FormData();
  empty.append("note", "no files");
  const r4 = await fetch(`${server.url}/files`, { method: "POST", body: empty });
  assert.equal(r4.status, 200);
  assert.deepEqual(await r4.json(), []);
});

test("multipart: a large file streams through intact", async () => {
  const big = randomBytes(6 * 1024 * 1024 + 123);
  const form = new FormData();
  form.append("file", new Blob([big]), "/big/blob.bin");
  const res = await fetch(`${server.url}/files`, { method: "POST", body: form });
  assert.equal(res.status, 200);
  await res.json();
  const back = Buffer.from(
    await (await fetch(filesUrl({ path: "/big/blob.bin" }), { headers: { "Accept-Encoding": "identity" } })).arrayBuffer(),
  );
  assert.equal(back.length, big.length);
  assert.ok(back.equals(big));
});

test("gzip upload, metadata headers, overwrite", async () => {
  const res = await fetch(filesUrl({ path: "/gz/file.txt" }), {
    method: "POST",
    headers: {
      "Content-Type": "application/octet-stream",
      "Content-Encoding": "gzip",
      "X-Metadata-Owner-Team": "infra",
      "X-Metadata-Kind": "note",
    },
    body: zlib.gzipSync(Buffer.from("compressed body")),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), [
    { path: "/gz/file.txt", name: "file.txt", type: "file", metadata: { "owner-team": "infra", kind: "note" } },
  ]);
  assert.equal(await fs.readFile(real("/gz/file.txt"), "utf8"), "compressed body");
  const rpc = rpcClients(server, "connect-binary").fs;
  assert.deepEqual((await rpc.stat({ path: "/gz/file.txt" })).entry.metadata, { "owner-team": "infra", kind: "note" });

  // An upload without metadata headers clears the set.
  const again = await fetch(filesUrl({ path: "/gz/file.txt" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: "v2",
  });
  assert.deepEqual(await again.json(), [{ path: "/gz/file.txt", name: "file.txt", type: "file" }]);
  assert.deepEqual((await rpc.stat({ path: "/gz/file.txt" })).entry.metadata, {});
  assert.equal(await fs.readFile(real("/gz/file.txt"), "utf8"), "v2");

  const badGz = await fetch(filesUrl({ path: "/gz/bad" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream", "Content-Encoding": "gzip" },
    body: "not gzip at all",
  });
  await expectJsonError(badGz, 400, /^error decompressing request body: failed to create gzip reader/);
  const br = await fetch(filesUrl({ path: "/gz/bad" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream", "Content-Encoding": "br" },
    body: "x",
  });
  await expectJsonError(br, 400, "error decompressing request body: unsupported Content-Encoding: br, supported: [gzip]");
});

test("upload errors: content type, raw without path, directory target, 507", async () => {
  const ct = await fetch(filesUrl({ path: "/x" }), {
    method: "POST",
    headers: { "Content-Type": "text/plain" },
    body: "x",
  });
  await expectJsonError(
    ct,
    400,
    "unsupported content type: text/plain, expected multipart/form-data or application/octet-stream",
  );
  const nopath = await fetch(`${server.url}/files`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: "x",
  });
  await expectJsonError(nopath, 400, "path query parameter is required for raw body upload");
  const dir = await fetch(filesUrl({ path: "/root" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: "x",
  });
  await expectJsonError(dir, 400, "path is a directory: /root");
  await fs.writeFile(real("/plain-file"), "");
  const under = await fetch(filesUrl({ path: "/plain-file/child" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: "x",
  });
  await expectJsonError(under, 500, "error ensuring directories: path is a file: /plain-file");

  // Writing through a link to /dev/full fails with ENOSPC: 507.
  await fs.symlink("/dev/full", real("/full"));
  const full = await fetch(filesUrl({ path: "/full" }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: "some bytes",
  });
  await expectJsonError(full, 507, "attempted to write 10 bytes: not enough disk space available");
});
