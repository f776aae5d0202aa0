// envdctl sandbox create / list / kill through the E2B API stub
// (tests/e2bapi/stub.mjs), whose sandboxes all point at the reference
// server with the one token it accepts: the JSON lines of `create` are a
// `batch --sandboxes` file that needs neither --domain nor --token. The
// last tests give each sandbox its own token, which a second reference
// server checks per sandbox (PEER_SANDBOX_TOKENS).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startServer, envdctl, tempDir, ENVDCTL } from "./lib.mjs";
import { startE2bStub } from "../e2bapi/start.mjs";

const TOKEN = "e2bapi-cli-token";
let srv;
let work;

before(async () => {
  srv = await startServer({ token: TOKEN, http: "h1" });
  work = tempDir("envdctl-e2bapi-");
});
after(async () => {
  await srv?.stop();
  work?.remove();
});

const lines = (s) => s.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
const env = (stub, key = "test-key") => ({ E2B_API_URL: stub.url, E2B_API_KEY: key });

async function withStub(args, fn) {
  const stub = await startE2bStub(srv.domain, ["--envd-token", TOKEN, ...args]);
  try {
    await fn(stub);
  } finally {
    await stub.stop();
  }
}

test("create 5, run a batch over them, list by metadata, kill them", () =>
  withStub(["--create-delay-ms", "50"], async (stub) => {
    const r = await envdctl(["sandbox", "create", "--template", "base", "--count", "5",
      "--concurrency", "2", "--metadata", "team=cli", "--timeout", "10m"], { env: env(stub) });
    assert.equal(r.code, 0, r.stderr);
    const got = lines(r.stdout);
    assert.equal(got.length, 5);
    for (const s of got) {
      assert.equal(s.domain, srv.domain);
      assert.equal(s.token, TOKEN);
      assert.equal(s.template, "base");
    }
    assert.equal(new Set(got.map((s) => s.id)).size, 5);
    const stats = await stub.call("GET", "/_stub/stats");
    assert.ok(stats.maxConcurrentCreates <= 2, `${stats.maxConcurrentCreates} creates at once`);

    // a --sandboxes file: each line brings its own domain and token
    const pool = path.join(work.dir, "pool.jsonl");
    writeFileSync(pool, r.stdout);
    const jobs = [];
    for (let i = 0; i < 10; i++) jobs.push(JSON.stringify({ id: `j${i}`, cmd: `echo ${i}` }));
    writeFileSync(path.join(work.dir, "jobs.jsonl"), jobs.join("\n") + "\n");
    const b = await envdctl(["batch", "--sandboxes", pool, "--results", "-",
      path.join(work.dir, "jobs.jsonl")], { timeoutMs: 60000 });
    assert.equal(b.code, 0, b.stderr);
    const res = lines(b.stdout);
    assert.equal(res.length, 10);
    for (const j of res) {
      assert.equal(j.status, "ok");
      assert.equal(j.stdout, `${j.id.slice(1)}\n`);
      assert.ok(got.some((s) => s.id === j.sandbox));
    }

    // one more without the metadata: the filter leaves it out
    const extra = await envdctl(["sandbox", "create", "--template", "other"], { env: env(stub) });
    assert.equal(extra.code, 0, extra.stderr);
    const l = await envdctl(["sandbox", "list", "--metadata", "team=cli"], { env: env(stub) });
    assert.equal(l.code, 0, l.stderr);
    const listed = lines(l.stdout);
    assert.deepEqual(listed.map((s) => s.id).sort(), got.map((s) => s.id).sort());
    for (const s of listed) {
      assert.equal(s.state, "running");
      assert.deepEqual(s.metadata, { team: "cli" });
    }
    const all = lines((await envdctl(["sandbox", "list"], { env: env(stub) })).stdout);
    assert.equal(all.length, 6);

    const k = await envdctl(["sandbox", "kill", ...all.map((s) => s.id)], { env: env(stub) });
    assert.equal(k.code, 0, k.stderr);
    assert.equal(await stub.live(), 0);
    const again = await envdctl(["sandbox", "kill", got[0].id], { env: env(stub) });
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`${got[0].id}: no such sandbox`));
  }));

