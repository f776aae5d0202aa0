// envdctl sandbox claim / release through the Kubernetes API stub
// (tests/k8s/stub.mjs), whose claim controller makes Sandboxes pointing at
// the reference server with the token it accepts: the JSON lines of
// `claim` are a `batch --sandboxes` file, `release` gives them back.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { startServer, startK8sStub, envdctl, tempDir } from "./lib.mjs";

const TOKEN = "e2e-runtime-token"; // tests/k8s/fixtures.json, claims.token
let srv;
let stub;
let work;

before(async () => {
  srv = await startServer({ token: TOKEN });
  stub = await startK8sStub();
  work = tempDir("envdctl-claim-");
  const mallory = readFileSync(stub.kubeconfig, "utf8").replace("token: tok-alice", "token: tok-mallory");
  writeFileSync(path.join(work.dir, "mallory"), mallory);
});
after(async () => {
  await stub?.stop();
  await srv?.stop();
  work?.remove();
});

const env = (kubeconfig = stub.kubeconfig) => ({ KUBECONFIG: kubeconfig });
const lines = (s) => s.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));

// Whether any Sandbox still carries the claim's label: batch says so.
async function sandboxesLeft(claim) {
  writeFileSync(path.join(work.dir, "probe.jsonl"), '{"cmd":"true"}\n');
  const r = await envdctl(["--domain", srv.domain, "batch", "--k8s-selector",
    `claims:agents.kruise.io/claim-name=${claim}`, path.join(work.dir, "probe.jsonl")], { env: env() });
  return r.code === 0;
}

