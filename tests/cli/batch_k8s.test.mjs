// envdctl batch --k8s-selector through the Kubernetes API stub
// (tests/k8s/stub.mjs over HTTPS, certificates made for the test): the
// pool is every running Sandbox matching the selector, each reached by its
// sandbox ID on the reference server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { writeFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { startServer, envdctl, tempDir, SOURCE_DIR } from "./lib.mjs";

let srv;
let stub;
let work;
let kubeconfig;

function startStub(certs) {
  const child = spawn(process.execPath, [path.join(SOURCE_DIR, "tests/k8s/stub.mjs"), "--certs", certs, "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`stub did not start: ${out}`)), 20000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /^listening (\d+)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on("exit", (code) => reject(new Error(`stub exited with ${code}: ${out}`)));
  });
}

before(async () => {
  srv = await startServer();
  work = tempDir("envdctl-batch-k8s-");
  execFileSync("sh", [path.join(SOURCE_DIR, "tests/k8s/gen-certs.sh"), work.dir]);
  stub = await startStub(work.dir);
  kubeconfig = path.join(work.dir, "kubeconfig");
  writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters:
- name: stub
  cluster:
    server: https://127.0.0.1:${stub.port}
    certificate-authority: ${path.join(work.dir, "ca.crt")}
users:
- name: alice
  user:
    token: tok-alice
contexts:
- name: stub
  context: {cluster: stub, user: alice, namespace: bulk}
current-context: stub
`);
});
after(async () => {
  stub?.child.removeAllListeners("exit");
  stub?.child.kill("SIGTERM");
  await srv?.stop();
  work?.remove();
});

const env = () => ({ KUBECONFIG: kubeconfig });

test("--k8s-selector: every matching Sandbox is in the pool", async () => {
  const jobs = [];
  for (let i = 0; i < 40; i++) jobs.push(JSON.stringify({ id: `k${i}`, cmd: `echo ${i}` }));
  writeFileSync(path.join(work.dir, "k.jsonl"), jobs.join("\n") + "\n");
  const out = path.join(work.dir, "k.out");
  const r = await envdctl(["--domain", srv.domain, "batch", "--k8s-selector", "bulk:app=bulk,shard=1",
    "--results", out, path.join(work.dir, "k.jsonl")], { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const rows = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(rows.length, 40);
  const used = new Set(rows.map((row) => row.sandbox));
  for (const s of used) {
    const m = /^bulk\/sbx-(\d+)$/.exec(s);
    assert.ok(m, s);
    assert.equal(Number(m[1]) % 4, 1, `${s} matches shard=1`);
  }
  assert.ok(used.size >= 10, `the 40 jobs spread over ${used.size} sandboxes`);
  for (const row of rows) assert.equal(row.stdout, `${row.id.slice(1)}\n`);
});

test("--k8s-selector: no match is an error; an API refusal is reported", async () => {
  writeFileSync(path.join(work.dir, "one.jsonl"), '{"cmd":"true"}\n');
  const none = await envdctl(["--domain", srv.domain, "batch", "--k8s-selector", "bulk:app=nothing",
    "--results", path.join(work.dir, "none.out"), path.join(work.dir, "one.jsonl")], { env: env() });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no running Sandbox matches/);
  // the context's namespace when NS is empty; a namespace without the CRD is a 404
  const bad = await envdctl(["--domain", srv.domain, "batch", "--k8s-selector", "nocrd:app=x",
    path.join(work.dir, "one.jsonl")], { env: env() });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--k8s-selector: .*failed to list sandboxes in nocrd/);
  const usage = await envdctl(["--domain", srv.domain, "batch", "--k8s-selector", "no-colon",
    path.join(work.dir, "one.jsonl")], { env: env() });
  assert.equal(usage.code, 2);
});
