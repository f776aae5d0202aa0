// process.Process over the binary Connect codec (connect-node's client), checked
// against envd's semantics in spec §7.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { Signal } from "../gen/process_pb.js";
import {
  startServer,
  rpcClients,
  collect,
  bashStart,
  sleep,
  alive,
  waitFor,
  userHeader,
} from "./helpers.mjs";

let server;
let rpc;

before(async () => {
  server = await startServer({ http: "h1" });
  rpc = rpcClients(server, "connect-binary");
});
after(async () => {
  await server?.stop();
});

async function rejectsWith(promise, code, message) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
    assert.equal(err.code, code, `code ${Code[err.code]}: ${err.rawMessage}`);
    if (message instanceof RegExp) assert.match(err.rawMessage, message);
    else if (message !== undefined) assert.equal(err.rawMessage, message);
    return true;
  });
}

test("start: StartEvent first, output, EndEvent of a clean exit", async () => {
  const r = await collect(rpc.process.start(bashStart("echo out; echo err >&2")));
  assert.equal(r.events[0], "start");
  assert.ok(r.pid > 0);
  assert.equal(r.events.at(-1), "end");
  assert.equal(r.out, "out\n");
  assert.equal(r.err, "err\n");
  assert.equal(r.end.exitCode, 0);
  assert.equal(r.end.exited, true);
  assert.equal(r.end.status, "exit status 0");
  assert.equal(r.end.error, undefined);
});

test("start: non-zero exit and command not found", async () => {
  const r = await collect(rpc.process.start(bashStart("exit 3")));
  assert.deepEqual(
    { code: r.end.exitCode, exited: r.end.exited, status: r.end.status, error: r.end.error },
    { code: 3, exited: true, status: "exit status 3", error: "exit status 3" },
  );
  const nf = await collect(
    rpc.process.start({ process: { cmd: "no-such-command-xyz", args: [], envs: {} }, stdin: false }),
  );
  assert.equal(nf.events[0], "start");
  assert.equal(nf.end.exitCode, 127);
  assert.match(nf.err, /no-such-command-xyz/);
});

test("start: output comes in data events of at most 32 KiB", async () => {
  const sizes = [];
  let total = 0;
  for await (const msg of rpc.process.start(bashStart("head -c 300000 /dev/zero", { stdin: false }))) {
    const ev = msg.event.event;
    if (ev.case === "data") {
      sizes.push(ev.value.output.value.length);
      total += ev.value.output.value.length;
    }
  }
  assert.equal(total, 300000);
  assert.ok(Math.max(...sizes) <= 32 * 1024, `largest chunk ${Math.max(...sizes)}`);
});

test("start: stdin=false is /dev/null, unset is an OS pipe (exec.Cmd.StdinPipe)", async () => {
  const off = await collect(rpc.process.start(bashStart("readlink /proc/self/fd/0", { stdin: false })));
  assert.equal(off.out.trim(), "/dev/null");
  const on = await collect(
    rpc.process.start(bashStart("readlink /proc/self/fd/0"), { timeoutMs: 10_000 }),
    {},
  );
  assert.match(on.out.trim(), /^pipe:/);
});

test("start: env, cwd and home", async () => {
  await rpc.fs.makeDir({ path: "work" });
  const r = await collect(
    rpc.process.start({
      process: {
        cmd: "/bin/bash",
        args: ["-c", 'echo "$FOO|$USER|$E2B_SANDBOX"; pwd; echo "$HOME"'],
        envs: { FOO: "bar" },
        cwd: "work",
      },
      stdin: false,
    }),
  );
  const [vars, cwd, home] = r.out.trim().split("\n");
  assert.equal(vars, "bar|root|true");
  assert.equal(cwd, `${server.root}/root/work`);
  assert.equal(home, `${server.root}/root`);
});

test("start: missing cwd is invalid_argument", async () => {
  await rejectsWith(
    collect(rpc.process.start({ process: { cmd: "true", args: [], envs: {}, cwd: "/nope" } })),
    Code.InvalidArgument,
    "cwd '/nope' does not exist",
  );
});

test("start: keepalives follow Keepalive-Ping-Interval", async () => {
  const r = await collect(
    rpc.process.start(bashStart("sleep 2.5", { stdin: false }), {
      headers: { "Keepalive-Ping-Interval": "1" },
    }),
  );
  assert.ok(r.keepalives >= 2, `keepalives: ${r.keepalives}`);
  assert.equal(r.end.exitCode, 0);
});