test("claim 6, run a batch over them, release them", async () => {
  const r = await envdctl(["--domain", srv.domain, "--token", "wrong-token", "sandbox", "claim",
    "claims/pool-a", "--replicas", "6", "--name", "cli-claim", "--label", "team=cli", "--env", "A=1"],
  { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const got = lines(r.stdout);
  assert.equal(got.length, 6);
  for (const s of got) {
    assert.equal(s.claim, "claims/cli-claim");
    assert.equal(s.namespace, "claims");
    assert.equal(s.k8s, `claims/${s.name}`);
    assert.match(s.id, /^sbx-pool-a-/);
  }
  assert.equal(new Set(got.map((s) => s.id)).size, 6);

  // the lines are a --sandboxes file: each is reached by its Sandbox object
  // (its token from the annotation; --token is wrong)
  const pool = path.join(work.dir, "pool.jsonl");
  writeFileSync(pool, r.stdout);
  const jobs = [];
  for (let i = 0; i < 24; i++) jobs.push(JSON.stringify({ id: `j${i}`, cmd: `echo ${i}` }));
  writeFileSync(path.join(work.dir, "jobs.jsonl"), jobs.join("\n") + "\n");
  const out = path.join(work.dir, "results.jsonl");
  const b = await envdctl(["--domain", srv.domain, "--token", "wrong-token", "batch", "--sandboxes", pool,
    "--results", out, path.join(work.dir, "jobs.jsonl")], { env: env(), timeoutMs: 60000 });
  assert.equal(b.code, 0, b.stderr);
  const rows = lines(readFileSync(out, "utf8"));
  assert.equal(rows.length, 24);
  const refs = new Set(got.map((s) => s.k8s));
  for (const row of rows) {
    assert.ok(refs.has(row.sandbox), `${row.sandbox} is a claimed sandbox`);
    assert.equal(row.stdout, `${row.id.slice(1)}\n`);
  }

  // release without the sandboxes: the claim goes, they stay
  const keep = await envdctl(["sandbox", "release", "claims/cli-claim"], { env: env() });
  assert.equal(keep.code, 0, keep.stderr);
  assert.equal(await sandboxesLeft("cli-claim"), true);
  const again = await envdctl(["sandbox", "release", "claims/cli-claim"], { env: env() });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /sandbox claim claims\/cli-claim not found/);
  const all = await envdctl(["sandbox", "release", "claims/cli-claim", "--delete-sandboxes"], { env: env() });
  assert.equal(all.code, 0, all.stderr);
  assert.equal(await sandboxesLeft("cli-claim"), false);
});

test("a partial claim prints what it got and says why", async () => {
  const r = await envdctl(["--domain", srv.domain, "sandbox", "claim", "claims/half-fills", "-n", "4",
    "--claim-timeout", "1s", "--name", "cli-half"], { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 1);
  assert.equal(lines(r.stdout).length, 2);
  assert.match(r.stderr, /claim claims\/cli-half of template 'half-fills'.*2 of 4 sandboxes claimed/);
  assert.match(r.stderr, /envdctl sandbox release claims\/cli-half --delete-sandboxes/);
  const rel = await envdctl(["sandbox", "release", "claims/cli-half", "--delete-sandboxes"], { env: env() });
  assert.equal(rel.code, 0, rel.stderr);
  assert.equal(await sandboxesLeft("cli-half"), false);
});

test("RBAC refusals name the verb and the resource", async () => {
  const r = await envdctl(["sandbox", "claim", "claims/pool-a"], { env: env(path.join(work.dir, "mallory")) });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /403 Forbidden.*RBAC verb "create" on resource "sandboxclaims"/);
  const rel = await envdctl(["sandbox", "release", "claims/x", "--delete-sandboxes"],
    { env: env(path.join(work.dir, "mallory")) });
  assert.equal(rel.code, 1);
  assert.match(rel.stderr, /RBAC verb "delete" on resource "sandboxclaims"/);
});

test("Ctrl-C while waiting releases the claim", async () => {
  let child;
  let started;
  const waiting = new Promise((r) => { started = r; });
  const run = envdctl(["sandbox", "claim", "claims/never-fills", "--replicas", "3", "--claim-timeout", "2m",
    "--name", "cli-interrupted"], { env: env(), timeoutMs: 30000, onSpawn: (c) => {
    child = c;
    let err = "";
    c.stderr.on("data", (d) => {
      err += d;
      if (/claiming sandboxes of never-fills as claim claims\/cli-interrupted/.test(err)) started();
    });
  } });
  await Promise.race([waiting, run]);
  await new Promise((r) => setTimeout(r, 300)); // created and polling
  child.kill("SIGINT");
  const r = await run;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /interrupted; claim cli-interrupted released/);
  const gone = await envdctl(["sandbox", "release", "claims/cli-interrupted"], { env: env() });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /not found/);
});

