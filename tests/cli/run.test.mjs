// envdctl run, ps and kill: exit codes (the command's, 128+signal, 255 for
// envdctl's own failures, 2 for usage), live output, stdin, a PTY session
// through script(1) and a resize through tmux, tags, signals.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import { spawnSync, execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { startServer, envdctl, ENVDCTL } from "./lib.mjs";

let srv;
const d = () => ["--domain", srv.domain];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

/** Polls `envdctl ps --json` until a process with this tag shows up; its pid. */
async function pidOfTag(tag) {
  for (let i = 0; i < 100; i++) {
    const r = await envdctl([...d(), "ps", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const p = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((x) => x.tag === tag);
    if (p) return p.pid;
    await sleep(100);
  }
  throw new Error(`no process tagged ${tag}`);
}

test("exit codes: 0, the command's, 127, shell vs argv", async () => {
  let r = await envdctl([...d(), "run", "--", "echo", "hello", "world"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "hello world\n");
  r = await envdctl([...d(), "run", "echo out; echo err >&2; exit 3"]);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, "out\n");
  assert.equal(r.stderr, "err\n");
  r = await envdctl([...d(), "run", "exit 255"]);
  assert.equal(r.code, 255);
  // one argument: the shell; several: argv, no expansion
  r = await envdctl([...d(), "run", "echo $((40+2))"]);
  assert.equal(r.stdout, "42\n");
  r = await envdctl([...d(), "run", "--", "echo", "$((40+2))", "a  b"]);
  assert.equal(r.stdout, "$((40+2)) a  b\n");
  r = await envdctl([...d(), "run", "ls", "-d", "/"]); // -d is the command's, not envdctl's
  assert.equal(r.code, 0, r.stderr);
  r = await envdctl([...d(), "run", "--", "no-such-program-x"]);
  assert.equal(r.code, 127);
});

test("signals: 128+N, --timeout, SIGINT forwarded as SIGTERM", async () => {
  let r = await envdctl([...d(), "run", "--", "sh", "-c", "kill -TERM $$"]);
  assert.equal(r.code, 143);
  r = await envdctl([...d(), "run", "--", "sh", "-c", "kill -KILL $$"]);
  assert.equal(r.code, 137);
  r = await envdctl([...d(), "run", "--", "sh", "-c", "kill -SEGV $$"]);
  assert.equal(r.code, 139);
  let t0 = Date.now();
  r = await envdctl([...d(), "run", "--timeout", "300ms", "--", "sleep", "20"]);
  assert.equal(r.code, 137);
  assert.ok(Date.now() - t0 < 10000);
  let child;
  t0 = Date.now();
  const run = envdctl([...d(), "run", "--tag", "int", "--", "sleep", "30"], { onSpawn: (c) => (child = c) });
  await pidOfTag("int");
  child.kill("SIGINT");
  r = await run;
  assert.equal(r.code, 143, r.stderr);
  assert.ok(Date.now() - t0 < 20000);
});

test("output is streamed live, not at the end", async () => {
  const seen = [];
  const t0 = Date.now();
  const r = await envdctl([...d(), "run", "echo first; sleep 1.5; echo second"], {
    onSpawn: (c) => c.stdout.on("data", (b) => seen.push([Date.now() - t0, String(b)])),
  });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "first\nsecond\n");
  const first = seen.find(([, s]) => s.includes("first"));
  const second = seen.find(([, s]) => s.includes("second"));
  assert.ok(second[0] - first[0] >= 1000, JSON.stringify(seen));
});

test("stdin: -i forwards it and EOF closes it; without -i nothing is read", async () => {
  let r = await envdctl([...d(), "run", "-i", "--", "wc", "-l"], { input: "a\nb\nc\n" });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), "3");
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  r = await envdctl([...d(), "run", "-i", "--", "sha256sum"], { input: big, timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split(" ")[0], createHash("sha256").update(big).digest("hex"));
  r = await envdctl([...d(), "run", "--", "cat"], { input: "ignored" });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "");
});

test("--env, --cwd", async () => {
  mkdirSync(path.join(srv.root, "wd"), { recursive: true });
  writeFileSync(path.join(srv.root, "wd/marker"), "");
  const r = await envdctl([...d(), "run", "--env", "A=1", "-e", "B=x=y", "--cwd", "/wd", "--",
    "sh", "-c", 'echo "$A $B"; ls']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "1 x=y\nmarker\n");
});

