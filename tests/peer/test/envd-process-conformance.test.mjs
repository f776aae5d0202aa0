// Where the reference server must behave like envd 0.6.13's process service
// in ways a client can observe (issue 12). Each test names the envd function
// it follows (e2b-dev/infra packages/envd/internal/services/process).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fs from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { Signal } from "../gen/process_pb.js";
import { startServer, rpcClients, collect, bashStart, sleep, alive, waitFor } from "./helpers.mjs";

let server;
let rpc;

before(async () => {
  // A fixed seed makes the shuffled walks below the same on every run.
  server = await startServer({ http: "h1", env: { PEER_SEED: "12" } });
  rpc = rpcClients(server, "connect-binary");
});
after(async () => {
  await server?.stop();
});

/** True once pid is gone or a zombie (exited, not yet reaped). */
function exitedOrZombie(pid) {
  if (!alive(pid)) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
  } catch {
    return true;
  }
}

const byTag = (tag) => ({ selector: { case: "tag", value: tag } });
const byPid = (pid) => ({ selector: { case: "pid", value: pid } });

/** Starts a process and resolves once its start event came: {pid, done, stop}. */
async function startBg(req, opts = {}) {
  const ac = new AbortController();
  let onPid;
  const pidP = new Promise((r) => (onPid = r));
  const done = collect(rpc.process.start(req, { signal: ac.signal, ...opts }), { onStart: onPid }).catch(
    (err) => ({ err }),
  );
  const pid = await Promise.race([pidP, done.then((r) => Promise.reject(new Error(`no start: ${r.err}`)))]);
  return {
    pid,
    done,
    async kill() {
      await rpc.process.sendSignal({ process: byPid(pid), signal: Signal.SIGKILL }).catch(() => {});
      await done;
    },
  };
}

/** Update with no PTY is a pure getProcess: the selected pid, or the error code. */
async function lookup(selector) {
  try {
    await rpc.process.update({ process: selector });
    return "found";
  } catch (err) {
    assert.ok(err instanceof ConnectError);
    return Code[err.code];
  }
}

test("getProcess by tag: another tagged process can hide the tag (walk stops there), depending only on the table's order", async () => {
  const seen = new Set();
  // Each pair is walked in an order fixed for its lifetime (a hash-trie
  // sync.Map): the answer does not change between lookups, but it differs
  // from pair to pair.
  for (let round = 0; round < 24 && seen.size < 2; round++) {
    const a = await startBg(bashStart("sleep 30", { stdin: false, tag: "walk-a" }));
    const b = await startBg(bashStart("sleep 30", { stdin: false, tag: "walk-b" }));
    const u = await startBg(bashStart("sleep 30", { stdin: false }));
    try {
      const first = await lookup(byTag("walk-a"));
      for (let i = 0; i < 5; i++) assert.equal(await lookup(byTag("walk-a")), first);
      seen.add(first);
      // A pid is a map lookup and never fails spuriously.
      assert.equal(await lookup(byPid(a.pid)), "found");
    } finally {
      await Promise.all([a.kill(), b.kill(), u.kill()]);
    }
  }
  assert.deepEqual([...seen].sort(), ["NotFound", "found"]);
});

test("getProcess by tag: untagged processes are skipped, the walk's last match wins, always the same one", async () => {
  const u1 = await startBg(bashStart("sleep 30", { stdin: false }));
  const t1 = await startBg(bashStart("sleep 30", { stdin: false, tag: "same" }));
  const t2 = await startBg(bashStart("sleep 30", { stdin: false, tag: "same" }));
  const u2 = await startBg(bashStart("sleep 30", { stdin: false }));
  try {
    const pids = new Set();
    for (let i = 0; i < 8; i++) {
      const ac = new AbortController();
      const stream = rpc.process.connect({ process: byTag("same") }, { signal: ac.signal });
      for await (const msg of stream) {
        assert.equal(msg.event.event.case, "start");
        pids.add(msg.event.event.value.pid);
        break;
      }
      ac.abort();
    }
    assert.equal(pids.size, 1);
    assert.ok([t1.pid, t2.pid].includes([...pids][0]));
    // The one List puts later among the two.
    const order = (await rpc.process.list({})).processes.map((p) => p.pid).filter((p) => p === t1.pid || p === t2.pid);
    assert.equal([...pids][0], order[1]);
  } finally {
    await Promise.all([u1.kill(), t1.kill(), t2.kill(), u2.kill()]);
  }
});

