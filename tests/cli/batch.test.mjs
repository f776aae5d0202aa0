// envdctl batch against the reference server: exact results for 1,000
// jobs, uploads and downloads, failing and timing-out jobs, every kind of
// jobs-file error with its line, Ctrl-C then --resume (markers counted in
// the sandbox), --resume-failed, shards, retries through a proxy that
// resets the first connections, a pool with a sandbox behind a failing
// gateway, and the Indexed Job manifest.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { startServer, envdctl, tempDir } from "./lib.mjs";

let srv;
let work;
const d = () => ["--domain", srv.domain];
const inSandbox = (p) => path.join(srv.root, p);
const W = (name) => path.join(work.dir, name);

before(async () => {
  srv = await startServer();
  work = tempDir("envdctl-batch-");
});
after(async () => {
  await srv?.stop();
  work?.remove();
});

const jsonl = (jobs) => jobs.map((j) => JSON.stringify(j)).join("\n") + "\n";
const readResults = (file) =>
  readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const byId = (rows) => Object.fromEntries(rows.map((r) => [r.id, r]));
const KEYS = ["id", "sandbox", "status", "exit_code", "error", "attempts", "started_at", "duration_ms",
  "upload_ms", "run_ms", "download_ms", "stdout", "stdout_truncated", "stderr", "stderr_truncated"];

