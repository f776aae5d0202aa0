// OS pipes for a child's stdio, as Go's exec.Cmd.StdinPipe/StdoutPipe give
// envd's commands. Node's "pipe" stdio is a UNIX socketpair, on which
// `echo x > /dev/stderr` and `cat /dev/stdin` fail with ENXIO (a socket
// cannot be reopened through /proc/self/fd). Node cannot call pipe(2), so a
// small Python helper makes the pipes and this side opens both ends through
// /proc/<helper>/fd/<n>: its own open files of the same anonymous pipes.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import readline from "node:readline";
import { promisify } from "node:util";
import { PYTHON, helperPath } from "./pyhelpers.mjs";

const openFd = promisify(fs.open);
const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

let helper = null;

function startHelper() {
  const proc = spawn(PYTHON, ["-I", helperPath("pipe_helper.py")], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting = [];
  const lines = readline.createInterface({ input: proc.stdout });
  // Only a pending request keeps the event loop alive.
  lines.on("line", (line) => {
    waiting.shift()?.resolve(line.split(" ").slice(1).map(Number));
    if (waiting.length === 0) proc.stdout.unref();
  });
  const fail = (err) => {
    helper = null;
    for (const w of waiting.splice(0)) w.reject(err);
  };
  proc.on("error", fail);
  proc.on("exit", () => fail(new Error("pipe helper exited")));
  proc.stdin.on("error", () => {});
  proc.unref();
  proc.stdin.unref?.();
  proc.stdout.unref?.();
  return {
    proc,
    make(n) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        proc.stdout.ref();
        proc.stdin.write(`make ${n}\n`);
      });
    },
    close(fds) {
      proc.stdin.write(`close ${fds.join(" ")}\n`);
    },
  };
}

/** Stops the helper (server shutdown). */
export function stopPipeHelper() {
  helper?.proc.kill("SIGKILL");
  helper = null;
}

/**
 * Pipes for stdin (when wanted), stdout and stderr. Returns {stdio, parent,
 * closeChildEnds}: `stdio` for spawn(), `parent` the sockets this side reads
 * and writes, `closeChildEnds()` to call once the child has its ends.
 */
export async function osPipes(wantStdin) {
  helper ??= startHelper();
  const h = helper;
  const n = wantStdin ? 3 : 2;
  const fds = await h.make(n);
  const end = (fd, flags) => openFd(`/proc/${h.proc.pid}/fd/${fd}`, flags);
  const opened = [];
  try {
    const stdio = ["ignore"];
    const parent = {};
    for (const [i, key] of [
      [0, "stdout"],
      [1, "stderr"],
    ]) {
      const r = await end(fds[2 * i], O_RDONLY | O_NONBLOCK);
      opened.push(r);
      stdio[i + 1] = await end(fds[2 * i + 1], O_WRONLY);
      opened.push(stdio[i + 1]);
      parent[key] = new net.Socket({ fd: r, readable: true, writable: false });
    }
    if (wantStdin) {
      stdio[0] = await end(fds[4], O_RDONLY);
      opened.push(stdio[0]);
      const w = await end(fds[5], O_WRONLY | O_NONBLOCK);
      opened.push(w);
      parent.stdin = new net.Socket({ fd: w, readable: false, writable: true });
    }
    return {
      stdio,
      parent,
      closeChildEnds: () => {
        for (const fd of stdio) if (typeof fd === "number") fs.closeSync(fd);
      },
    };
  } catch (err) {
    for (const fd of opened) fs.closeSync(fd);
    throw err;
  } finally {
    h.close(fds);
  }
}