test("handleStart: a new start with a tag clears older retained exits under it (clearTerminatedForTag)", async () => {
  for (let i = 0; i < 5; i++) {
    const first = await collect(rpc.process.start(bashStart("exit 3", { stdin: false, tag: "redo" })));
    const second = await collect(rpc.process.start(bashStart("exit 4", { stdin: false, tag: "redo" })));
    assert.equal(first.end.exitCode, 3);
    assert.equal(second.end.exitCode, 4);
    const late = await collect(rpc.process.connect({ process: byTag("redo") }));
    assert.equal(late.pid, second.pid);
    assert.equal(late.end.exitCode, 4);
    // The first exit is gone altogether, by pid too.
    await assert.rejects(collect(rpc.process.connect({ process: byPid(first.pid) })), (err) => {
      assert.equal(err.code, Code.NotFound);
      return true;
    });
  }
});

test("List: a fixed order per set of processes, not start order (Range over the hash-trie)", async () => {
  const procs = [];
  for (let i = 0; i < 8; i++) procs.push(await startBg(bashStart("sleep 30", { stdin: false, tag: `l${i}` })));
  try {
    const tags = async () =>
      (await rpc.process.list({})).processes.map((p) => p.tag).filter((t) => /^l\d$/.test(t ?? "")).join(",");
    const first = await tags();
    assert.equal(first.split(",").length, 8);
    for (let i = 0; i < 4; i++) assert.equal(await tags(), first);
    assert.notEqual(first, "l0,l1,l2,l3,l4,l5,l6,l7");
  } finally {
    await Promise.all(procs.map((p) => p.kill()));
  }
});

const peerOnly = { skip: process.env.PEER_TEST_EXTERNAL ? "reference server only (PEER_TEST_EXTERNAL)" : false };

test("--seed/PEER_SEED replays the order", peerOnly, async () => {
  const runs = [];
  for (let r = 0; r < 2; r++) {
    const s = await startServer({ http: "h1", env: { PEER_SEED: "777" } });
    const c = rpcClients(s, "connect-binary");
    const acs = [];
    try {
      for (let i = 0; i < 6; i++) {
        const ac = new AbortController();
        acs.push(ac);
        const it = c.process.start(bashStart("sleep 30", { stdin: false, tag: `s${i}` }), { signal: ac.signal });
        await it[Symbol.asyncIterator]().next(); // start event
      }
      runs.push((await c.process.list({})).processes.map((p) => p.tag).join(","));
    } finally {
      for (const ac of acs) ac.abort();
      await s.stop();
    }
  }
  assert.equal(runs[0], runs[1]);
  assert.match(server.stderr(), /process table walk seed 12 \(replay with PEER_SEED=12\)/);
});

/** A request stream the test ends by hand: push(msg), end(). */
function inputStream() {
  const queue = [];
  let wake = null;
  let ended = false;
  return {
    push(m) {
      queue.push(m);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length) yield queue.shift();
        if (ended) return;
        await new Promise((r) => (wake = r));
        wake = null;
      }
    },
  };
}

const settledWithin = (p, ms) =>
  Promise.race([p.then(() => true, () => true), sleep(ms).then(() => false)]);

test("StreamInput over HTTP/1.1: an error is answered only when the request stream ends (connect-go Close, net/http body.Close)", async () => {
  const s = inputStream();
  const call = rpc.process.streamInput(s);
  call.catch(() => {});
  s.push({ event: { case: "start", value: { process: byPid(999999) } } });
  assert.equal(await settledWithin(call, 600), false, "error arrived before the request stream ended");
  s.end();
  await assert.rejects(call, (err) => {
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.rawMessage, "process with pid 999999 not found");
    return true;
  });
});

test("StreamInput over HTTP/1.1: or once 256 KiB more of the request body was read", async () => {
  const s = inputStream();
  const call = rpc.process.streamInput(s);
  call.catch(() => {});
  s.push({ event: { case: "start", value: { process: byPid(999998) } } });
  assert.equal(await settledWithin(call, 300), false);
  const chunk = { event: { case: "data", value: { input: { input: { case: "stdin", value: new Uint8Array(64 << 10) } } } } };
  for (let i = 0; i < 3; i++) s.push(chunk);
  assert.equal(await settledWithin(call, 300), false, "answered before 256 KiB");
  for (let i = 0; i < 2; i++) s.push(chunk);
  assert.equal(await settledWithin(call, 3000), true, "not answered after 320 KiB more");
  await assert.rejects(call, (err) => err.code === Code.NotFound);
  s.end();
});

test("StreamInput over HTTP/2 (envd-compatible h2c server, not stock envd): the error comes at once", peerOnly, async () => {
  const s2 = await startServer({ http: "both" });
  try {
    const c = rpcClients(s2, "grpc");
    const s = inputStream();
    const call = c.process.streamInput(s);
    call.catch(() => {});
    s.push({ event: { case: "start", value: { process: byPid(999997) } } });
    assert.equal(await settledWithin(call, 3000), true);
    await assert.rejects(call, (err) => err.code === Code.NotFound);
    s.end();
  } finally {
    await s2.stop();
  }
});

