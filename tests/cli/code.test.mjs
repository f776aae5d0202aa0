// envdctl code: events printed as they come (stdout to stdout; stderr and
// an error's traceback to stderr; results as text), exit 1 when the code
// raised, 255 when envdctl could not run it, 2 for usage; contexts keep
// state. The code interpreter is the reference server's
// (tests/peer/lib/code-interpreter.mjs), reached with e2b-sandbox-port:
// 49999 on the server's port as through a gateway.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServer, envdctl, ENVDCTL } from "./lib.mjs";

let srv;
let dir;
const d = () => ["--domain", srv.domain];

before(async () => {
  srv = await startServer();
  dir = mkdtempSync(path.join(tmpdir(), "envdctl-code-"));
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function codeFile(name, text) {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

test("stdout, stderr and results go where they belong; exit 0", async () => {
  const f = codeFile("ok.py", "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\ndisplay('shown')\n6 * 7\n");
  const r = await envdctl([...d(), "code", f]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "to out\nshown\n42\n");
  assert.equal(r.stderr, "to err\n");
});

test("an exception: its traceback on stderr, exit 1", async () => {
  const f = codeFile("raise.py", "print('before')\ndef boom():\n    raise KeyError('k')\nboom()\n");
  const r = await envdctl([...d(), "code", f]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, "before\n");
  assert.match(r.stderr, /Traceback[\s\S]*in boom[\s\S]*KeyError: 'k'\n$/);
});

test("a syntax error exits 1; code from stdin", async () => {
  let r = await envdctl([...d(), "code", "-"], { input: "def f(:\n" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /SyntaxError/);
  r = await envdctl([...d(), "code", "-", "--env", "CODE_CLI=yes"], { input: "import os\nos.environ['CODE_CLI']\n" });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "yes\n");
});

test("--context keeps state; an unknown context fails with 255", async () => {
  const res = await fetch(`http://${srv.domain}/contexts`, {
    method: "POST",
    headers: { "e2b-sandbox-port": "49999", "content-type": "application/json" },
    body: "{}",
  });
  const ctx = await res.json();
  let r = await envdctl([...d(), "code", "--context", ctx.id, "-"], { input: "counter = 41\n" });
  assert.equal(r.code, 0, r.stderr);
  r = await envdctl([...d(), "code", "--context", ctx.id, "-"], { input: "counter + 1\n" });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "42\n");
  r = await envdctl([...d(), "code", "--context", "no-such-context", "-"], { input: "1\n" });
  assert.equal(r.code, 255);
  assert.match(r.stderr, /not found/);
});

test("events are printed as they come, not at the end", async () => {
  // The code waits for a file the test writes only after it saw the first
  // line: buffered output would never let it finish.
  const flag = path.join(dir, "go");
  const f = codeFile("wait.py", `import os, time\nprint('ready', flush=True)\nwhile not os.path.exists(${JSON.stringify(flag)}):\n    time.sleep(0.05)\nprint('done')\n`);
  const child = spawn(ENVDCTL, [...d(), "code", f], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr.on("data", (x) => (err += x));
  const code = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no live output: stdout ${JSON.stringify(out)}, stderr ${err}`));
    }, 30000);
    child.stdout.on("data", (x) => {
      out += x;
      if (out === "ready\n") writeFileSync(flag, "");
    });
    child.on("exit", (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(code, 0, err);
  assert.equal(out, "ready\ndone\n");
});

test("usage errors exit 2", async () => {
  let r = await envdctl([...d(), "code"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing FILE/);
  r = await envdctl([...d(), "code", "--language", "python", "--context", "x", "-"], { input: "1" });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /exclude each other/);
  r = await envdctl([...d(), "code", path.join(dir, "absent.py")]);
  assert.equal(r.code, 1);
  r = await envdctl([...d(), "code", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /usage: envdctl code/);
});

test("batch jobs with code: results as text on stdout, a raised error fails the job", async () => {
  const jobs = path.join(dir, "code-jobs.jsonl");
  writeFileSync(jobs, [
    { id: "ok", code: "print('p')\n21 * 2", env: { A: "1" } },
    { id: "raises", code: "raise RuntimeError('nope')" },
    { id: "env", code: "import os\nos.environ['CODE_JOB']", env: { CODE_JOB: "from-job" } },
    { id: "cmd", cmd: "echo still-commands" },
  ].map((j) => JSON.stringify(j)).join("\n") + "\n");
  const results = path.join(dir, "code-jobs.out");
  const r = await envdctl([...d(), "batch", "--results", results, jobs], { timeoutMs: 60000 });
  assert.equal(r.code, 1, r.stderr); // one job failed
  const rows = Object.fromEntries(readFileSync(results, "utf8").trim().split("\n").map((l) => JSON.parse(l)).map((x) => [x.id, x]));
  assert.equal(rows.ok.status, "ok", JSON.stringify(rows.ok));
  assert.equal(rows.ok.stdout, "p\n42\n");
  assert.equal(rows.ok.exit_code, null);
  assert.equal(rows.raises.status, "failed");
  assert.equal(rows.raises.error, "RuntimeError: nope");
  assert.match(rows.raises.stderr, /RuntimeError: nope/);
  assert.equal(rows.env.stdout, "from-job\n");
  assert.equal(rows.cmd.stdout, "still-commands\n");

  const bad = path.join(dir, "bad-code-jobs.jsonl");
  writeFileSync(bad, JSON.stringify({ code: "1", cmd: "true" }) + "\n" + JSON.stringify({ cmd: "true", language: "python" }) + "\n" + JSON.stringify({ code: "1", stdin: "x" }) + "\n");
  const b = await envdctl([...d(), "batch", "--results", path.join(dir, "bad.out"), bad]);
  assert.equal(b.code, 2, b.stderr);
  assert.match(b.stderr, /'code' with 'cmd' or 'argv' given/);
  assert.match(b.stderr, /'language' goes with 'code'/);
  assert.match(b.stderr, /'code' takes no 'stdin'/);
});