test("start: Connect-Timeout-Ms is the process lifetime (SIGKILL)", async () => {
  let pid = 0;
  await rejectsWith(
    collect(rpc.process.start(bashStart("sleep 30", { stdin: false }), { timeoutMs: 600 }), {
      onStart: (p) => {
        pid = p;
      },
    }),
    Code.DeadlineExceeded,
  );
  assert.ok(pid > 0);
  assert.ok(await waitFor(() => !alive(pid)), "process still alive after its lifetime");
  // The exit event stays available for a late Connect.
  const late = await collect(rpc.process.connect({ process: { selector: { case: "pid", value: pid } } }));
  assert.deepEqual(late.events, ["start", "end"]);
  assert.equal(late.end.exitCode, -1);
  assert.equal(late.end.exited, false);
  assert.equal(late.end.status, "signal: killed");
  // os/exec's Cmd.Wait prefers the ExitError over the context's error.
  assert.equal(late.end.error, "signal: killed");
});

test("sendSignal: SIGKILL and SIGTERM end events; invalid signal", async () => {
  for (const [sig, status] of [
    [Signal.SIGKILL, "signal: killed"],
    [Signal.SIGTERM, "signal: terminated"],
  ]) {
    const r = await collect(rpc.process.start(bashStart("sleep 30", { stdin: false })), {
      onStart: (pid) => rpc.process.sendSignal({ process: { selector: { case: "pid", value: pid } }, signal: sig }),
    });
    assert.equal(r.end.exitCode, -1);
    assert.equal(r.end.exited, false);
    assert.equal(r.end.status, status);
    assert.equal(r.end.error, status);
  }
  const ctl = new AbortController();
  const stream = rpc.process.start(bashStart("sleep 30", { stdin: false }), { signal: ctl.signal });
  const first = await stream[Symbol.asyncIterator]().next();
  const pid = first.value.event.event.value.pid;
  const sel = { process: { selector: { case: "pid", value: pid } } };
  await rejectsWith(rpc.process.sendSignal({ ...sel, signal: Signal.UNSPECIFIED }), Code.Unimplemented, /invalid signal/);
  await rpc.process.sendSignal({ ...sel, signal: Signal.SIGKILL });
  ctl.abort();
  await rejectsWith(
    rpc.process.sendSignal({ process: { selector: { case: "pid", value: 999999 } }, signal: Signal.SIGKILL }),
    Code.NotFound,
    "process with pid 999999 not found",
  );
});

test("signal ends the stream even when a grandchild holds stdout", async () => {
  const t0 = Date.now();
  const r = await collect(rpc.process.start(bashStart("sleep 20 & echo started; wait", { stdin: false })), {
    onStart: async (pid) => {
      await sleep(300);
      await rpc.process.sendSignal({ process: { selector: { case: "pid", value: pid } }, signal: Signal.SIGKILL });
    },
  });
  assert.equal(r.end.status, "signal: killed");
  assert.ok(Date.now() - t0 < 10_000);
});

test("list, tags, selectors, and exited processes drop out", async () => {
  const ctl = new AbortController();
  const stream = rpc.process.start(
    { process: { cmd: "sleep", args: ["30"], envs: { A: "1" } }, tag: "peer-tag", stdin: false },
    { signal: ctl.signal },
  );
  const it = stream[Symbol.asyncIterator]();
  const pid = (await it.next()).value.event.event.value.pid;
  const { processes } = await rpc.process.list({});
  const info = processes.find((p) => p.pid === pid);
  assert.ok(info, "started process is listed");
  assert.equal(info.tag, "peer-tag");
  assert.equal(info.config.cmd, "sleep");
  assert.deepEqual(info.config.args, ["30"]);
  assert.deepEqual(info.config.envs, { A: "1" });

  // Connect by tag reaches the same process.
  const byTag = rpc.process.connect({ process: { selector: { case: "tag", value: "peer-tag" } } });
  const bt = byTag[Symbol.asyncIterator]();
  assert.equal((await bt.next()).value.event.event.value.pid, pid);

  await rpc.process.sendSignal({ process: { selector: { case: "tag", value: "peer-tag" } }, signal: Signal.SIGKILL });
  let end = null;
  for (;;) {
    const n = await bt.next();
    if (n.done) break;
    if (n.value.event.event.case === "end") end = n.value.event.event.value;
  }
  assert.equal(end.status, "signal: killed");
  ctl.abort();
  assert.ok(await waitFor(async () => !(await rpc.process.list({})).processes.some((p) => p.pid === pid)));
  await rejectsWith(
    rpc.process.sendInput({
      process: { selector: { case: "tag", value: "no-such-tag" } },
      input: { input: { case: "stdin", value: new Uint8Array([1]) } },
    }),
    Code.NotFound,
    "process with tag no-such-tag not found",
  );
});

test("connect: no replay, and output with nobody attached is dropped", async () => {
  const ctl = new AbortController();
  const stream = rpc.process.start(
    bashStart("sleep 0.4; echo early; sleep 1; echo late", { stdin: false }),
    { signal: ctl.signal },
  );
  const it = stream[Symbol.asyncIterator]();
  const pid = (await it.next()).value.event.event.value.pid;
  ctl.abort(); // detach at once: "early" is printed while nobody listens
  await it.next().catch(() => {});
  await sleep(900);
  const r = await collect(rpc.process.connect({ process: { selector: { case: "pid", value: pid } } }));
  assert.equal(r.events[0], "start");
  assert.equal(r.pid, pid);
  assert.equal(r.out, "late\n");
  assert.equal(r.end.exitCode, 0);
});

