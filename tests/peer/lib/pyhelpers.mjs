// The small Python helpers the server leans on for what Node.js lacks: a
// PTY (openpty + controlling terminal), raw inotify, and extended attributes.
// They use only Python's standard library (Debian's python3).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import readline from "node:readline";

const pyDir = join(dirname(fileURLToPath(import.meta.url)), "py");

export const PYTHON =
  process.env.PEER_PYTHON || (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

export const helperPath = (name) => join(pyDir, name);

/**
 * Client for xattr_helper.py: one long-lived process, JSON lines, requests
 * matched by id. Started on first use.
 */
export class XattrClient {
  constructor() {
    this.proc = null;
    this.nextId = 1;
    this.pending = new Map();
    this.broken = false;
  }

  start() {
    if (this.proc || this.broken) return;
    const proc = spawn(PYTHON, [helperPath("xattr_helper.py")], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    proc.on("error", () => {
      this.broken = true;
      this.failAll(new Error("xattr helper unavailable"));
    });
    proc.on("exit", () => {
      this.proc = null;
      this.failAll(new Error("xattr helper exited"));
    });
    proc.stdin.on("error", () => {});
    readline.createInterface({ input: proc.stdout }).on("line", (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      p(msg);
    });
    this.proc = proc;
  }

  failAll(err) {
    for (const [, p] of this.pending) p({ error: err.message, errno: "" });
    this.pending.clear();
  }

  request(body) {
    this.start();
    if (!this.proc) return Promise.resolve({ error: "xattr helper unavailable", errno: "" });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.proc.stdin.write(JSON.stringify({ id, ...body }) + "\n");
    });
  }

  /** Metadata (user.e2b.* without the prefix) of each real path. */
  async get(paths) {
    if (paths.length === 0) return [];
    const r = await this.request({ op: "get", paths });
    return r.result ?? paths.map(() => ({}));
  }

  /** Replaces the metadata of one real path; throws an Error with .code. */
  async set(path, meta) {
    const r = await this.request({ op: "set", path, meta });
    if (r.error) {
      const e = new Error(r.error);
      e.code = r.errno || undefined;
      throw e;
    }
  }

  stop() {
    if (this.proc) {
      this.proc.stdin.end();
      this.proc.kill("SIGKILL");
    }
  }
}
