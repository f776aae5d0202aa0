// --token: X-Access-Token on everything but the exempt routes, signed /files
// URLs (spec §6.1, §6.2, with the spec's test vectors), /init.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { fileSignature } from "../lib/signature.mjs";
import { startServer, rpcClients, e2bSandbox } from "./helpers.mjs";

const TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UNAUTHORIZED = {
  code: 401,
  message: "unauthorized access, please provide a valid access token or method signing if supported",
};

let server;

before(async () => {
  server = await startServer({ http: "both", token: TOKEN, defaultUser: "user" });
});
after(async () => {
  await server?.stop();
});

test("signature test vectors from the spec", () => {
  assert.equal(
    fileSignature({ path: "/home/user/hello.txt", operation: "read", username: "", token: TOKEN }),
    "v1_Q1oODJQwZxJOp+Cv9RJhuccjbZgB7bld8m4C4Z73S4w",
  );
  assert.equal(
    fileSignature({
      path: "/home/user/hello.txt",
      operation: "write",
      username: "user",
      token: TOKEN,
      expiration: 1767225600,
    }),
    "v1_wJF6PQqcwmxtoa5ct7ngvFVgFWwFMOHc0nXrjyxykpI",
  );
});

test("without the token: 401 JSON with an integer code, except exempt routes", async () => {
  for (const [path, init] of [
    ["/envs", {}],
    ["/metrics", {}],
    ["/process.Process/List", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }],
    [
      "/process.Process/Start",
      { method: "POST", headers: { "Content-Type": "application/connect+json" }, body: Buffer.alloc(5) },
    ],
  ]) {
    const res = await fetch(server.url + path, init);
    assert.equal(res.status, 401, path);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.deepEqual(await res.json(), UNAUTHORIZED, path);
  }
  const wrong = await fetch(`${server.url}/envs`, { headers: { "X-Access-Token": "nope" } });
  assert.equal(wrong.status, 401);
  await wrong.arrayBuffer();
  assert.equal((await fetch(`${server.url}/health`)).status, 204);
  const ok = await fetch(`${server.url}/envs`, { headers: { "X-Access-Token": TOKEN } });
  assert.equal(ok.status, 200);
  await ok.arrayBuffer();
});

test("RPC clients: rejected without the token (Connect over HTTP/1.1, and gRPC over h2c as an envd-compatible server), served with it", async () => {
  for (const kind of ["connect-binary", "grpc"]) {
    const bare = rpcClients(server, kind);
    await assert.rejects(bare.process.list({}), (err) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.Unauthenticated, kind);
      return true;
    });
  }
  const authed = rpcClients(server, "connect-binary", {
    interceptors: [
      (next) => (req) => {
        req.header.set("X-Access-Token", TOKEN);
        return next(req);
      },
    ],
  });
  assert.ok(Array.isArray((await authed.process.list({})).processes));
  // --default-user decides who runs a command sent without Basic auth.
  let out = "";
  for await (const m of authed.process.start({
    process: { cmd: "/bin/sh", args: ["-c", "echo $USER $HOME"], envs: {} },
    stdin: false,
  })) {
    const ev = m.event.event;
    if (ev.case === "data") out += Buffer.from(ev.value.output.value).toString();
  }
  assert.equal(out, `user ${server.root}/home/user\n`);
});

test("the e2b SDK in debug mode sends no token and sees an AuthenticationError", async () => {
  const sbx = await e2bSandbox(server);
  await assert.rejects(sbx.commands.run("true"), (err) => {
    assert.equal(err.name, "AuthenticationError");
    return true;
  });
});

test("signed /files URLs", async () => {
  const url = (q) => `${server.url}/files?${new URLSearchParams(q)}`;
  const path = "/home/user/hello.txt";
  const up = await fetch(url({ path, username: "user", signature: fileSignature({ path, operation: "write", username: "user", token: TOKEN }) }), {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: "signed hello",
  });
  assert.equal(up.status, 200);
  assert.deepEqual(await up.json(), [{ path, name: "hello.txt", type: "file" }]);

  const readSig = fileSignature({ path, operation: "read", token: TOKEN });
  const down = await fetch(url({ path, signature: readSig }));
  assert.equal(down.status, 200);
  assert.equal(await down.text(), "signed hello");

  const future = Math.floor(Date.now() / 1000) + 600;
  const withExp = await fetch(
    url({
      path,
      signature: fileSignature({ path, operation: "read", token: TOKEN, expiration: future }),
      signature_expiration: String(future),
    }),
  );
  assert.equal(withExp.status, 200);
  await withExp.arrayBuffer();

  const cases = [
    [{ path }, "missing signature query parameter"],
    [{ path, signature: readSig.slice(0, -1) + "A" }, "invalid signature"],
    // a read signature does not allow a write, nor another user
    [{ path, username: "root", signature: readSig }, "invalid signature"],
    [
      {
        path,
        signature: fileSignature({ path, operation: "read", token: TOKEN, expiration: 1000 }),
        signature_expiration: "1000",
      },
      "signature is already expired",
    ],
  ];
  for (const [q, message] of cases) {
    const res = await fetch(url(q));
    assert.equal(res.status, 401, message);
    assert.deepEqual(await res.json(), { code: 401, message });
  }
  const mismatch = await fetch(url({ path }), { headers: { "X-Access-Token": "bad" } });
  assert.deepEqual(await mismatch.json(), { code: 401, message: "access token present in header but does not match" });
  const headerOk = await fetch(url({ path }), { headers: { "X-Access-Token": TOKEN } });
  assert.equal(headerOk.status, 200);
  await headerOk.arrayBuffer();
  const badExp = await fetch(url({ path, signature: readSig, signature_expiration: "soon" }));
  assert.equal(badExp.status, 400);
  assert.match(await badExp.text(), /^Invalid format for parameter signature_expiration/);
});

test("/init: needs the same token, sets env vars", async () => {
  const wrong = await fetch(`${server.url}/init`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ accessToken: "other" }),
  });
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.text()).trim(), "access token validation failed");
  const ok = await fetch(`${server.url}/init`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ accessToken: TOKEN, envVars: { PEER_VAR: "42" } }),
  });
  assert.equal(ok.status, 204);
  assert.ok(ok.headers.get("x-envd-version"));
  const envs = await (await fetch(`${server.url}/envs`, { headers: { "X-Access-Token": TOKEN } })).json();
  assert.equal(envs.PEER_VAR, "42");
  assert.equal(envs.E2B_SANDBOX, "true");
});