test("-t: a terminal through script(1): raw input, size, exit code", async () => {
  const cmd = `stty cols 100 rows 30; ${[ENVDCTL, ...d(), "run", "-t", "--", "bash", "-c",
    "stty size; read x; echo got:$x; tty; exit 5"].map((a) => `'${a}'`).join(" ")}`;
  const child = spawnSync("sh", ["-c", `(sleep 1.5; printf 'hello\\r'; sleep 2) | script -qec "$0" /dev/null`, cmd],
    { encoding: "utf8", timeout: 30000 });
  assert.equal(child.status, 5, child.stdout + child.stderr);
  assert.match(child.stdout, /30 100/);
  assert.match(child.stdout, /got:hello/);
  assert.match(child.stdout, /\/dev\/pts\//);
});

test("-t without CMD: an interactive login shell", async () => {
  const cmd = [ENVDCTL, ...d(), "run", "-t"].map((a) => `'${a}'`).join(" ");
  const child = spawnSync("sh", ["-c", `(sleep 1.5; printf 'echo "term=$TERM"; exit 3\\r'; sleep 2) | script -qec "$0" /dev/null`, cmd],
    { encoding: "utf8", timeout: 30000 });
  assert.equal(child.status, 3, child.stdout + child.stderr);
  assert.match(child.stdout, /term=xterm-256color/);
});

test("-t: SIGWINCH resizes the terminal (tmux)", async () => {
  const sock = mkdtempSync(path.join(tmpdir(), "envdctl-tmux-"));
  const tmux = (...a) => execFileSync("tmux", ["-S", path.join(sock, "s"), ...a], { encoding: "utf8" });
  const out = path.join(sock, "exit");
  try {
    const cmd = [ENVDCTL, ...d(), "run", "-t", "--", "bash", "--norc", "-i"].map((a) => `'${a}'`).join(" ");
    tmux("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", `${cmd}; echo $? > ${out}; sleep 30`);
    const screen = () => tmux("capture-pane", "-p", "-t", "t");
    const waitFor = async (re) => {
      for (let i = 0; i < 100 && !re.test(screen()); i++) await sleep(100);
      assert.match(screen(), re);
    };
    await waitFor(/[#$]$/m);
    tmux("send-keys", "-t", "t", "stty size", "Enter");
    await waitFor(/^24 80$/m);
    tmux("resize-window", "-t", "t", "-x", "120", "-y", "40");
    await sleep(300);
    tmux("send-keys", "-t", "t", "stty size", "Enter");
    await waitFor(/^40 120$/m);
    tmux("send-keys", "-t", "t", "exit 7", "Enter");
    for (let i = 0; i < 100; i++) {
      try {
        if (readFileSync(out, "utf8").trim() !== "") break;
      } catch {}
      await sleep(100);
    }
    assert.equal(readFileSync(out, "utf8").trim(), "7");
  } finally {
    try {
      tmux("kill-server");
    } catch {}
    rmSync(sock, { recursive: true, force: true });
  }
});

test("ps and kill: by tag, by pid, --signal KILL, unknown targets", async () => {
  const a = envdctl([...d(), "run", "--tag", "sleeper-a", "--", "sleep", "30"]);
  const b = envdctl([...d(), "run", "--tag", "sleeper-b", "--", "sleep", "30"]);
  const pidB = await pidOfTag("sleeper-b");
  await pidOfTag("sleeper-a");
  const table = await envdctl([...d(), "ps"]);
  assert.match(table.stdout, /^PID\s+TAG\s+COMMAND$/m);
  assert.match(table.stdout, new RegExp(`^${pidB}\\s+sleeper-b\\s+sleep 30$`, "m"));
  let r = await envdctl([...d(), "kill", "--tag", "sleeper-a"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await a).code, 143);
  r = await envdctl([...d(), "kill", "--signal", "KILL", String(pidB)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await b).code, 137);
  // every process with the tag, whatever other tagged processes envd holds
  const p1 = envdctl([...d(), "run", "--tag", "pair", "--", "sleep", "30"]);
  const p2 = envdctl([...d(), "run", "--tag", "pair", "--", "sleep", "30"]);
  const other = envdctl([...d(), "run", "--tag", "other", "--", "sleep", "30"]);
  for (let i = 0; i < 100; i++) {
    const ps = await envdctl([...d(), "ps", "--json"]);
    const tags = ps.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l).tag);
    if (tags.filter((t) => t === "pair").length === 2 && tags.includes("other")) break;
    await sleep(100);
  }
  r = await envdctl([...d(), "kill", "--tag", "pair"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await p1).code, 143);
  assert.equal((await p2).code, 143);
  r = await envdctl([...d(), "kill", "-s", "9", "--tag", "other"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await other).code, 137);
  r = await envdctl([...d(), "kill", "--tag", "nobody-has-this"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nobody-has-this: no such process/);
  r = await envdctl([...d(), "kill", "999999"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /envdctl: kill: 999999: no such process/);
  r = await envdctl([...d(), "kill", "--signal", "HUP", "1"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--signal: expected TERM or KILL, got 'HUP'/);
  r = await envdctl([...d(), "kill"]);
  assert.equal(r.code, 2);
});

test("usage errors and an unreachable server", async () => {
  let r = await envdctl([...d(), "run"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing CMD/);
  r = await envdctl([...d(), "run", "--timeout", "forever", "--", "true"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--timeout: expected a duration/);
  r = await envdctl([...d(), "run", "--env", "NOEQUALS", "--", "true"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--env: expected K=V, got 'NOEQUALS'/);
  r = await envdctl([...d(), "run", "--bogus", "--", "true"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown flag --bogus/);
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  r = await envdctl(["--domain", `127.0.0.1:${port}`, "run", "--", "true"], { timeoutMs: 60000 });
  assert.equal(r.code, 255);
  assert.match(r.stderr, /^envdctl: run: start: /m);
});

test("--transport grpc and connect: run with stdin and a signal, ps", async () => {
  for (const t of ["grpc", "connect"]) {
    let r = await envdctl([...d(), "--transport", t, "run", "-i", "--", "sh", "-c", "cat; exit 4"], { input: `via ${t}\n` });
    assert.equal(r.code, 4, `${t}: ${r.stderr}`);
    assert.equal(r.stdout, `via ${t}\n`);
    r = await envdctl(["run", "--transport", t, ...d(), "--", "sh", "-c", "kill -TERM $$"]);
    assert.equal(r.code, 143, t);
    r = await envdctl([...d(), "ps", "--transport", t]);
    assert.equal(r.code, 0, `${t}: ${r.stderr}`);
  }
});