test("connect: unknown pid and unset selector", async () => {
  await rejectsWith(
    collect(rpc.process.connect({ process: { selector: { case: "pid", value: 999998 } } })),
    Code.NotFound,
    "process with pid 999998 not found",
  );
  await rejectsWith(collect(rpc.process.connect({})), Code.Unimplemented, /invalid input type/);
});

test("stdin: sendInput, streamInput, closeStdin", async () => {
  const r = await collect(rpc.process.start(bashStart("cat; sleep 0.5; echo done")), {
    onStart: async (pid) => {
      const sel = { selector: { case: "pid", value: pid } };
      await rpc.process.sendInput({ process: sel, input: { input: { case: "stdin", value: Buffer.from("one\n") } } });
      async function* msgs() {
        yield { event: { case: "start", value: { process: sel } } };
        yield { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from("two\n") } } } } };
        yield { event: { case: "keepalive", value: {} } };
        yield { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from("three\n") } } } } };
      }
      await rpc.process.streamInput(msgs());
      await rpc.process.closeStdin({ process: sel });
      await rpc.process.closeStdin({ process: sel }); // idempotent
    },
  });
  assert.equal(r.out, "one\ntwo\nthree\ndone\n");

  const noStdin = await collect(rpc.process.start(bashStart("sleep 0.3", { stdin: false })), {
    onStart: async (pid) => {
      await rejectsWith(
        rpc.process.sendInput({
          process: { selector: { case: "pid", value: pid } },
          input: { input: { case: "stdin", value: Buffer.from("x") } },
        }),
        Code.Internal,
        "error writing to stdin: stdin not enabled or closed",
      );
      await rejectsWith(
        rpc.process.update({
          process: { selector: { case: "pid", value: pid } },
          pty: { size: { cols: 10, rows: 10 } },
        }),
        Code.Internal,
        "error resizing tty: tty not assigned to process",
      );
      await rejectsWith(
        rpc.process.sendInput({
          process: { selector: { case: "pid", value: pid } },
          input: { input: { case: "pty", value: Buffer.from("x") } },
        }),
        Code.Internal,
        /^error writing to tty: tty not assigned to process/,
      );
    },
  });
  assert.equal(noStdin.end.exitCode, 0);
});

test("pty: start, input, resize, merged output", async () => {
  let pid = 0;
  const r = await collect(
    rpc.process.start({
      process: { cmd: "/bin/bash", args: ["--norc", "--noprofile", "-i"], envs: { TERM: "dumb", PS1: "$ " } },
      pty: { size: { cols: 100, rows: 30 } },
    }),
    {
      onStart: async (p) => {
        pid = p;
        const sel = { selector: { case: "pid", value: p } };
        const send = (s) =>
          rpc.process.sendInput({ process: sel, input: { input: { case: "pty", value: Buffer.from(s) } } });
        await send("stty size; echo to-stderr >&2\n");
        await sleep(300);
        await rpc.process.update({ process: sel, pty: { size: { cols: 120, rows: 40 } } });
        await send("stty size\n");
        await rejectsWith(
          rpc.process.sendInput({ process: sel, input: { input: { case: "stdin", value: Buffer.from("x") } } }),
          Code.Internal,
          "error writing to stdin: tty assigned to process — input should be written to the pty, not the stdin",
        );
        await rejectsWith(
          rpc.process.closeStdin({ process: sel }),
          Code.Unknown,
          "error closing stdin: cannot close stdin for PTY process — send Ctrl+D (0x04) instead",
        );
        await sleep(200);
        await send("exit 5\n");
      },
    },
  );
  assert.ok(pid > 0);
  assert.equal(r.out, "");
  assert.equal(r.err, "");
  assert.match(r.pty, /30 100/);
  assert.match(r.pty, /40 120/);
  assert.match(r.pty, /to-stderr/);
  assert.equal(r.end.exitCode, 5);
});

test("an unknown Basic-auth user is unauthenticated", async () => {
  await rejectsWith(
    rpc.process.list({}, { headers: userHeader("no-such-user-x") }),
    Code.Unauthenticated,
    "invalid username: 'no-such-user-x'",
  );
  await rejectsWith(
    collect(rpc.process.start(bashStart("true"), { headers: userHeader("no-such-user-x") })),
    Code.Unauthenticated,
    "invalid username: 'no-such-user-x'",
  );
  // A known user gets its own home.
  const r = await collect(rpc.process.start(bashStart("echo $HOME $USER", { stdin: false }), { headers: userHeader("user") }));
  assert.equal(r.out.trim(), `${server.root}/home/user user`);
});