test("1,000 jobs over four sandboxes: exact results, keys as specified", async () => {
  const jobs = [];
  for (let i = 1; i <= 1000; i++) jobs.push({ id: `j${i}`, cmd: `echo ${i * 7}; exit ${i % 10 === 0 ? 3 : 0}` });
  writeFileSync(W("k.jsonl"), jsonl(jobs));
  const r = await envdctl([...d(), "batch", "--sandbox", "a", "--sandbox", "b", "--sandbox", "c",
    "--sandbox", "d", "--per-sandbox", "6", "--results", W("k.out"), W("k.jsonl")], { timeoutMs: 90000 });
  assert.equal(r.code, 1, r.stderr); // a tenth exit 3
  const rows = readResults(W("k.out"));
  assert.equal(rows.length, 1000);
  const m = byId(rows);
  assert.equal(Object.keys(m).length, 1000);
  const sandboxes = new Set();
  for (let i = 1; i <= 1000; i++) {
    const row = m[`j${i}`];
    assert.deepEqual(Object.keys(row), KEYS);
    assert.equal(row.stdout, `${i * 7}\n`);
    assert.equal(row.exit_code, i % 10 === 0 ? 3 : 0);
    assert.equal(row.status, i % 10 === 0 ? "failed" : "ok");
    assert.equal(row.attempts, 1);
    assert.match(row.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    sandboxes.add(row.sandbox);
  }
  assert.deepEqual([...sandboxes].sort(), ["a", "b", "c", "d"]);
  assert.match(r.stderr, /1000 jobs: 900 ok, 100 failed, 0 error, 0 canceled/);
  assert.match(r.stderr, /jobs\/s/);
  assert.match(r.stderr, /run\s+\d+ms/);
  assert.match(r.stderr, /slowest: /);
});

test("uploads before, downloads after (whatever the exit code), --output-dir, YAML", async () => {
  mkdirSync(inSandbox("ud"), { recursive: true });
  writeFileSync(W("in1.txt"), "alpha\n");
  writeFileSync(W("in2.txt"), "beta\n");
  const yaml = `# two jobs
- id: upper
  cwd: /ud
  cmd: "tr a-z A-Z < in1.txt > out1.txt; cat in2.txt; echo to-stderr >&2"
  upload:
    - {src: ${W("in1.txt")}, dst: /ud/in1.txt}
    - {src: ${W("in2.txt")}, dst: /ud/in2.txt}
  download:
    - {src: /ud/out1.txt, dst: ${W("dl/upper/out1.txt")}}
- id: fails-but-downloads
  cwd: /ud
  argv: [/bin/sh, -c, "echo partial > part.txt; exit 4"]
  download:
    - src: /ud/part.txt
      dst: ${W("dl/part.txt")}
`;
  writeFileSync(W("ud.yaml"), yaml);
  const r = await envdctl([...d(), "batch", "--results", W("ud.out"), "--output-dir", W("outs"), W("ud.yaml")]);
  assert.equal(r.code, 1, r.stderr);
  const m = byId(readResults(W("ud.out")));
  assert.equal(m.upper.status, "ok", JSON.stringify(m.upper));
  assert.ok(m.upper.upload_ms >= 0 && m.upper.download_ms >= 0);
  assert.equal(readFileSync(W("dl/upper/out1.txt"), "utf8"), "ALPHA\n");
  assert.equal(readFileSync(W("outs/upper.stdout"), "utf8"), "beta\n");
  assert.equal(readFileSync(W("outs/upper.stderr"), "utf8"), "to-stderr\n");
  assert.ok(!("stdout" in m.upper), "no stdout key with --output-dir");
  assert.equal(m["fails-but-downloads"].status, "failed");
  assert.equal(m["fails-but-downloads"].exit_code, 4);
  assert.equal(readFileSync(W("dl/part.txt"), "utf8"), "partial\n");
});

test("failing, timing-out, truncated, stdin and a missing download", async () => {
  writeFileSync(W("f.jsonl"), jsonl([
    { id: "ok", cmd: "cat", stdin: "from stdin" },
    { id: "exit7", cmd: "echo no >&2; exit 7" },
    { id: "slow", cmd: "sleep 20", timeout: 0.5 },
    { id: "big", cmd: "head -c 5000 /dev/zero | tr '\\0' x" },
    { id: "nodl", cmd: "true", download: [{ src: "/does/not/exist", dst: W("nodl.txt") }] },
  ]));
  const t0 = Date.now();
  const r = await envdctl([...d(), "batch", "--max-output", "100", "--results", W("f.out"), W("f.jsonl")]);
  assert.equal(r.code, 1);
  assert.ok(Date.now() - t0 < 15000, "the timeout ended the slow job");
  const m = byId(readResults(W("f.out")));
  assert.equal(m.ok.status, "ok");
  assert.equal(m.ok.stdout, "from stdin");
  assert.equal(m.exit7.status, "failed");
  assert.equal(m.exit7.exit_code, 7);
  assert.equal(m.exit7.stderr, "no\n");
  assert.equal(m.slow.status, "failed");
  assert.equal(m.slow.exit_code, -1);
  assert.match(m.slow.error, /timeout/);
  assert.equal(m.big.stdout, "x".repeat(100));
  assert.equal(m.big.stdout_truncated, true);
  assert.equal(m.big.stderr_truncated, false);
  assert.equal(m.nodl.status, "error");
  assert.equal(m.nodl.exit_code, 0);
  assert.match(m.nodl.error, /download/);
  assert.match(r.stderr, /5 jobs: 2 ok, 2 failed, 1 error/);
});

test("a jobs file with every kind of error: FILE:LINE for each, nothing runs", async () => {
  const lines = [
    `{"id":"good","cmd":"touch ${inSandbox("must-not-exist")}"}`, // 1
    `{"id":"x","cmd":"true","colour":"red"}`, // 2 unknown field
    `{"id":"y"}`, // 3 no cmd/argv
    `{"id":"z","cmd":"true","argv":["true"]}`, // 4 both
    `{"id":"good","cmd":"true"}`, // 5 duplicate id
    `{"cmd": "true",`, // 6 invalid JSON
    `["not","an","object"]`, // 7
    `{"cmd":"true","timeout":-1}`, // 8
    `{"cmd":"true","upload":[{"src":"${W("no-such-file")}","dst":"/x"}]}`, // 9
    `# a comment`, // 10
    ``, // 11
    `{"argv":[]}`, // 12
    `{"cmd":"true","retries":"two"}`, // 13
  ];
  writeFileSync(W("bad.jsonl"), lines.join("\n") + "\n");
  const r = await envdctl([...d(), "batch", "--results", W("bad.out"), W("bad.jsonl")]);
  assert.equal(r.code, 2);
  const f = W("bad.jsonl");
  for (const [line, what] of [[2, /unknown field 'colour'/], [3, /missing 'cmd' or 'argv'/],
    [4, /both 'cmd' and 'argv'/], [5, /duplicate id 'good'/], [6, /invalid JSON/], [7, /a job must be an object/],
    [8, /'timeout'/], [9, /'upload' item 0: .*no-such-file/], [12, /'argv'/], [13, /'retries'/]]) {
    assert.match(r.stderr, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:${line}: ${what.source}`));
  }
  for (const line of [1, 10, 11]) assert.doesNotMatch(r.stderr, new RegExp(`bad\\.jsonl:${line}:`));
  assert.ok(!existsSync(W("bad.out")), "no results file: nothing ran");
  assert.ok(!existsSync(inSandbox("must-not-exist")));
  // --check: the same errors; a good file is counted
  const c = await envdctl(["batch", "--check", W("bad.jsonl")]);
  assert.equal(c.code, 2);
  writeFileSync(W("ok.yaml"), "- cmd: 'true'\n- argv: [echo, hi]\n  retries: 3\n");
  const ok = await envdctl(["batch", "--check", W("ok.yaml")]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /2 jobs, valid/);
  // YAML errors carry the line of the job's item
  writeFileSync(W("bad.yaml"), "- cmd: 'true'\n- cmd: 'true'\n  bogus: 1\n- id: 1\n");
  const y = await envdctl(["batch", "--check", W("bad.yaml")]);
  assert.equal(y.code, 2);
  assert.match(y.stderr, /bad\.yaml:2: unknown field 'bogus'/);
  assert.match(y.stderr, /bad\.yaml:4: missing 'cmd' or 'argv'/);
  // a usage error names the flag
  const u = await envdctl(["batch", "--jobs", "zero", W("ok.yaml")]);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--jobs: expected a positive integer/);
});

/** Jobs appending to a per-job marker file in the sandbox at their end. */
function markerJobs(n, dir, sleep) {
  const jobs = [];
  for (let i = 0; i < n; i++) jobs.push({ id: `m${i}`, cwd: `/${dir}`, cmd: `sleep ${sleep} && echo x >> m${i}.mark` });
  return jobs;
}
const markers = (dir) => {
  const counts = {};
  for (const f of readdirSync(inSandbox(dir))) {
    if (f.endsWith(".mark")) counts[f.slice(0, -5)] = readFileSync(inSandbox(`${dir}/${f}`), "utf8").split("\n").filter(Boolean).length;
  }
  return counts;
};

/** Starts envdctl and sends signals once the results file has `after` lines. */
function runAndInterrupt(args, resultsFile, after, signals) {
  return envdctl(args, {
    timeoutMs: 60000,
    onSpawn: (child) => {
      const timer = setInterval(() => {
        const n = existsSync(resultsFile) ? readFileSync(resultsFile, "utf8").split("\n").filter(Boolean).length : 0;
        if (n >= after) {
          clearInterval(timer);
          for (const [i, s] of signals.entries()) setTimeout(() => child.kill(s), 150 * i);
        }
      }, 20);
      child.on("close", () => clearInterval(timer));
    },
  });
}

test("Ctrl-C in the middle, then --resume: every job ran exactly once", async () => {
  mkdirSync(inSandbox("mk"), { recursive: true });
  writeFileSync(W("mk.jsonl"), jsonl(markerJobs(40, "mk", 0.2)));
  const res = W("mk.out");
  const args = [...d(), "batch", "--sandbox", "s1", "--sandbox", "s2", "--per-sandbox", "2", "--results", res];
  const first = await runAndInterrupt([...args, W("mk.jsonl")], res, 8, ["SIGINT"]);
  assert.equal(first.code, 1);
  assert.match(first.stderr, /interrupted/);
  const done1 = readResults(res);
  assert.ok(done1.length >= 8 && done1.length < 40, `${done1.length} finished before the interrupt`);
  // the grace let running jobs end: each finished one left its marker
  for (const row of done1) assert.equal(row.status, "ok", JSON.stringify(row));
  const second = await envdctl([...args, "--resume", W("mk.jsonl")], { timeoutMs: 60000 });
  assert.equal(second.code, 0, second.stderr);
  const rows = readResults(res);
  assert.equal(rows.length, 40);
  assert.equal(new Set(rows.map((r) => r.id)).size, 40);
  const counts = markers("mk");
  assert.equal(Object.keys(counts).length, 40);
  for (const [id, n] of Object.entries(counts)) assert.equal(n, 1, `${id} ran ${n} times`);
});

test("a second Ctrl-C cancels at once: processes killed, records canceled, --resume finishes", async () => {
  mkdirSync(inSandbox("cx"), { recursive: true });
  writeFileSync(W("cx.jsonl"), jsonl([{ id: "quick", cwd: "/cx", cmd: "echo x >> quick.mark" }, ...markerJobs(6, "cx", 3)]));
  const res = W("cx.out");
  const args = [...d(), "batch", "--per-sandbox", "7", "--results", res];
  const t0 = Date.now();
  const first = await runAndInterrupt([...args, W("cx.jsonl")], res, 1, ["SIGINT", "SIGINT"]);
  assert.equal(first.code, 1);
  assert.ok(Date.now() - t0 < 2900, "canceled before the 3 s sleeps ended");
  const rows = readResults(res);
  const canceled = rows.filter((r) => r.status === "canceled");
  assert.equal(canceled.length, 6, JSON.stringify(rows));
  assert.match(first.stderr, /6 canceled/);
  await new Promise((r) => setTimeout(r, 3500));
  assert.deepEqual(Object.keys(markers("cx")), ["quick"], "the canceled processes were killed");
  const second = await envdctl([...args, "--resume", W("cx.jsonl")], { timeoutMs: 30000 });
  assert.equal(second.code, 0, second.stderr);
  const counts = markers("cx");
  assert.equal(Object.keys(counts).length, 7);
  for (const n of Object.values(counts)) assert.equal(n, 1);
});

test("--resume-failed re-runs failed and error jobs, never ok ones", async () => {
  mkdirSync(inSandbox("rf"), { recursive: true });
  const jobs = [];
  for (let i = 0; i < 10; i++) {
    jobs.push({ id: `r${i}`, cwd: "/rf", cmd: i % 3 === 0 ? `test -f go || exit 1; echo x >> r${i}.mark` : `echo x >> r${i}.mark` });
  }
  writeFileSync(W("rf.jsonl"), jsonl(jobs));
  const res = W("rf.out");
  const args = [...d(), "batch", "--results", res];
  assert.equal((await envdctl([...args, W("rf.jsonl")])).code, 1);
  writeFileSync(inSandbox("rf/go"), "");
  const again = await envdctl([...args, "--resume", W("rf.jsonl")]);
  assert.equal(again.code, 0, again.stderr); // nothing left to run
  assert.equal(readResults(res).length, 10);
  const fixed = await envdctl([...args, "--resume-failed", W("rf.jsonl")]);
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.match(fixed.stderr, /4 jobs: 4 ok/);
  const counts = markers("rf");
  assert.equal(Object.keys(counts).length, 10);
  for (const n of Object.values(counts)) assert.equal(n, 1);
});

test("shards 0..3 of 4: the union is every job exactly once; JOB_COMPLETION_INDEX is the default", async () => {
  const jobs = [];
  for (let i = 0; i < 30; i++) jobs.push({ cmd: `echo ${i}` }); // ids default to the line
  writeFileSync(W("sh.jsonl"), jsonl(jobs));
  const seen = [];
  for (let s = 0; s < 4; s++) {
    const env = s === 3 ? { JOB_COMPLETION_INDEX: "3", JOB_COMPLETIONS: "4" } : {};
    const shard = s === 3 ? [] : ["--shard", `${s}/4`];
    const r = await envdctl([...d(), "batch", ...shard, "--results", W(`sh${s}.out`), W("sh.jsonl")], { env });
    assert.equal(r.code, 0, r.stderr);
    const rows = readResults(W(`sh${s}.out`));
    for (const row of rows) assert.equal((Number(row.id) - 1) % 4, s);
    seen.push(...rows.map((row) => row.id));
  }
  assert.equal(seen.length, 30);
  assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), jobs.map((_, i) => String(i + 1)));
  const bad = await envdctl(["batch", "--shard", "4/4", W("sh.jsonl")]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--shard/);
});

/** A TCP proxy to the server that resets its first `n` connections. */
function resettingProxy(n) {
  let seen = 0;
  const server = net.createServer((sock) => {
    if (seen++ < n) {
      sock.resetAndDestroy();
      return;
    }
    const up = net.connect(srv.port, "127.0.0.1");
    sock.pipe(up).pipe(sock);
    up.on("error", () => sock.destroy());
    sock.on("error", () => up.destroy());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: server.address().port, count: () => seen })));
}

test("retries: a server that refuses the first connections", async () => {
  const proxy = await resettingProxy(3);
  try {
    const jobs = [];
    for (let i = 0; i < 12; i++) jobs.push({ id: `t${i}`, cmd: `echo ${i}` });
    writeFileSync(W("rt.jsonl"), jsonl(jobs));
    const r = await envdctl(["--domain", `127.0.0.1:${proxy.port}`, "--transport", "connect", "batch",
      "--retries", "6", "--retry-backoff", "50ms", "--jobs", "3", "--results", W("rt.out"), W("rt.jsonl")]);
    assert.equal(r.code, 0, r.stderr);
    const rows = readResults(W("rt.out"));
    assert.equal(rows.length, 12);
    for (const row of rows) assert.equal(row.stdout, `${row.id.slice(1)}\n`);
    // The three refused connections were retried: by the library when it
    // knows nothing of the request went out (envd_config_set_retries), or
    // else by batch (--retries, counted in attempts). Which one depends on
    // when the reset lands, so only the sum is fixed.
    assert.ok(proxy.count() > 3);
    assert.ok(rows.every((row) => row.status === "ok"));
    // without retries the same refusals are errors, never retried
    const proxy0 = await resettingProxy(1000);
    try {
      const e = await envdctl(["--domain", `127.0.0.1:${proxy0.port}`, "--transport", "connect", "batch",
        "--retries", "0", "--retry-backoff", "50ms", "--pool-timeout", "2s", "--results", W("rt0.out"), W("rt.jsonl")]);
      assert.equal(e.code, 1);
      for (const row of readResults(W("rt0.out"))) {
        assert.equal(row.status, "error");
        assert.ok(row.attempts <= 1, "never retried");
        assert.equal(row.exit_code, null);
      }
    } finally {
      proxy0.server.close();
    }
  } finally {
    proxy.server.close();
  }
});

/** A gateway in front of the server (HTTP/1.1) answering 502 for one sandbox ID. */
function gateway(deadId) {
  const server = http.createServer((req, res) => {
    if (req.headers["e2b-sandbox-id"] === deadId) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end("bad gateway");
      return;
    }
    const up = http.request({ host: "127.0.0.1", port: srv.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: server.address().port })));
}

test("a pool with an unreachable sandbox: its jobs move, the batch succeeds", async () => {
  const gw = await gateway("dead");
  try {
    writeFileSync(W("cfg.yaml"), `domain: 127.0.0.1:${gw.port}\ntransport: connect\nsandboxes:\n  - name: live\n    id: live-1\n  - name: gone\n    id: dead\n`);
    const jobs = [];
    for (let i = 0; i < 20; i++) jobs.push({ id: `p${i}`, cmd: `echo ${i}` });
    writeFileSync(W("pool.jsonl"), jsonl(jobs));
    const r = await envdctl(["--config", W("cfg.yaml"), "batch", "--per-sandbox", "2", "--retry-backoff", "50ms",
      "--results", W("pool.out"), W("pool.jsonl")]);
    assert.equal(r.code, 0, r.stderr + readFileSync(W("pool.out"), "utf8"));
    const rows = readResults(W("pool.out"));
    assert.equal(rows.length, 20);
    for (const row of rows) {
      assert.equal(row.status, "ok");
      assert.equal(row.sandbox, "live");
    }
    assert.ok(rows.some((row) => row.attempts > 1), "jobs that went to the dead sandbox moved");
    // every sandbox out: the batch waits --pool-timeout, then fails the rest clearly
    const t0 = Date.now();
    const all = await envdctl(["--config", W("cfg.yaml"), "batch", "--sandbox", "gone", "--retry-backoff", "50ms",
      "--pool-timeout", "1s", "--results", W("pool2.out"), W("pool.jsonl")], { timeoutMs: 30000 });
    assert.equal(all.code, 1);
    assert.ok(Date.now() - t0 < 20000);
    const rows2 = readResults(W("pool2.out"));
    assert.equal(rows2.length, 20);
    for (const row of rows2) assert.equal(row.status, "error");
    assert.ok(rows2.some((row) => /unreachable/.test(row.error)), JSON.stringify(rows2[19]));
  } finally {
    gw.server.close();
  }
});

test("--halt-on-error stops starting jobs; --quiet prints nothing", async () => {
  const jobs = [];
  for (let i = 0; i < 30; i++) jobs.push({ id: `h${i}`, cmd: "exit 1" });
  writeFileSync(W("h.jsonl"), jsonl(jobs));
  const r = await envdctl([...d(), "batch", "--quiet", "--halt-on-error", "2", "--results", W("h.out"), W("h.jsonl")]);
  assert.equal(r.code, 1);
  const n = readResults(W("h.out")).length;
  assert.ok(n >= 2 && n < 30, `${n} jobs ran`);
  assert.doesNotMatch(r.stderr, /jobs\/s/);
});

test("--k8s-job prints an Indexed Job with the jobs file in a ConfigMap", async () => {
  writeFileSync(W("kj.jsonl"), jsonl([{ id: "a", cmd: "echo 'quoted' \"x\"" }, { id: "b", argv: ["true"] }]));
  const r = await envdctl(["batch", "--k8s-job", "--image", "example/envdctl:1", "--completions", "4",
    "--parallelism", "2", "--retries", "3", "--k8s-selector", "ns:app=x", W("kj.jsonl")]);
  assert.equal(r.code, 0, r.stderr);
  const [cm, job] = r.stdout.split(/^---$/m);
  assert.match(cm, /^kind: ConfigMap$/m);
  const data = /^  jobs\.jsonl: (".*")$/m.exec(cm);
  assert.ok(data, cm);
  assert.equal(JSON.parse(data[1]), readFileSync(W("kj.jsonl"), "utf8"));
  assert.match(job, /^kind: Job$/m);
  assert.match(job, /completionMode: Indexed/);
  assert.match(job, /completions: 4/);
  assert.match(job, /parallelism: 2/);
  assert.match(job, /name: JOB_COMPLETIONS\n\s+value: "4"/);
  for (const arg of ["--retries", "3", "--k8s-selector", "ns:app=x", "/jobs/jobs.jsonl", "--results"]) {
    assert.ok(job.includes(`- "${arg}"`), `${arg} in ${job}`);
  }
  const no = await envdctl(["batch", "--k8s-job", W("kj.jsonl")]);
  assert.equal(no.code, 2);
  assert.match(no.stderr, /--image/);
});

test("envdctl batch reads jobs from standard input", async () => {
  const r = await envdctl([...d(), "batch", "--results", "-", "-"], { input: jsonl([{ id: "s", cmd: "echo in" }]) });
  assert.equal(r.code, 0, r.stderr);
  const row = JSON.parse(r.stdout.trim());
  assert.equal(row.stdout, "in\n");
});

test("--progress: plain progress lines when stderr is no terminal, then the summary", async () => {
  writeFileSync(W("pg.jsonl"), jsonl([{ cmd: "true" }, { cmd: "true" }, { cmd: "exit 2" }]));
  const r = await envdctl([...d(), "batch", "--progress", "--results", W("pg.out"), W("pg.jsonl")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^envdctl: batch: 3\/3 ok 2 failed 1 error 0 \| [\d.]+ jobs\/s \| ETA 0:00$/m);
  assert.match(r.stderr, /3 jobs: 2 ok, 1 failed, 0 error, 0 canceled/);
  assert.doesNotMatch(r.stderr, /\r|\x1b\[/, "no terminal control without a terminal");
  const plain = await envdctl([...d(), "batch", "--results", W("pg2.out"), W("pg.jsonl")]);
  assert.doesNotMatch(plain.stderr, /ETA/, "no progress by default without a terminal");
  assert.match(plain.stderr, /3 jobs: 2 ok/);
});
