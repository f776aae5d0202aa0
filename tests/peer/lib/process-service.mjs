// process.Process with envd's semantics (spec §7): real child processes,
// fan-out of their output to attached streams, exit events kept 30 s.
import { spawn } from "node:child_process";
import { constants as osConstants } from "node:os";
import fs from "node:fs/promises";
import readline from "node:readline";
import { Signal } from "../gen/process_pb.js";
import { Code, ConnectError, errnoText } from "./errors.mjs";
import { Subscriber, keepaliveMs } from "./subscriber.mjs";
import { PYTHON, helperPath } from "./pyhelpers.mjs";
import { osPipes } from "./os-pipes.mjs";
import {
  authUser,
  dropConnection,
  abortError,
  kRawRequest,
  MAX_POST_HANDLER_READ,
  closeAfterAnswerLikeNetHttp,
} from "./rpc-util.mjs";

const STD_CHUNK = 32 * 1024;
const PTY_CHUNK = 16 * 1024;
const HIGH_WATER = 64; // envd's per-process output buffer, in events
const LOW_WATER = 16;
const RETENTION_MS = 30_000; // terminatedRetentionTTL

// Go's syscall.Signal.String() on Linux, for ProcessState.String().
const GO_SIGNAL_NAMES = {
  1: "hangup",
  2: "interrupt",
  3: "quit",
  4: "illegal instruction",
  5: "trace/breakpoint trap",
  6: "aborted",
  7: "bus error",
  8: "floating point exception",
  9: "killed",
  10: "user defined signal 1",
  11: "segmentation fault",
  12: "user defined signal 2",
  13: "broken pipe",
  14: "alarm clock",
  15: "terminated",
  16: "stack fault",
  17: "child exited",
  18: "continued",
  19: "stopped (signal)",
  20: "stopped",
  21: "stopped (tty input)",
  22: "stopped (tty output)",
  23: "urgent I/O condition",
  24: "CPU time limit exceeded",
  25: "file size limit exceeded",
  26: "virtual timer expired",
  27: "profiling timer expired",
  28: "window changed",
  29: "I/O possible",
  30: "power failure",
  31: "bad system call",
};

/**
 * EndEvent from a wait status, as envd's Handler.Wait derives it from Go's
 * exec.Cmd.Wait: exit_code -1 on a signal, status = ProcessState.String(),
 * error = the Wait error text (absent on exit 0). When the process lifetime
 * from Connect-Timeout-Ms ran out, exec.CommandContext SIGKILLs it and Wait
 * prefers the ExitError ("signal: killed") over the context's error, which
 * it only reports when the process still exited 0.
 */
export function endEventFor({ code, signal, core }, timedOut) {
  if (signal) {
    const name = GO_SIGNAL_NAMES[signal] ?? `signal ${signal}`;
    const status = `signal: ${name}${core ? " (core dumped)" : ""}`;
    return { exitCode: -1, exited: false, status, error: status };
  }
  const status = `exit status ${code}`;
  const ev = { exitCode: code, exited: true, status };
  if (code !== 0) ev.error = status;
  else if (timedOut) ev.error = "context deadline exceeded";
  return ev;
}

function signalNumber(sig) {
  if (typeof sig === "number") return sig;
  return osConstants.signals[sig] ?? 0;
}

/** Connect-Timeout-Ms as envd uses it for the process lifetime (0/absent: none). */
function lifetimeMs(headers) {
  const raw = headers.get("connect-timeout-ms");
  if (raw === null || !/^\d{1,10}$/.test(raw)) return 0;
  return Number(raw);
}

class ManagedProcess {
  constructor(registry, { config, tag, isPty }) {
    this.registry = registry;
    this.config = config;
    this.tag = tag;
    this.isPty = isPty;
    this.pid = 0;
    this.seq = 0; // start number, the key of the process-table order
    this.subs = new Set();
    this.exited = false;
    this.exitInfo = null;
    this.ended = false;
    this.endEvent = null;
    this.outputCancelled = false;
    this.timedOut = false;
    this.paused = false;
    this.outStreams = [];
    this.openOutputs = 0;
    this.stdin = null;
    this.child = null;
    this.ctl = null;
    this.lifetimeTimer = null;
  }

