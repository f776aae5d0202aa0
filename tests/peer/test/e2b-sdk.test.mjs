// The e2b JS SDK in debug mode (E2B_DEBUG=true, E2B_SANDBOX_URL) as a client of
// the peer server, once against --http h1 and once against --http both.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { CommandExitError } from "e2b";
import { startServer, e2bSandbox, sleep, waitFor } from "./helpers.mjs";

for (const mode of ["h1", "both"]) {
  // The SDK speaks Connect over HTTP/1.1 either way; "both" checks that an
  // envd-compatible server that also takes h2c still serves it.
  const label = mode === "h1" ? "HTTP/1.1 only, as stock envd" : "envd-compatible h1+h2c server";
  describe(`e2b SDK against --http ${mode} (${label})`, () => {
    let server;
    let sbx;

    before(async () => {
      server = await startServer({ http: mode });
      sbx = await e2bSandbox(server);
    });
    after(async () => {
      await server?.stop();
    });

    test("commands.run: output, exit codes, CommandExitError, env and cwd", async () => {
      const ok = await sbx.commands.run("echo out; echo err >&2");
      assert.equal(ok.exitCode, 0);
      assert.equal(ok.stdout, "out\n");
      assert.equal(ok.stderr, "err\n");
      assert.equal(ok.error, undefined);

      await assert.rejects(sbx.commands.run("echo partial; echo bad >&2; exit 7"), (err) => {
        assert.ok(err instanceof CommandExitError);
        assert.equal(err.exitCode, 7);
        assert.equal(err.stdout, "partial\n");
        assert.equal(err.stderr, "bad\n");
        assert.equal(err.error, "exit status 7");
        return true;
      });

      await sbx.files.makeDir("wd");
      const chunks = [];
      const r = await sbx.commands.run('echo "$GREETING"; pwd', {
        envs: { GREETING: "hello" },
        cwd: "wd",
        onStdout: (d) => chunks.push(d),
      });
      assert.equal(r.stdout, `hello\n${server.root}/root/wd\n`);
      assert.equal(chunks.join(""), r.stdout);
    });

    test("background, list, sendStdin, closeStdin, kill", async () => {
      const cat = await sbx.commands.run("cat", { background: true, stdin: true });
      const sleeper = await sbx.commands.run("sleep 30", { background: true });
      const listed = await sbx.commands.list();
      const info = listed.find((p) => p.pid === sleeper.pid);
      assert.ok(info, "background command is listed");
      assert.equal(info.cmd, "/bin/bash");
      assert.deepEqual(info.args, ["-l", "-c", "sleep 30"]);
      assert.ok(listed.some((p) => p.pid === cat.pid));

      await sbx.commands.sendStdin(cat.pid, "line one\n");
      await cat.sendStdin("line two\n");
      await sbx.commands.closeStdin(cat.pid);
      const catResult = await cat.wait();
      assert.equal(catResult.stdout, "line one\nline two\n");

      assert.equal(await sbx.commands.kill(sleeper.pid), true);
      await assert.rejects(sleeper.wait(), (err) => {
        assert.ok(err instanceof CommandExitError);
        assert.equal(err.exitCode, -1);
        assert.equal(err.error, "signal: killed");
        return true;
      });
      assert.ok(
        await waitFor(async () => !(await sbx.commands.list()).some((p) => p.pid === sleeper.pid)),
      );
      assert.equal(await sbx.commands.kill(sleeper.pid), false);
    });

    test("connect re-attaches and sees only new output", async () => {
      const seen = [];
      const h = await sbx.commands.run(
        "for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.25; done",
        { background: true, onStdout: (d) => seen.push(d) },
      );
      assert.ok(await waitFor(() => seen.join("").includes("tick1")));
      await h.disconnect();
      await sleep(600);
      const later = [];
      const again = await sbx.commands.connect(h.pid, { onStdout: (d) => later.push(d) });
      const result = await again.wait();
      assert.equal(result.exitCode, 0);
      const text = later.join("");
      assert.match(text, /tick6/);
      assert.doesNotMatch(text, /tick1\n/);
    });

    test("pty: create, sendInput, resize, exit", async () => {
      let out = "";
      const dec = new TextDecoder();
      const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => (out += dec.decode(d)) });
      const send = (s) => sbx.pty.sendInput(pty.pid, new TextEncoder().encode(s));
      await send("stty size\n");
      assert.ok(await waitFor(() => out.includes("24 80")), out);
      await sbx.pty.resize(pty.pid, { cols: 132, rows: 40 });
      await send("stty size\n");
      assert.ok(await waitFor(() => out.includes("40 132")), out);
      await send("exit 0\n");
      const r = await pty.wait();
      assert.equal(r.exitCode, 0);
    });

    test("files: write and read text, bytes, several files at once", async () => {
      const info = await sbx.files.write("/tmp/hello.txt", "hello peer");
      assert.equal(info.path, "/tmp/hello.txt");
      assert.equal(await sbx.files.read("/tmp/hello.txt"), "hello peer");
      assert.equal(await fs.readFile(`${server.root}/tmp/hello.txt`, "utf8"), "hello peer");

      const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255]);
      await sbx.files.write("bin/data.bin", bytes.buffer);
      const back = await sbx.files.read("bin/data.bin", { format: "bytes" });
      assert.deepEqual(Array.from(back), Array.from(bytes));

      const many = await sbx.files.write([
        { path: "many/a.txt", data: "A" },
        { path: "many/b.txt", data: "B" },
        { path: "/abs/c.txt", data: "C" },
      ]);
      assert.deepEqual(
        many.map((e) => e.path),
        ["/root/many/a.txt", "/root/many/b.txt", "/abs/c.txt"],
      );
      assert.equal(await sbx.files.read("many/b.txt"), "B");
      assert.equal(await sbx.files.read("/abs/c.txt"), "C");
    });

    test("files: list with depth, exists, getInfo, makeDir, rename, remove", async () => {
      await sbx.files.write("tree/x/y/z.txt", "z");
      await sbx.files.write("tree/top.txt", "top");
      const one = await sbx.files.list("tree");
      assert.deepEqual(one.map((e) => e.name), ["top.txt", "x"]);
      const three = await sbx.files.list("tree", { depth: 3 });
      assert.deepEqual(three.map((e) => e.path), [
        "/root/tree/top.txt",
        "/root/tree/x",
        "/root/tree/x/y",
        "/root/tree/x/y/z.txt",
      ]);
      assert.equal(three[0].type, "file");
      assert.equal(three[1].type, "dir");

      assert.equal(await sbx.files.exists("tree/top.txt"), true);
      assert.equal(await sbx.files.exists("tree/none"), false);

      const info = await sbx.files.getInfo("tree/top.txt");
      assert.equal(info.name, "top.txt");
      assert.equal(info.type, "file");
      assert.equal(info.size, 3);
      assert.equal(info.permissions, "-rw-r--r--");
      assert.equal(info.owner, "root");
      assert.ok(info.modifiedTime instanceof Date);

      assert.equal(await sbx.files.makeDir("tree/new"), true);
      assert.equal(await sbx.files.makeDir("tree/new"), false);

      const moved = await sbx.files.rename("tree/top.txt", "tree/new/moved.txt");
      assert.equal(moved.path, "/root/tree/new/moved.txt");
      assert.equal(await sbx.files.exists("tree/top.txt"), false);

      await sbx.files.remove("tree");
      assert.equal(await sbx.files.exists("tree"), false);
    });

    test("files: watchDir reports events", async () => {
      await sbx.files.makeDir("watched");
      const events = [];
      const w = await sbx.files.watchDir("watched", (e) => events.push(e), { recursive: true });
      await sbx.files.write("watched/new.txt", "1");
      const has = (type, name) => events.some((e) => e.type === type && e.name === name);
      await sbx.files.makeDir("watched/d");
      // A recursive watch covers a new directory only once its create event
      // was handled (inotify, as in envd); a file written before that is
      // not seen. Wait for it, as a careful SDK user would.
      assert.ok(await waitFor(() => has("create", "d")), JSON.stringify(events));
      await sbx.files.write("watched/d/inner.txt", "2");
      await sbx.files.remove("watched/new.txt");
      assert.ok(
        await waitFor(() => has("remove", "new.txt") && has("write", "d/inner.txt")),
        JSON.stringify(events),
      );
      assert.ok(has("create", "new.txt"));
      assert.ok(has("create", "d"));
      await w.stop();
    });
  });
}