test("Handler.SendSignal: output written after SIGTERM still reaches the stream until the exit", async () => {
  let pid = 0;
  const done = collect(
    rpc.process.start(
      bashStart("trap 'echo got-term; sleep 0.3; echo after-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done", {
        stdin: false,
      }),
    ),
    {
      onStart: (p) => {
        pid = p;
      },
    },
  );
  await waitFor(() => pid > 0);
  await sleep(300);
  await rpc.process.sendSignal({ process: byPid(pid), signal: Signal.SIGTERM });
  const r = await done;
  assert.equal(r.out, "ready\ngot-term\nafter-term\n");
  assert.equal(r.end.exitCode, 3);
  assert.equal(r.end.error, "exit status 3");
});

test("handler.New: stdio are OS pipes (/dev/stdin and /dev/stderr can be reopened)", async () => {
  let pid = 0;
  const done = collect(
    rpc.process.start(
      bashStart("echo to-stderr > /dev/stderr; cat /dev/stdin; readlink /proc/self/fd/1 | cut -d: -f1"),
    ),
    {
      onStart: (p) => {
        pid = p;
      },
    },
  );
  await waitFor(() => pid > 0);
  await rpc.process.sendInput({ process: byPid(pid), input: { input: { case: "stdin", value: Buffer.from("typed\n") } } });
  await rpc.process.closeStdin({ process: byPid(pid) });
  const r = await done;
  assert.equal(r.err, "to-stderr\n");
  assert.equal(r.out, "typed\npipe\n");
  assert.equal(r.end.exitCode, 0);
});

test("an exited process whose output a grandchild holds is still listed and can be signalled", async () => {
  let pid = 0;
  const done = collect(
    rpc.process.start(bashStart("(sleep 20; echo late) & echo parent-done", { stdin: false, tag: "held" })),
    {
      onStart: (p) => {
        pid = p;
      },
    },
  );
  await waitFor(() => pid > 0);
  // envd reaps only once the output is done: until then the parent is a zombie.
  assert.ok(await waitFor(() => exitedOrZombie(pid)), "parent did not exit");
  await sleep(100);
  const { processes } = await rpc.process.list({});
  assert.ok(
    processes.some((p) => p.pid === pid),
    "exited process not listed while its output is open (envd removes it at its end event)",
  );
  // Handler.SendSignal on the unreaped child succeeds and stops the wait for output.
  await rpc.process.sendSignal({ process: byPid(pid), signal: Signal.SIGKILL });
  const r = await done;
  assert.equal(r.out, "parent-done\n");
  assert.equal(r.end.exitCode, 0);
  assert.equal(r.end.status, "exit status 0");
  const after = await rpc.process.list({});
  assert.ok(!after.processes.some((p) => p.pid === pid));
});

test("PTY: the stream ends when every holder of the terminal has closed it (read until EIO)", async () => {
  const t0 = Date.now();
  const r = await collect(
    rpc.process.start({
      process: {
        cmd: "/bin/bash",
        args: ["-c", 'trap "" HUP; (sleep 0.8; echo bg-done) & echo fg-done'],
        envs: {},
      },
      pty: { size: { cols: 80, rows: 24 } },
    }),
  );
  assert.match(r.pty, /fg-done/);
  assert.match(r.pty, /bg-done/);
  assert.ok(Date.now() - t0 >= 700, "stream ended at the shell's exit");
  assert.equal(r.end.exitCode, 0);
});

test("handler.New: a PTY child gets envd's environment only (no LC_CTYPE added)", async () => {
  const r = await collect(
    rpc.process.start({
      process: { cmd: "/bin/bash", args: ["-c", 'echo "[${LC_CTYPE-unset}]"'], envs: {} },
      pty: { size: { cols: 80, rows: 24 } },
    }),
  );
  assert.equal(r.pty, "[unset]\r\n");
});

test("Start with a cwd that is a file: os.StartProcess's error, with the sandbox path only", async () => {
  await fs.writeFile(`${server.root}/cwd-file`, "x");
  for (const pty of [undefined, { size: { cols: 80, rows: 24 } }]) {
    await assert.rejects(
      collect(rpc.process.start({ process: { cmd: "true", args: [], envs: {}, cwd: "/cwd-file" }, pty })),
      (err) => {
        assert.equal(err.code, Code.InvalidArgument);
        assert.equal(
          err.rawMessage,
          pty
            ? "error starting pty with command 'true' in dir '/cwd-file' with '80' cols and '24' rows: fork/exec /bin/sh: not a directory"
            : "error starting process 'true': fork/exec /bin/sh: not a directory",
        );
        return true;
      },
    );
  }
});