test("a quota 403 stops the creates it refuses; what was made is printed", () =>
  withStub(["--max-live", "2"], async (stub) => {
    const r = await envdctl(["sandbox", "create", "--template", "base", "--count", "3",
      "--concurrency", "1"], { env: env(stub) });
    assert.equal(r.code, 1);
    assert.equal(lines(r.stdout).length, 2);
    assert.match(r.stderr, /HTTP 403/);
    assert.match(r.stderr, /quota or permission error: final, not retried/);
    assert.match(r.stderr, /2 of 3 sandboxes created/);
    const stats = await stub.call("GET", "/_stub/stats");
    assert.equal(stats.requests.filter((q) => q.method === "POST").length, 3); // no retry
    const k = await envdctl(["sandbox", "kill", ...lines(r.stdout).map((s) => s.id)], { env: env(stub) });
    assert.equal(k.code, 0, k.stderr);
    assert.equal(await stub.live(), 0);
  }));

test("429 bursts are waited out", () =>
  withStub(["--rate", "2", "--burst", "2"], async (stub) => {
    const r = await envdctl(["sandbox", "create", "--template", "base", "--count", "5"],
      { env: env(stub), timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lines(r.stdout).length, 5);
    const stats = await stub.call("GET", "/_stub/stats");
    assert.ok(stats.requests.some((q) => q.status === 429), "the stub refused some");
    await envdctl(["sandbox", "kill", ...lines(r.stdout).map((s) => s.id)], { env: env(stub) });
    assert.equal(await stub.live(), 0);
  }));

test("Ctrl-C during create kills what was made", () =>
  withStub(["--create-delay-ms", "400"], async (stub) => {
    const child = spawn(ENVDCTL, ["sandbox", "create", "--template", "base", "--count", "6",
      "--concurrency", "1"], { env: { ...process.env, ...env(stub) }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const first = new Promise((resolve) => child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve();
    }));
    await first;
    child.kill("SIGINT");
    const code = await new Promise((r) => child.on("exit", r));
    assert.equal(code, 1);
    const m = /interrupted; (\d+) sandbox(es)? killed/.exec(err);
    assert.ok(m, err);
    const stats = await stub.call("GET", "/_stub/stats");
    assert.ok(stats.created >= 1);
    // the create in flight at the interrupt was waited for, then killed too
    assert.equal(Number(m[1]), stats.created);
    assert.equal(await stub.live(), 0);
  }));

test("a refused API key, a missing template, an unknown option", () =>
  withStub([], async (stub) => {
    const bad = await envdctl(["sandbox", "list"], { env: env(stub, "wrong") });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /the API key was refused \(HTTP 401\): Invalid API Key/);
    const viaFlag = await envdctl(["sandbox", "create", "--template", "t", "--api-key", "wrong",
      "--api-url", stub.url]);
    assert.equal(viaFlag.code, 1);
    assert.match(viaFlag.stderr, /API key was refused/);
    const none = await envdctl(["sandbox", "create"], { env: env(stub) });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--template is required/);
    const wrong = await envdctl(["sandbox", "list", "--count", "2"], { env: env(stub) });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /--count: not an option of sandbox list/);
    const url = await envdctl(["sandbox", "list", "--api-url", "ftp://x"], { env: env(stub) });
    assert.equal(url.code, 2);
    assert.equal(await stub.live(), 0);
  }));

test("batch --create: the pool made before the first job, killed at the end unless --keep", () =>
  withStub([], async (stub) => {
    const jobs = [];
    for (let i = 0; i < 9; i++) jobs.push(JSON.stringify({ id: `c${i}`, cmd: `echo ${i}` }));
    const file = path.join(work.dir, "create-jobs.jsonl");
    writeFileSync(file, jobs.join("\n") + "\n");
    const r = await envdctl(["batch", "--create", "base", "--count", "3", "--results", "-", file],
      { env: env(stub), timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    const res = lines(r.stdout);
    assert.equal(res.length, 9);
    assert.ok(res.every((j) => j.status === "ok"));
    assert.equal(new Set(res.map((j) => j.sandbox)).size, 3);
    assert.match(r.stderr, /created 3 of 3 sandboxes of base/);
    assert.match(r.stderr, /3 created sandboxes killed/);
    assert.equal(await stub.live(), 0);

    const kept = await envdctl(["batch", "--create", "base", "--count", "2", "--keep", "--results",
      path.join(work.dir, "kept.jsonl"), file], { env: env(stub), timeoutMs: 60000 });
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stderr, /2 created sandboxes kept \(--keep\)/);
    assert.equal(await stub.live(), 2);
    const all = lines((await envdctl(["sandbox", "list"], { env: env(stub) })).stdout);
    await envdctl(["sandbox", "kill", ...all.map((s) => s.id)], { env: env(stub) });
    assert.equal(await stub.live(), 0);

    const count = await envdctl(["batch", "--count", "2", file], { env: env(stub) });
    assert.equal(count.code, 2);
    assert.match(count.stderr, /--count goes with --create/);
    const both = await envdctl(["batch", "--create", "base", "--claim", "ns/t", file], { env: env(stub) });
    assert.equal(both.code, 2);
    const refused = await envdctl(["batch", "--create", "base", "--count", "2", file],
      { env: env(stub, "wrong") });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--create: no sandbox created/);
  }));