test("usage errors", async () => {
  for (const args of [["sandbox"], ["sandbox", "claim"], ["sandbox", "claim", "a/b/c"],
    ["sandbox", "claim", "claims/pool-a", "--replicas", "0"], ["sandbox", "claim", "claims/pool-a", "--label", "novalue"],
    ["sandbox", "claim", "claims/pool-a", "--wait", "soon"], ["sandbox", "release"], ["sandbox", "frob"]]) {
    const r = await envdctl(args, { env: env() });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
  }
  const help = await envdctl(["sandbox", "claim", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--delete-sandboxes/);
});

// The claim's name from batch's stderr line "claimed N of M ... as claim NS/NAME in ...".
function claimOf(stderr) {
  const m = /claimed (\d+) of (\d+) sandboxes of \S+ as claim claims\/(\S+) in /.exec(stderr);
  assert.ok(m, stderr);
  return { got: Number(m[1]), want: Number(m[2]), name: m[3] };
}

test("batch --claim: the pool is claimed before the first job and released at the end", async () => {
  const jobs = [];
  for (let i = 0; i < 16; i++) jobs.push(JSON.stringify({ id: `c${i}`, cmd: `echo ${i}` }));
  writeFileSync(path.join(work.dir, "claim-jobs.jsonl"), jobs.join("\n") + "\n");
  const out = path.join(work.dir, "claim-results.jsonl");
  const r = await envdctl(["--domain", srv.domain, "batch", "--claim", "claims/pool-a", "--replicas", "4",
    "--results", out, path.join(work.dir, "claim-jobs.jsonl")], { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const c = claimOf(r.stderr);
  assert.deepEqual([c.got, c.want], [4, 4]);
  assert.match(r.stderr, new RegExp(`claim claims/${c.name} released with its sandboxes`));
  const rows = lines(readFileSync(out, "utf8"));
  assert.equal(rows.length, 16);
  const used = new Set(rows.map((row) => row.sandbox));
  for (const s of used) assert.match(s, /^claims\/pool-a-/);
  assert.equal(used.size, 4);
  for (const row of rows) assert.equal(row.stdout, `${row.id.slice(1)}\n`);
  assert.equal(await sandboxesLeft(c.name), false);
  const gone = await envdctl(["sandbox", "release", `claims/${c.name}`], { env: env() });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /not found/);
});

test("batch --claim --keep leaves the sandboxes; a partial claim is used", async () => {
  writeFileSync(path.join(work.dir, "two.jsonl"), '{"id":"a","cmd":"echo a"}\n{"id":"b","cmd":"echo b"}\n');
  const r = await envdctl(["--domain", srv.domain, "batch", "--claim", "claims/half-fills", "--replicas", "4",
    "--keep", "--results", path.join(work.dir, "two.out"), path.join(work.dir, "two.jsonl")],
  { env: env(), timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stderr);
  const c = claimOf(r.stderr);
  assert.deepEqual([c.got, c.want], [2, 4]);
  assert.match(r.stderr, /--claim: claim .* of template 'half-fills'.*2 of 4 sandboxes claimed.*going on/);
  assert.match(r.stderr, /kept \(--keep\)/);
  assert.equal(await sandboxesLeft(c.name), true);
  const rel = await envdctl(["sandbox", "release", `claims/${c.name}`, "--delete-sandboxes"], { env: env() });
  assert.equal(rel.code, 0, rel.stderr);
  assert.equal(await sandboxesLeft(c.name), false);
});

test("batch --claim: Ctrl-C during the jobs still releases the pool", async () => {
  const jobs = [];
  for (let i = 0; i < 4; i++) jobs.push(JSON.stringify({ id: `s${i}`, cmd: "sleep 30" }));
  writeFileSync(path.join(work.dir, "sleep.jsonl"), jobs.join("\n") + "\n");
  let stderr = "";
  let child;
  const seen = new Promise((resolve) => {
    const run = envdctl(["--domain", srv.domain, "batch", "--claim", "claims/pool-a", "--replicas", "2",
      "--grace", "200ms", "--results", path.join(work.dir, "sleep.out"), path.join(work.dir, "sleep.jsonl")],
    { env: env(), timeoutMs: 60000, onSpawn: (c) => {
      child = c;
      c.stderr.on("data", (d) => {
        stderr += d;
        if (/claimed 2 of 2/.test(stderr)) resolve({ run });
      });
    } });
    run.then(() => resolve({ run }), () => resolve({ run }));
  });
  const { run } = await seen; // a promise in a box: awaiting it would wait for the end
  await new Promise((r) => setTimeout(r, 1500)); // the scheduler runs the jobs
  child.kill("SIGINT");
  const r = await run;
  assert.equal(r.code, 1, r.stderr);
  const c = claimOf(r.stderr);
  assert.match(r.stderr, /interrupted/);
  assert.match(r.stderr, new RegExp(`claim claims/${c.name} released with its sandboxes`));
  assert.equal(await sandboxesLeft(c.name), false);
});

test("batch --claim usage errors", async () => {
  writeFileSync(path.join(work.dir, "one.jsonl"), '{"cmd":"true"}\n');
  for (const args of [["--replicas", "2"], ["--keep"], ["--claim", "claims/pool-a", "--replicas", "0"],
    ["--claim", "claims/pool-a", "--k8s-job", "--image", "x", "--completions", "2"]]) {
    const r = await envdctl(["--domain", srv.domain, "batch", ...args, path.join(work.dir, "one.jsonl")], { env: env() });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
  }
});
