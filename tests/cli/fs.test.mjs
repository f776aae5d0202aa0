// envdctl ls, stat, rm, mkdir, mv, cat and the framework they share: global
// options before or after the subcommand, the environment, usage errors
// (exit 2 naming the flag), an unreachable server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, readFileSync, existsSync, symlinkSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { startServer, startK8sStub, envdctl } from "./lib.mjs";

let srv;
const d = () => ["--domain", srv.domain];
const local = (p) => path.join(srv.root, p);

before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

test("stat: text and JSON, global options after the subcommand", async () => {
  mkdirSync(local("data"), { recursive: true });
  writeFileSync(local("data/a.txt"), "hello\n");
  const r = await envdctl(["stat", "/data/a.txt", ...d()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^path: \/data\/a\.txt$/m);
  assert.match(r.stdout, /^type: file$/m);
  assert.match(r.stdout, /^size: 6$/m);
  const j = await envdctl([...d(), "stat", "--json", "/data/a.txt"]);
  assert.equal(j.code, 0, j.stderr);
  const e = JSON.parse(j.stdout);
  assert.equal(e.path, "/data/a.txt");
  assert.equal(e.type, "file");
  assert.equal(e.size, 6);
  assert.match(e.modified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test("the environment the quick start reads: ENVD_DOMAIN", async () => {
  writeFileSync(local("env.txt"), "x");
  const r = await envdctl(["stat", "/env.txt"], { env: { ENVD_DOMAIN: srv.domain } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^size: 1$/m);
  // a flag wins over the environment
  const bad = await envdctl(["stat", "/env.txt", "--domain", "127.0.0.1:1"], { env: { ENVD_DOMAIN: srv.domain } });
  assert.equal(bad.code, 1);
});

test("ls: names, -l, --depth, --json, a file", async () => {
  mkdirSync(local("tree/sub/deeper"), { recursive: true });
  writeFileSync(local("tree/one"), "1");
  writeFileSync(local("tree/sub/two"), "22");
  writeFileSync(local("tree/sub/deeper/three"), "333");
  let r = await envdctl([...d(), "ls", "/tree"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["one", "sub"]);
  r = await envdctl([...d(), "ls", "--depth", "3", "/tree"]);
  assert.deepEqual(r.stdout.trim().split("\n"), ["one", "sub", "sub/deeper", "sub/deeper/three", "sub/two"]);
  r = await envdctl([...d(), "ls", "-l", "/tree"]);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^-rw\S+\s+\S+\s+\S+\s+1 \S+Z one$/);
  assert.match(lines[1], /^d\S+ .* sub$/);
  r = await envdctl([...d(), "ls", "--json", "--depth=2", "/tree"]);
  const entries = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(entries.map((e) => e.path), ["/tree/one", "/tree/sub", "/tree/sub/deeper", "/tree/sub/two"]);
  r = await envdctl([...d(), "ls", "/tree/one"]);
  assert.equal(r.stdout, "/tree/one\n");
});

test("mkdir: -p, missing parent, existing directory", async () => {
  let r = await envdctl([...d(), "mkdir", "/m1"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(local("m1")));
  r = await envdctl([...d(), "mkdir", "/m1"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /envdctl: mkdir: \/m1: already exists/);
  r = await envdctl([...d(), "mkdir", "/m2/a/b"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no such directory: \/m2\/a/);
  r = await envdctl([...d(), "mkdir", "-p", "/m2/a/b", "/m1"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(local("m2/a/b")));
});

test("mv: rename, into a directory, missing source", async () => {
  mkdirSync(local("mv/dir"), { recursive: true });
  writeFileSync(local("mv/f"), "f");
  let r = await envdctl([...d(), "mv", "/mv/f", "/mv/g"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(local("mv/g"), "utf8"), "f");
  r = await envdctl([...d(), "mv", "/mv/g", "/mv/dir"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(local("mv/dir/g"), "utf8"), "f");
  r = await envdctl([...d(), "mv", "/mv/nothing", "/mv/x"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^envdctl: mv: \/mv\/nothing: .*not found/m);
  r = await envdctl([...d(), "mv", "/mv/dir"]);
  assert.equal(r.code, 2);
});

test("rm: files, directories, a missing path, -f", async () => {
  mkdirSync(local("rm/d/e"), { recursive: true });
  writeFileSync(local("rm/f"), "f");
  let r = await envdctl([...d(), "rm", "/rm/f", "/rm/d"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(local("rm/f")));
  assert.ok(!existsSync(local("rm/d")));
  r = await envdctl([...d(), "rm", "/rm/none"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /envdctl: rm: \/rm\/none: no such file or directory/);
  r = await envdctl([...d(), "rm", "-f", "/rm/none"]);
  assert.equal(r.code, 0, r.stderr);
});

test("cat: bytes as they are, several files, a missing one", async () => {
  const bin = Buffer.alloc(300000);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7 + 3) & 0xff;
  writeFileSync(local("bin"), bin);
  writeFileSync(local("t1"), "one\n");
  let r = await envdctl([...d(), "cat", "/bin"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBuf.equals(bin));
  r = await envdctl([...d(), "cat", "/t1", "/t1"]);
  assert.equal(r.stdout, "one\none\n");
  r = await envdctl([...d(), "cat", "/t1", "/missing"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "one\n");
  assert.match(r.stderr, /^envdctl: cat: \/missing: file not found/m);
});

test("usage errors exit 2 and name the flag", async () => {
  const cases = [
    [["ls", "--bogus"], /unknown flag --bogus/],
    [["ls", "-z"], /unknown flag -z/],
    [["ls", "--depth"], /--depth needs a value/],
    [["ls", "--depth", "x", "/"], /--depth: expected a positive integer, got 'x'/],
    [["stat"], /missing PATH/],
    [["nosuch"], /unknown command 'nosuch'/],
    [["stat", "/x", "--transport", "carrier-pigeon"], /--transport: expected grpc, connect or auto/],
    [["stat", "/x", "--domain", "http://x"], /--domain: /],
    [["stat", "/x", "--sandbox"], /--sandbox needs a value/],
    [["--k8s", "a/b/c", ...d(), "stat", "/x"], /--k8s: expected NAMESPACE\/NAME/],
  ];
  for (const [args, re] of cases) {
    const full = args[0] === "--k8s" || args.includes("--domain") ? args : [...d(), ...args];
    const r = await envdctl(full);
    assert.equal(r.code, 2, `${full.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re, full.join(" "));
  }
  const none = await envdctl([]);
  assert.equal(none.code, 2);
  const noDomain = await envdctl(["stat", "/x"]);
  assert.equal(noDomain.code, 2);
  assert.match(noDomain.stderr, /--domain/);
});

test("--help on every subcommand", async () => {
  const top = await envdctl(["--help"]);
  assert.equal(top.code, 0);
  const names = [...top.stdout.matchAll(/^  ([a-z]+) {2,}/gm)].map((m) => m[1]).filter((n) => !n.startsWith("-"));
  assert.ok(names.length >= 6, top.stdout);
  for (const n of names) {
    const r = await envdctl([n, "--help"]);
    assert.equal(r.code, 0, `${n} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: envdctl ${n}`), n);
    assert.match(r.stdout, /--sandbox ID\|NAME/, n);
    const h = await envdctl(["help", n]);
    assert.equal(h.stdout, r.stdout);
  }
});

test("an unreachable server is an error naming the path, exit 1", async () => {
  // a port nobody listens on: take one, then close it
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const r = await envdctl(["stat", "/x", "--domain", `127.0.0.1:${port}`], { timeoutMs: 60000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^envdctl: stat: \/x: /m);
  assert.match(r.stderr, /unavailable|refused|connect/i);
});

test("--config: a named sandbox, SANDBOX:PATH, a broken file", async () => {
  const cfg = local("../cfg.yaml");
  writeFileSync(cfg, `domain: ${srv.domain}\nsandboxes:\n  - name: box\n    id: sbx-1\n`);
  writeFileSync(local("c.txt"), "config\n");
  let r = await envdctl(["--config", cfg, "cat", "box:/c.txt"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "config\n");
  r = await envdctl(["cat", "--sandbox", "box", "--config", cfg, "/c.txt"]);
  assert.equal(r.stdout, "config\n");
  writeFileSync(cfg, `domain: ${srv.domain}\nbogus_key: 1\n`);
  r = await envdctl(["--config", cfg, "cat", "/c.txt"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--config: .*cfg\.yaml:2/);
});

/** Resolves once envdctl watch says the watch is in place. */
function armed(child) {
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stderr.on("data", (b) => {
      seen += b;
      if (/watching \//.test(seen)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`envdctl watch exited (${code}) before the watch was armed: ${seen}`)));
  });
}

test("watch: JSON lines as changes happen, --count, --timeout, a missing directory", async () => {
  mkdirSync(local("watched"), { recursive: true });
  let child;
  const run = envdctl([...d(), "watch", "-r", "--count", "3", "/watched"], {
    timeoutMs: 30000,
    onSpawn: (c) => (child = c),
  });
  await armed(child);
  mkdirSync(local("watched/sub"));
  await new Promise((r) => setTimeout(r, 200));
  writeFileSync(local("watched/sub/f.txt"), "x");
  const r = await run;
  assert.ok(child);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(events.length, 3);
  assert.deepEqual(events[0], { ...events[0], type: "create", name: "sub", path: "/watched/sub" });
  assert.deepEqual(events[1], { ...events[1], type: "create", name: "sub/f.txt", path: "/watched/sub/f.txt" });
  assert.equal(events[2].type, "write");
  for (const e of events) assert.match(e.time, /Z$/);

  const t0 = Date.now();
  const quiet = await envdctl([...d(), "watch", "--timeout", "700ms", "/watched"]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, "");
  assert.ok(Date.now() - t0 >= 700);

  const missing = await envdctl([...d(), "watch", "/nowhere"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^envdctl: watch: \/nowhere: .*not found/m);
  // plain seconds are a duration too
  const plain = await envdctl([...d(), "watch", "--timeout", "0.3", "/watched"]);
  assert.equal(plain.code, 0, plain.stderr);
  for (const v of ["soon", "0x10", "1e3", "-1s", "1.2.3", "5 s", "10d", ""]) {
    const bad = await envdctl([...d(), "watch", "--timeout", v, "/watched"]);
    assert.equal(bad.code, 2, v);
    assert.match(bad.stderr, /--timeout: expected a duration/, v);
  }
});

test("watch: SIGINT ends it cleanly", async () => {
  mkdirSync(local("sig"), { recursive: true });
  let child;
  const run = envdctl([...d(), "watch", "/sig"], { onSpawn: (c) => (child = c) });
  await armed(child);
  writeFileSync(local("sig/a"), "1");
  await new Promise((r) => setTimeout(r, 500));
  child.kill("SIGINT");
  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.split("\n")[0]).name, "a");
});

test("--k8s NS/NAME and a config-file k8s entry: ID and token from the Sandbox object", async () => {
  const stub = await startK8sStub();
  // this envd wants the token the Sandbox object's annotation holds
  const guarded = await startServer({ token: "tok-web-runtime" });
  try {
    writeFileSync(path.join(guarded.root, "k.txt"), "via k8s\n");
    const env = { KUBECONFIG: stub.kubeconfig };
    let r = await envdctl(["--domain", guarded.domain, "--k8s", "default/web", "cat", "/k.txt"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "via k8s\n");
    r = await envdctl(["cat", "/k.txt", "--domain", guarded.domain, "--sandbox", "plain-id"], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^envdctl: cat: \/k\.txt: /m);
    r = await envdctl(["--domain", guarded.domain, "--k8s", "default/no-such-sandbox", "cat", "/k.txt"], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^envdctl: cat: k8s lookup: .*not found/mi);
    const cfg = path.join(stub.dir, "envd.yaml");
    writeFileSync(cfg, `domain: ${guarded.domain}\nkubernetes:\n  kubeconfig: ${stub.kubeconfig}\n` +
      "sandboxes:\n  - name: agent\n    k8s: default/web\n");
    r = await envdctl(["--config", cfg, "cat", "agent:/k.txt"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "via k8s\n");
  } finally {
    await guarded.stop();
    await stub.stop();
  }
});