// Polls the stub until pred(stats) holds (a bound, not a speed test).
async function until(stub, pred, what) {
  const end = Date.now() + 30000;
  for (;;) {
    const st = await stub.call("GET", "/_stub/stats");
    if (pred(st)) return st;
    if (Date.now() > end) throw new Error(`stub never reached: ${what} (${JSON.stringify({ ...st, requests: undefined })})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function jobsFile(name, n, cmd) {
  const file = path.join(work.dir, name);
  const jobs = [];
  for (let i = 0; i < n; i++) jobs.push(JSON.stringify({ id: `${name[0]}${i}`, cmd: cmd(i) }));
  writeFileSync(file, jobs.join("\n") + "\n");
  return file;
}

test("batch --create: jobs run on the first sandbox while the others are still being created", () =>
  withStub([], async (stub) => {
    await stub.call("POST", "/_stub/hold", { after: 1 }); // creates 2 and 3 wait for /_stub/unhold
    const file = jobsFile("early.jsonl", 6, (i) => `echo ${i}`);
    const out = path.join(work.dir, "early.out");
    let stderr = "";
    let summary;
    const printed = new Promise((r) => (summary = r));
    const run = envdctl(["batch", "--create", "base", "--count", "3", "--results", out, file],
      { env: env(stub), timeoutMs: 60000, onSpawn: (c) => c.stderr.on("data", (d) => {
        stderr += d;
        if (/envdctl batch: 6 jobs/.test(stderr)) summary();
      }) });
    await Promise.race([printed, run]);
    // every job is over, and the last two creates have not completed
    assert.match(stderr, /envdctl batch: 6 jobs: 6 ok/);
    await until(stub, (st) => st.held === 2, "two creates held");
    assert.equal((await stub.call("GET", "/_stub/stats")).created, 1);
    await stub.call("POST", "/_stub/unhold");
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const rows = lines(readFileSync(out, "utf8"));
    assert.equal(rows.length, 6);
    assert.ok(rows.every((j) => j.status === "ok" && j.stdout === `${j.id.slice(1)}\n`));
    assert.equal(new Set(rows.map((j) => j.sandbox)).size, 1);
    assert.match(r.stderr, /--create: 1 of 3 sandboxes had joined the pool when the batch ended/);
    // the two made after the last job are killed with the first
    assert.match(r.stderr, /3 created sandboxes killed/);
    assert.equal((await stub.call("GET", "/_stub/stats")).created, 3);
    assert.equal(await stub.live(), 0);
  }));

test("batch --create: Ctrl-C while the pool is being created kills every sandbox, also those made after it", () =>
  withStub([], async (stub) => {
    await stub.call("POST", "/_stub/hold", { after: 1 });
    const file = jobsFile("ctrlc.jsonl", 3, () => "sleep 30");
    let child;
    let stderr = "";
    let interrupted;
    const saidSo = new Promise((r) => (interrupted = r));
    const run = envdctl(["batch", "--create", "base", "--count", "3", "--grace", "200ms", "--results",
      path.join(work.dir, "ctrlc.out"), file], { env: env(stub), timeoutMs: 60000, onSpawn: (c) => {
      child = c;
      c.stderr.on("data", (d) => {
        stderr += d;
        if (/interrupted/.test(stderr)) interrupted();
      });
    } });
    await until(stub, (st) => st.created === 1 && st.held === 2, "one made, two held");
    child.kill("SIGINT");
    await Promise.race([saidSo, run]);
    await stub.call("POST", "/_stub/unhold"); // the two complete after the Ctrl-C
    const r = await run;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /3 created sandboxes killed/);
    assert.equal((await stub.call("GET", "/_stub/stats")).created, 3);
    assert.equal(await stub.live(), 0);
  }));

test("batch --create --report: acquisition p50/p95/max per sandbox; a refused create is reported, the rest used", () =>
  withStub(["--create-delay-ms", "100", "--max-live", "2"], async (stub) => {
    const file = jobsFile("report.jsonl", 4, (i) => `echo ${i}`);
    const report = path.join(work.dir, "report.json");
    const r = await envdctl(["batch", "--create", "base", "--count", "3", "--report", report, "--results",
      path.join(work.dir, "report.out"), file], { env: env(stub), timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /quota or permission error.*HTTP 403/);
    assert.match(r.stderr, /created 2 of 3 sandboxes of base/);
    assert.match(r.stderr, /acquired 2 sandboxes \(1 failed\), each in: p50 \d+ms, p95 \d+ms, max \d+ms/);
    const rep = JSON.parse(readFileSync(report, "utf8"));
    assert.equal(rep.jobs, 4);
    assert.equal(rep.ok, 4);
    assert.equal(rep.not_run, 0);
    for (const ph of ["total", "upload", "run", "download"])
      assert.ok(rep.phases[ph].p50_ms <= rep.phases[ph].p95_ms && rep.phases[ph].p95_ms <= rep.phases[ph].p99_ms);
    assert.equal(rep.acquire.count, 2);
    assert.equal(rep.acquire.failed, 1);
    // a create takes the stub's 100 ms at least: the times are real ones
    assert.ok(rep.acquire.p50_ms >= 100, JSON.stringify(rep.acquire));
    assert.ok(rep.acquire.p50_ms <= rep.acquire.p95_ms && rep.acquire.p95_ms <= rep.acquire.max_ms,
      JSON.stringify(rep.acquire));
    assert.equal(await stub.live(), 0);
    // without --create there is no acquisition in the report
    const plain = await envdctl(["--domain", srv.domain, "--token", TOKEN, "batch", "--report", report,
      "--results", path.join(work.dir, "report2.out"), file]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(JSON.parse(readFileSync(report, "utf8")).acquire, undefined);
  }));

test("each created sandbox has its own token, checked per sandbox by the server", async () => {
  const secret = "per-sandbox-secret";
  const log = path.join(work.dir, "sandbox-requests.log");
  writeFileSync(log, "");
  const peer = await startServer({ http: "h1", env: { PEER_SANDBOX_TOKENS: secret, PEER_SANDBOX_LOG: log } });
  const stub = await startE2bStub(peer.domain, ["--token-secret", secret]);
  try {
    const file = jobsFile("tokens.jsonl", 9, (i) => `echo ${i}`);
    const b = await envdctl(["batch", "--create", "base", "--count", "3", "--results", "-", file],
      { env: env(stub), timeoutMs: 60000 });
    assert.equal(b.code, 0, b.stderr);
    const rows = lines(b.stdout);
    assert.equal(rows.length, 9);
    assert.ok(rows.every((j) => j.status === "ok"), b.stdout);
    assert.equal(new Set(rows.map((j) => j.sandbox)).size, 3);
    assert.equal(await stub.live(), 0);
    // each job's command reached the server as the sandbox its row names
    const starts = {};
    for (const l of readFileSync(log, "utf8").trim().split("\n")) {
      const [id, method, p, verdict] = l.split(" ");
      assert.equal(verdict, "ok", l);
      if (method === "POST" && p === "/process.Process/Start") starts[id] = (starts[id] ?? 0) + 1;
    }
    const perRow = {};
    for (const j of rows) perRow[j.sandbox] = (perRow[j.sandbox] ?? 0) + 1;
    assert.deepEqual(starts, perRow);

    const c = await envdctl(["sandbox", "create", "--template", "base", "--count", "2"], { env: env(stub) });
    assert.equal(c.code, 0, c.stderr);
    const [x, y] = lines(c.stdout);
    assert.notEqual(x.token, y.token);
    const run = async (pool) => {
      writeFileSync(path.join(work.dir, "tokens-pool.jsonl"), pool.map((l) => JSON.stringify(l)).join("\n") + "\n");
      return envdctl(["batch", "--sandboxes", path.join(work.dir, "tokens-pool.jsonl"), "--results", "-",
        "--retries", "0", file], { timeoutMs: 60000 });
    };
    const good = await run([x, y]);
    assert.equal(good.code, 0, good.stderr);
    assert.ok(lines(good.stdout).every((j) => j.status === "ok"));
    // each sandbox with the other's token: refused, whichever it reaches
    const swapped = await run([{ ...x, token: y.token }, { ...y, token: x.token }]);
    assert.equal(swapped.code, 1);
    const bad = lines(swapped.stdout);
    assert.equal(bad.length, 9);
    for (const j of bad) {
      assert.equal(j.status, "error");
      assert.match(j.error, new RegExp(`the access token is not sandbox ${j.sandbox}'s`));
    }
    const k = await envdctl(["sandbox", "kill", x.id, y.id], { env: env(stub) });
    assert.equal(k.code, 0, k.stderr);
    assert.equal(await stub.live(), 0);
  } finally {
    await stub.stop();
    await peer.stop();
  }
});
