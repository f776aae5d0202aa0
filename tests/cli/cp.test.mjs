// envdctl cp: directory trees both ways checked by hash, single files,
// stdin/stdout, --gzip, cp's "into a directory" rules, errors, and the
// progress bar on a terminal (driven through script(1)).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync, readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { startServer, envdctl, tempDir, ENVDCTL } from "./lib.mjs";

let srv;
let tmp;
const d = () => ["--domain", srv.domain];
const inRoot = (p) => path.join(srv.root, p);

/** sha256 over every path (files and directories) and file content below dir. */
function treeHash(dir) {
  const h = createHash("sha256");
  const walk = (rel) => {
    const names = readdirSync(path.join(dir, rel)).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const full = path.join(dir, r);
      if (statSync(full).isDirectory()) {
        h.update(`d ${r}\n`);
        walk(r);
      } else {
        h.update(`f ${r}\n`);
        h.update(readFileSync(full));
      }
    }
  };
  walk("");
  return h.digest("hex");
}

/** A tree: 120 small files over nested directories, one 3 MB file, an empty directory. */
function makeTree(dir) {
  let seed = 12345;
  const rnd = (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      b[i] = seed >> 16;
    }
    return b;
  };
  for (let i = 0; i < 120; i++) {
    const sub = path.join(dir, `d${i % 4}`, `e${i % 3}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, `f${i}.bin`), rnd(i * 37));
  }
  writeFileSync(path.join(dir, "big.bin"), rnd(3 * 1024 * 1024));
  writeFileSync(path.join(dir, "empty-file"), "");
  mkdirSync(path.join(dir, "empty-dir"));
}

before(async () => {
  srv = await startServer();
  tmp = tempDir();
});
after(async () => {
  await srv?.stop();
  tmp?.remove();
});

test("a directory tree up and back down, identical by hash", async () => {
  const src = path.join(tmp.dir, "tree");
  makeTree(src);
  const want = treeHash(src);
  let r = await envdctl([...d(), "cp", src, ":/up/tree"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(treeHash(inRoot("up/tree")), want);
  const back = path.join(tmp.dir, "back");
  r = await envdctl([...d(), "cp", ":/up/tree", back]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(treeHash(back), want);
  // into an existing directory: DST/basename
  mkdirSync(path.join(tmp.dir, "into"));
  r = await envdctl([...d(), "cp", ":/up/tree", path.join(tmp.dir, "into")]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(treeHash(path.join(tmp.dir, "into/tree")), want);
});

test("--gzip both ways", async () => {
  const src = path.join(tmp.dir, "gz");
  makeTree(src);
  const want = treeHash(src);
  let r = await envdctl([...d(), "cp", "--gzip", src, ":/gz"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(treeHash(inRoot("gz")), want);
  const back = path.join(tmp.dir, "gzback");
  r = await envdctl([...d(), "cp", ":/gz", back, "--gzip"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(treeHash(back), want);
});

test("files: several into a directory, a file renamed, stdin and stdout", async () => {
  const a = path.join(tmp.dir, "a.txt");
  const b = path.join(tmp.dir, "b.txt");
  writeFileSync(a, "A\n");
  writeFileSync(b, "B\n");
  let r = await envdctl([...d(), "cp", a, b, ":/many/"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(inRoot("many/a.txt"), "utf8"), "A\n");
  assert.equal(readFileSync(inRoot("many/b.txt"), "utf8"), "B\n");
  r = await envdctl([...d(), "cp", a, ":/renamed.txt"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(inRoot("renamed.txt"), "utf8"), "A\n");
  r = await envdctl([...d(), "cp", "-", ":/from-stdin"], { input: "piped\n" });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(inRoot("from-stdin"), "utf8"), "piped\n");
  r = await envdctl([...d(), "cp", ":/from-stdin", "-"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "piped\n");
  const local = path.join(tmp.dir, "down.txt");
  r = await envdctl([...d(), "cp", ":/many/b.txt", local]);
  assert.equal(readFileSync(local, "utf8"), "B\n");
});

test("errors: missing files, both sides local or remote, usage", async () => {
  let r = await envdctl([...d(), "cp", ":/no/such", path.join(tmp.dir, "x")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^envdctl: cp: \/no\/such: .*not found/m);
  r = await envdctl([...d(), "cp", path.join(tmp.dir, "nope"), ":/x"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nope: No such file or directory/);
  for (const [args, re] of [
    [["cp", "a", "b"], /no sandbox path/],
    [["cp", ":/a", ":/b"], /from a sandbox to a sandbox/],
    [["cp", ":/a", "x", "y"], /all be local or all in the sandbox/],
    [["cp", "one"], /expected SRC\.\.\. DST/],
    [["cp", "--fast", "a", ":/b"], /unknown flag --fast/],
  ]) {
    r = await envdctl([...d(), ...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, re);
  }
  assert.ok(!existsSync(path.join(tmp.dir, "x")));
});

test("a progress bar on a terminal, none on a pipe", async () => {
  const src = path.join(tmp.dir, "bar");
  makeTree(src);
  // script(1) gives envdctl a terminal on stdout and stderr
  const cmd = [ENVDCTL, ...d(), "cp", src, ":/bar"].map((a) => `'${a}'`).join(" ");
  const s = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", timeout: 60000 });
  assert.equal(s.status, 0, s.stdout + s.stderr);
  assert.match(s.stdout, /\[=+\] 100%.* 122\/122 files/);
  assert.equal(treeHash(inRoot("bar")), treeHash(src));
  const piped = await envdctl([...d(), "cp", src, ":/bar2"]);
  assert.equal(piped.stderr, "");
});
