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

// Waits (bounded) until the claim has Sandboxes.
async function claimedSome(claim) {
  for (let i = 0; i < 100 && !(await sandboxesLeft(claim)); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await sandboxesLeft(claim), true, `claim ${claim} got no sandbox`);
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

// The claim's name from "claiming sandboxes of T as claim NS/NAME", said
// before any sandbox comes.
function claimingOf(stderr) {
  const m = /claiming sandboxes of \S+ as claim claims\/(\S+)\n/.exec(stderr);
  assert.ok(m, stderr);
  return m[1];
}

test("batch --claim: the pool is claimed as the jobs start and released at the end", async () => {
  const jobs = [];
  for (let i = 0; i < 16; i++) jobs.push(JSON.stringify({ id: `c${i}`, cmd: `echo ${i}` }));
  writeFileSync(path.join(work.dir, "claim-jobs.jsonl"), jobs.join("\n") + "\n");
  const out = path.join(work.dir, "claim-results.jsonl");
  const r = await envdctl(["--domain", srv.domain, "batch", "--claim", "claims/pool-a", "--replicas", "4",
    "--results", out, path.join(work.dir, "claim-jobs.jsonl")], { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const name = claimingOf(r.stderr);
  // the claim completes after its sandboxes were listed, before or after the last job
  assert.match(r.stderr, /claimed 4 of 4 sandboxes of pool-a|--claim: 4 of 4 sandboxes had joined the pool/);
  assert.match(r.stderr, new RegExp(`claim claims/${name} released with its sandboxes`));
  const rows = lines(readFileSync(out, "utf8"));
  assert.equal(rows.length, 16);
  const used = new Set(rows.map((row) => row.sandbox));
  for (const s of used) assert.match(s, /^claims\/pool-a-/);
  assert.equal(used.size, 4);
  for (const row of rows) assert.equal(row.stdout, `${row.id.slice(1)}\n`);
  assert.equal(await sandboxesLeft(name), false);
  const gone = await envdctl(["sandbox", "release", `claims/${name}`], { env: env() });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /not found/);
});

test("batch --claim: jobs run on what the claim got while it still fills; --keep leaves it", async () => {
  // half-fills claims 2 of 4 at once, then waits for its claimTimeout (1m):
  // the jobs run on the two, listed by the claim's label, before it completes
  writeFileSync(path.join(work.dir, "two.jsonl"), '{"id":"a","cmd":"echo a"}\n{"id":"b","cmd":"echo b"}\n');
  const report = path.join(work.dir, "two.json");
  const r = await envdctl(["--domain", srv.domain, "batch", "--claim", "claims/half-fills", "--replicas", "4",
    "--keep", "--report", report, "--results", path.join(work.dir, "two.out"), path.join(work.dir, "two.jsonl")],
  { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const name = claimingOf(r.stderr);
  assert.match(r.stderr, /--claim: 2 of 4 sandboxes had joined the pool when the batch ended/);
  assert.doesNotMatch(r.stderr, /claimed \d+ of/); // the claim had not completed
  assert.match(r.stderr, new RegExp(`claim claims/${name} kept \\(--keep\\)`));
  const rows = lines(readFileSync(path.join(work.dir, "two.out"), "utf8"));
  assert.deepEqual(rows.map((row) => [row.id, row.status, row.stdout]).sort(), [["a", "ok", "a\n"], ["b", "ok", "b\n"]]);
  for (const row of rows) assert.match(row.sandbox, /^claims\/half-fills-/);
  const acq = JSON.parse(readFileSync(report, "utf8")).acquire;
  assert.equal(acq.count, 2);
  assert.ok(acq.p50_ms <= acq.p95_ms && acq.p95_ms <= acq.max_ms, JSON.stringify(acq));
  assert.equal(await sandboxesLeft(name), true);
  const rel = await envdctl(["sandbox", "release", `claims/${name}`, "--delete-sandboxes"], { env: env() });
  assert.equal(rel.code, 0, rel.stderr);
  assert.equal(await sandboxesLeft(name), false);
});

test("batch --claim: a claim that fills one Sandbox at a time runs its jobs on the first", async () => {
  // one-by-one claims a Sandbox every 2 s (tests/k8s/fixtures.json): the
  // one job ends long before the fourth exists, so the batch ends with
  // fewer than 4 in the pool, and the release takes what came later too
  writeFileSync(path.join(work.dir, "one.jsonl"), '{"id":"a","cmd":"echo a"}\n');
  const r = await envdctl(["--domain", srv.domain, "batch", "--claim", "claims/one-by-one", "--replicas", "4",
    "--results", path.join(work.dir, "one.out"), path.join(work.dir, "one.jsonl")],
  { env: env(), timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const name = claimingOf(r.stderr);
  const joined = r.stderr.match(/--claim: (\d) of 4 sandboxes had joined the pool when the batch ended/);
  assert.ok(joined && Number(joined[1]) >= 1 && Number(joined[1]) < 4, r.stderr);
  const rows = lines(readFileSync(path.join(work.dir, "one.out"), "utf8"));
  assert.deepEqual(rows.map((row) => [row.id, row.status, row.stdout]), [["a", "ok", "a\n"]]);
  assert.match(rows[0].sandbox, /^claims\/one-by-one-/);
  assert.equal(await sandboxesLeft(name), false);
});

test("batch --claim: Ctrl-C while the claim still fills releases it with its sandboxes", async () => {
  writeFileSync(path.join(work.dir, "halfsleep.jsonl"), '{"id":"s0","cmd":"sleep 30"}\n{"id":"s1","cmd":"sleep 30"}\n');
  let child;
  let stderr = "";
  let named;
  const claiming = new Promise((r) => (named = r));
  const run = envdctl(["--domain", srv.domain, "batch", "--claim", "claims/half-fills", "--replicas", "4",
    "--grace", "200ms", "--results", path.join(work.dir, "halfsleep.out"), path.join(work.dir, "halfsleep.jsonl")],
  { env: env(), timeoutMs: 60000, onSpawn: (c) => {
    child = c;
    c.stderr.on("data", (d) => {
      stderr += d;
      if (/claiming sandboxes of/.test(stderr)) named();
    });
  } });
  await Promise.race([claiming, run]);
  const name = claimingOf(stderr);
  await claimedSome(name); // half of it claimed
  child.kill("SIGINT");
  const r = await run;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /interrupted/);
  assert.match(r.stderr, new RegExp(`claim claims/${name} released with its sandboxes`));
  assert.equal(await sandboxesLeft(name), false);
  const gone = await envdctl(["sandbox", "release", `claims/${name}`], { env: env() });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /not found/);
});

test("batch --claim refused: nothing runs and it says why", async () => {
  writeFileSync(path.join(work.dir, "one.jsonl"), '{"cmd":"true"}\n');
  const r = await envdctl(["--domain", srv.domain, "batch", "--claim", "claims/pool-a", "--replicas", "2",
    "--results", path.join(work.dir, "refused.out"), path.join(work.dir, "one.jsonl")],
  { env: env(path.join(work.dir, "mallory")), timeoutMs: 60000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--claim: .*RBAC verb "create" on resource "sandboxclaims"/);
  assert.match(r.stderr, /--claim: no sandbox claimed/);
  assert.equal(readFileSync(path.join(work.dir, "refused.out"), "utf8"), "");
});

test("batch --claim: Ctrl-C during the jobs still releases the pool", async () => {
  const jobs = [];
  for (let i = 0; i < 4; i++) jobs.push(JSON.stringify({ id: `s${i}`, cmd: "sleep 30" }));
  writeFileSync(path.join(work.dir, "sleep.jsonl"), jobs.join("\n") + "\n");
  let stderr = "";
  let child;
  let named;
  const claiming = new Promise((r) => (named = r));
  const run = envdctl(["--domain", srv.domain, "batch", "--claim", "claims/pool-a", "--replicas", "2",
    "--grace", "200ms", "--results", path.join(work.dir, "sleep.out"), path.join(work.dir, "sleep.jsonl")],
  { env: env(), timeoutMs: 60000, onSpawn: (c) => {
    child = c;
    c.stderr.on("data", (d) => {
      stderr += d;
      if (/claiming sandboxes of/.test(stderr)) named();
    });
  } });
  await Promise.race([claiming, run]);
  const name = claimingOf(stderr);
  await claimedSome(name);
  await new Promise((r) => setTimeout(r, 500)); // the scheduler runs the jobs
  child.kill("SIGINT");
  const r = await run;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /interrupted/);
  assert.match(r.stderr, new RegExp(`claim claims/${name} released with its sandboxes`));
  assert.equal(await sandboxesLeft(name), false);
});

test("batch --claim usage errors", async () => {
  writeFileSync(path.join(work.dir, "one.jsonl"), '{"cmd":"true"}\n');
  for (const args of [["--replicas", "2"], ["--keep"], ["--claim", "claims/pool-a", "--replicas", "0"],
    ["--claim", "claims/pool-a", "--k8s-job", "--image", "x", "--completions", "2"]]) {
    const r = await envdctl(["--domain", srv.domain, "batch", ...args, path.join(work.dir, "one.jsonl")], { env: env() });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
  }
});