  subscribe() {
    const s = new Subscriber(() => this.maybeResume());
    this.subs.add(s);
    return s;
  }

  unsubscribe(s) {
    this.subs.delete(s);
    s.close();
    this.maybeResume();
  }

  // Output read after a SIGTERM/SIGKILL or the lifetime's end is still sent:
  // envd's readers run until Handler.Wait closes the pipes after the exit.
  emitData(kind, buf) {
    if (this.ended) return;
    const max = kind === "pty" ? PTY_CHUNK : STD_CHUNK;
    for (let off = 0; off < buf.length; off += max) {
      // Nobody attached: the bytes are gone (envd >= 0.5.19, no replay).
      if (this.subs.size === 0) return;
      const event = {
        case: "data",
        value: { output: { case: kind, value: buf.subarray(off, off + max) } },
      };
      for (const s of this.subs) s.push(event);
    }
    for (const s of this.subs) {
      if (s.length >= HIGH_WATER) {
        this.pause();
        break;
      }
    }
  }

  pause() {
    if (this.paused) return;
    this.paused = true;
    for (const st of this.outStreams) st.pause();
  }

  maybeResume() {
    if (!this.paused) return;
    for (const s of this.subs) if (s.length > LOW_WATER) return;
    this.paused = false;
    for (const st of this.outStreams) st.resume();
  }

  watchOutput(stream, kind) {
    this.outStreams.push(stream);
    this.openOutputs++;
    stream.on("data", (chunk) => this.emitData(kind, chunk));
    stream.on("error", () => {});
    stream.on("close", () => {
      this.openOutputs--;
      this.maybeFinish();
    });
  }

  /**
   * SIGTERM/SIGKILL and the lifetime timeout stop waiting for output EOF
   * (envd's outCancel): the end comes at the exit, and a PTY's reader stops
   * then too (Handler.Wait closes the master).
   */
  cancelOutput() {
    this.outputCancelled = true;
    if (this.isPty && this.ctl && !this.ctl.destroyed) this.ctl.write("stop\n");
    this.maybeFinish();
  }

  onExit(info) {
    if (this.exited) return;
    this.exited = true;
    this.exitInfo = info;
    this.maybeFinish();
  }

  maybeFinish() {
    if (this.ended || !this.exited) return;
    if (!this.outputCancelled && this.openOutputs > 0) return;
    if (this.openOutputs > 0) {
      for (const st of this.outStreams) st.destroy();
    }
    this.finish(endEventFor(this.exitInfo, this.timedOut));
  }

  finish(end) {
    clearTimeout(this.lifetimeTimer);
    this.ended = true;
    this.endEvent = end;
    if (this.stdin) {
      this.stdin.destroy();
      this.stdin = null;
    }
    if (this.ctl) this.ctl.destroy();
    this.registry.retire(this);
    const event = { case: "end", value: end };
    for (const s of this.subs) {
      s.push(event);
      s.close();
    }
  }

  startLifetime(ms) {
    if (!ms) return;
    // The deadline runs until Handler.Wait reaps the child, so it also ends
    // the wait for output a grandchild keeps open after the exit.
    this.lifetimeTimer = setTimeout(() => {
      this.timedOut = true;
      if (!this.exited) {
        try {
          process.kill(this.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      this.cancelOutput();
    }, ms);
  }

  async writeStdin(data) {
    if (this.isPty) {
      throw new ConnectError(
        "error writing to stdin: tty assigned to process — input should be written to the pty, not the stdin",
        Code.Internal,
      );
    }
    const stdin = this.stdin;
    if (!stdin) {
      throw new ConnectError("error writing to stdin: stdin not enabled or closed", Code.Internal);
    }
    try {
      await new Promise((resolve, reject) =>
        stdin.write(data, (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      throw new ConnectError(
        `error writing to stdin: error writing to stdin of process '${this.pid}': write |1: ${errnoText(err)}`,
        Code.Internal,
      );
    }
  }

  async writeTty(data) {
    if (!this.isPty) {
      throw new ConnectError(
        "error writing to tty: tty not assigned to process — input should be written to the stdin, not the tty",
        Code.Internal,
      );
    }
    const stdin = this.stdin;
    if (!stdin) {
      throw new ConnectError(
        `error writing to tty: error writing to tty of process '${this.pid}': write /dev/ptmx: file already closed`,
        Code.Internal,
      );
    }
    await new Promise((resolve) => stdin.write(data, () => resolve()));
  }

  closeStdin() {
    if (this.isPty) {
      throw new ConnectError(
        "error closing stdin: cannot close stdin for PTY process — send Ctrl+D (0x04) instead",
        Code.Unknown,
      );
    }
    if (this.stdin) {
      this.stdin.end();
      this.stdin = null;
    }
  }

  resize(cols, rows) {
    if (!this.isPty) {
      throw new ConnectError("error resizing tty: tty not assigned to process", Code.Internal);
    }
    if (this.ctl && !this.ctl.destroyed) this.ctl.write(`resize ${rows} ${cols}\n`);
  }

  signal(sig) {
    this.cancelOutput();
    // Exited but still registered (a grandchild holds its output open): envd
    // signals the unreaped child, which succeeds, and the end follows.
    if (this.exited) return;
    try {
      process.kill(this.pid, sig);
    } catch (err) {
      throw new ConnectError(`error sending signal: ${errnoText(err)}`, Code.Internal);
    }
  }

  killHard() {
    for (const target of [-this.pid, this.pid]) {
      try {
        if (target) process.kill(target, "SIGKILL");
      } catch {
        // gone
      }
    }
    if (this.child && this.isPty) this.child.kill("SIGKILL");
  }
}

/** A small seeded PRNG (mulberry32), uniform in [0, 1). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit hash of n under seed (murmur3's finalizer). */
function mix32(seed, n) {
  let h = (seed ^ Math.imul(n, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class ProcessRegistry {
  constructor({ seed = 0 } = {}) {
    const random = mulberry32(seed);
    this.liveSeed = Math.floor(random() * 2 ** 32);
    this.terminatedSeed = Math.floor(random() * 2 ** 32);
    this.started = 0;
    this.live = new Map(); // pid -> ManagedProcess (until its end event)
    this.terminated = new Map(); // pid -> ManagedProcess (30 s after the end)
    this.groups = new Set(); // process groups started here, for shutdown
  }

  /** envd's finalizeTermination: only a process still registered is retained. */
  retire(p) {
    if (this.live.get(p.pid) !== p) return;
    this.live.delete(p.pid);
    this.terminated.set(p.pid, p);
    const t = setTimeout(() => {
      if (this.terminated.get(p.pid) === p) this.terminated.delete(p.pid);
    }, RETENTION_MS);
    t.unref();
  }

  /**
   * The values of `map` in the order envd's sync.Map Range visits them. Since
   * Go 1.24 a sync.Map is a hash-trie walked in hash order with a random
   * seed per map: an order unrelated to start order, the same on every walk
   * while the set of processes stays, and a new process lands anywhere in
   * it. Here the hash is of each process's start number under a seed drawn
   * from --seed, so a run can be replayed.
   */
  walk(map) {
    const seed = map === this.live ? this.liveSeed : this.terminatedSeed;
    return [...map.values()].sort((a, b) => mix32(seed, a.seq) - mix32(seed, b.seq) || a.seq - b.seq);
  }

  /**
   * envd's Service.getProcess (services/process/service.go): a pid is a map
   * lookup; a tag walks the live processes in Range order, skips untagged
   * ones, lets the *last* match win and stops at the first process that has
   * a different tag, so any other tagged process can make the lookup fail
   * (or pick a different match) depending on the walk order. With
   * `terminated`, a miss falls back to envd's lookupTerminated
   * (services/process/connect.go): the first retained exit with that tag in
   * Range order, as Connect does.
   */
  find(selector, { terminated = false } = {}) {
    const sel = selector?.selector;
    if (!sel || sel.case === undefined) {
      throw new ConnectError("invalid input type *process.ProcessSelector", Code.Unimplemented);
    }
    if (sel.case === "pid") {
      const p = this.live.get(sel.value) ?? (terminated ? this.terminated.get(sel.value) : undefined);
      if (!p) throw new ConnectError(`process with pid ${sel.value} not found`, Code.NotFound);
      return p;
    }
    let found = null;
    for (const p of this.walk(this.live)) {
      if (p.tag === undefined) continue;
      if (p.tag !== sel.value) break;
      found = p;
    }
    if (!found && terminated) {
      found = this.walk(this.terminated).find((p) => p.tag === sel.value) ?? null;
    }
    if (!found) throw new ConnectError(`process with tag ${sel.value} not found`, Code.NotFound);
    return found;
  }

  /**
   * envd's handleStart after the fork: drop a retained exit under the new
   * pid and every retained exit carrying the new process's tag
   * (clearTerminatedForTag), then register it.
   */
  register(p) {
    p.seq = ++this.started;
    this.terminated.delete(p.pid);
    if (p.tag !== undefined) {
      for (const [pid, old] of this.terminated) if (old.tag === p.tag) this.terminated.delete(pid);
    }
    this.live.set(p.pid, p);
  }

  async spawnPipe({ config, tag, stdin, cwd, vcwd, env, lifetime }) {
    const p = new ManagedProcess(this, { config, tag, isPty: false });
    const pipes = await osPipes(stdin);
    let child;
    // spawn() throws at once for some errors (a cwd that is a file: ENOTDIR)
    // and reports others as an "error" event; both become envd's start error.
    const started = new Promise((resolve, reject) => {
      child = spawn("/bin/sh", ["-c", 'exec "$@"', "--", config.cmd, ...config.args], {
        cwd,
        env,
        stdio: pipes.stdio,
        detached: true, // own process group, so shutdown can take grandchildren too
      });
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    await started.finally(() => pipes.closeChildEnds()).catch((err) => {
      for (const st of Object.values(pipes.parent)) st.destroy();
      const cmd = [config.cmd, ...config.args].join(" ");
      throw new ConnectError(
        `error starting process '${cmd}': ${startErrorText(err, vcwd)}`,
        Code.InvalidArgument,
      );
    });
    p.child = child;
    p.pid = child.pid;
    if (pipes.parent.stdin) {
      pipes.parent.stdin.on("error", () => {});
      p.stdin = pipes.parent.stdin;
    }
    this.groups.add(p.pid);
    p.watchOutput(pipes.parent.stdout, "stdout");
    p.watchOutput(pipes.parent.stderr, "stderr");
    child.on("exit", (code, sig) => p.onExit({ code: code ?? 0, signal: sig ? signalNumber(sig) : 0 }));
    p.startLifetime(lifetime);
    this.register(p);
    return p;
  }

  async spawnPty({ config, tag, cwd, vcwd, env, lifetime, cols, rows }) {
    const p = new ManagedProcess(this, { config, tag, isPty: true });
    const cmd = [config.cmd, ...config.args].join(" ");
    // Python coerces a C locale by setting LC_CTYPE in its own environment
    // (PEP 538), which the child would inherit; envd adds nothing. The helper
    // drops it again unless the command's environment had one.
    const helperEnv = "LC_CTYPE" in env ? env : { ...env, PEER_PTY_DROP_LC_CTYPE: "1" };
    const startError = (why) =>
      new ConnectError(
        `error starting pty with command '${cmd}' in dir '${vcwd}' with '${cols}' cols and '${rows}' rows: ${why}`,
        Code.InvalidArgument,
      );
    let child;
    try {
      child = spawn(
        PYTHON,
        ["-I", helperPath("pty_helper.py"), String(rows), String(cols), "--", config.cmd, ...config.args],
        { cwd, env: helperEnv, stdio: ["pipe", "pipe", "inherit", "pipe", "pipe"] },
      );
    } catch (err) {
      throw startError(startErrorText(err, vcwd)); // a cwd that is a file
    }
    const ctlOut = readline.createInterface({ input: child.stdio[4] });
    let onPid;
    const pidPromise = new Promise((resolve, reject) => {
      onPid = resolve;
      child.once("error", reject);
      child.once("exit", () => reject(new Error("pty helper exited before starting")));
    });
    ctlOut.on("line", (line) => {
      const [word, num, extra] = line.split(" ");
      if (word === "pid") onPid(Number(num));
      else if (word === "exit") p.onExit({ code: Number(num), signal: 0 });
      else if (word === "signal") p.onExit({ code: 0, signal: Number(num), core: extra === "core" });
    });
    try {
      p.pid = await pidPromise;
    } catch (err) {
      child.kill("SIGKILL");
      throw startError(err.code ? startErrorText(err, vcwd) : err.message);
    }
    child.removeAllListeners("exit");
    child.on("exit", () => {
      // The helper reports the child's status before it exits; if it died
      // without a word, the child went with it.
      if (!p.exited) p.onExit({ code: 0, signal: 9 });
    });
    p.child = child;
    p.ctl = child.stdio[3];
    p.ctl.on("error", () => {});
    p.stdin = child.stdin;
    p.stdin.on("error", () => {});
    this.groups.add(p.pid); // the pty child is a session leader
    p.watchOutput(child.stdout, "pty");
    p.startLifetime(lifetime);
    this.register(p);
    return p;
  }

  /** Shutdown: the live processes, and whatever is left in their groups. */
  killAll() {
    for (const p of this.live.values()) p.killHard();
    for (const pgid of this.groups) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // group is empty
      }
    }
  }
}

/**
 * Go's os.StartProcess error for a bad working directory, with the sandbox
 * path: a missing one fails its Stat ("chdir <dir>: ..."), anything else
 * fails in the forked child ("fork/exec /bin/sh: ..."), as envd reports.
 */
function startErrorText(err, vcwd) {
  if (err.code === "ENOENT") return `chdir ${vcwd}: ${errnoText(err)}`;
  return `fork/exec /bin/sh: ${errnoText(err)}`;
}

async function* pump(proc, sub, ctx, kaMs) {
  try {
    let deadline = Date.now() + kaMs;
    for (;;) {
      const r = await sub.next(deadline - Date.now(), ctx.signal);
      if (r.aborted) throw abortError(ctx);
      if (r.timeout) {
        yield { event: { event: { case: "keepalive", value: {} } } };
        deadline = Date.now() + kaMs;
        continue;
      }
      if (r.done) return;
      yield { event: { event: r.item } };
      if (r.item.case === "end") return;
      deadline = Date.now() + kaMs;
    }
  } finally {
    proc.unsubscribe(sub);
  }
}

export function processService(sb, registry) {
  return {
    // envd's Service.List (services/process/list.go): every process still in
    // the map, so also one that has exited while a grandchild holds its
    // output open (it leaves at its end event), in Range order.
    async list() {
      const processes = [];
      for (const p of registry.walk(registry.live)) {
        const info = { config: p.config, pid: p.pid };
        if (p.tag !== undefined) info.tag = p.tag;
        processes.push(info);
      }
      return { processes };
    },

    async *start(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const kaMs = keepaliveMs(ctx.requestHeader);
      if (kaMs === null) dropConnection(ctx, "non-positive Keepalive-Ping-Interval");
      const lifetime = lifetimeMs(ctx.requestHeader);
      const config = req.process ?? { cmd: "", args: [], envs: {} };

      let vcwd;
      try {
        vcwd = sb.resolve(config.cwd ?? "", user);
      } catch (err) {
        throw new ConnectError(err.message, Code.InvalidArgument);
      }
      const cwd = sb.toReal(vcwd);
      try {
        await fs.stat(cwd);
      } catch (err) {
        if (err.code === "ENOENT") {
          throw new ConnectError(`cwd '${vcwd}' does not exist`, Code.InvalidArgument);
        }
      }

      const env = {
        PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
        HOME: sb.toReal(user.home),
        USER: user.name,
        LOGNAME: user.name,
      };
      for (const [k, v] of sb.envVars) env[k] = v;
      for (const [k, v] of Object.entries(config.envs ?? {})) env[k] = v;

      const base = { config, tag: req.tag, cwd, vcwd, env, lifetime };
      const proc = req.pty
        ? await registry.spawnPty({
            ...base,
            cols: req.pty.size?.cols ?? 0,
            rows: req.pty.size?.rows ?? 0,
          })
        : await registry.spawnPipe({ ...base, stdin: req.stdin !== false });

      const sub = proc.subscribe();
      yield { event: { event: { case: "start", value: { pid: proc.pid } } } };
      yield* pump(proc, sub, ctx, kaMs);
    },

    async *connect(req, ctx) {
      const kaMs = keepaliveMs(ctx.requestHeader);
      if (kaMs === null) dropConnection(ctx, "non-positive Keepalive-Ping-Interval");
      const proc = registry.find(req.process, { terminated: true });
      if (proc.ended) {
        yield { event: { event: { case: "start", value: { pid: proc.pid } } } };
        yield { event: { event: { case: "end", value: proc.endEvent } } };
        return;
      }
      const sub = proc.subscribe();
      yield { event: { event: { case: "start", value: { pid: proc.pid } } } };
      yield* pump(proc, sub, ctx, kaMs);
    },

    async update(req) {
      const proc = registry.find(req.process);
      if (req.pty) proc.resize(req.pty.size?.cols ?? 0, req.pty.size?.rows ?? 0);
      return {};
    },

    async sendInput(req) {
      const proc = registry.find(req.process);
      await handleInput(proc, req.input);
      return {};
    },

    async streamInput(requests, ctx) {
      const it = requests[Symbol.asyncIterator]();
      let proc = null;
      try {
        for (let r = await it.next(); !r.done; r = await it.next()) {
          const ev = r.value.event;
          if (ev.case === "start") {
            proc = registry.find(ev.value.process);
          } else if (ev.case === "data") {
            if (!proc) {
              // envd dereferences a nil handler here; net/http recovers the
              // panic and drops the connection.
              dropConnection(ctx, "StreamInput data before start");
            }
            await handleInput(proc, ev.value.input);
          } else if (ev.case === "keepalive") {
            // accepted and ignored
          } else {
            throw new ConnectError("invalid event type <nil>", Code.Unimplemented);
          }
        }
      } catch (err) {
        await holdErrorLikeNetHttp(ctx, it);
        if (err instanceof ConnectError) throw err;
        throw new ConnectError(`error streaming input: ${err.message}`, Code.Unknown);
      }
      return {};
    },

    async sendSignal(req) {
      const proc = registry.find(req.process);
      let sig;
      if (req.signal === Signal.SIGTERM) sig = "SIGTERM";
      else if (req.signal === Signal.SIGKILL) sig = "SIGKILL";
      else {
        const name = Signal[req.signal] !== undefined ? `SIGNAL_${Signal[req.signal]}` : String(req.signal);
        throw new ConnectError(`invalid signal: ${name}`, Code.Unimplemented);
      }
      proc.signal(sig);
      return {};
    },

    async closeStdin(req) {
      const proc = registry.find(req.process);
      proc.closeStdin();
      return {};
    },
  };
}


/**
 * A client-streaming error over HTTP/1.1 reaches the client late in envd:
 * connect-go's connectStreamingHandlerConn.Close buffers the end-stream
 * frame, then closes the request body, and net/http's body.Close reads up
 * to 256 KiB more looking for its end before the deferred flush. So the
 * answer waits until the client ends its request stream or sends 256 KiB
 * more (then net/http closes the connection after the answer). HTTP/2 ends
 * the body at once.
 */
async function holdErrorLikeNetHttp(ctx, it) {
  const raw = ctx.values.get(kRawRequest);
  if (!raw || raw.httpVersionMajor !== 1 || raw.complete) return;
  let read = 0;
  const count = (chunk) => {
    read += chunk.length;
  };
  raw.on("data", count);
  try {
    while (read < MAX_POST_HANDLER_READ) {
      if ((await it.next()).done) return;
    }
    closeAfterAnswerLikeNetHttp(raw.peerResponse, raw.socket);
  } catch {
    // a broken stream ends the wait as well
  } finally {
    raw.off("data", count);
  }
}

async function handleInput(proc, input) {
  const c = input?.input;
  if (c?.case === "pty") return proc.writeTty(c.value);
  if (c?.case === "stdin") return proc.writeStdin(c.value);
  throw new ConnectError("invalid input type <nil>", Code.Unimplemented);
}
