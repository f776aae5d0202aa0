// filesystem.Filesystem with envd's semantics (spec §8). The server acts as
// root on real files under the sandbox root; the user only decides the home
// directory for relative paths and the owner of what gets created.
import fs from "node:fs/promises";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import path from "node:path";
import readline from "node:readline";
import { EventType } from "../gen/filesystem_pb.js";
import { Code, ConnectError, errnoText, pathError, linkError } from "./errors.mjs";
import { entryInfo, entryFromStat, fillMetadata } from "./entry.mjs";
import { Subscriber, keepaliveMs } from "./subscriber.mjs";
import { PYTHON, helperPath } from "./pyhelpers.mjs";
import { authUser, dropConnection, abortError } from "./rpc-util.mjs";

const NETWORK_FS_MAGIC = new Set([0x6969, 0xff534d42, 0x517b, 0xfe534d42, 0x65735546]);

function resolveOrInvalid(sb, p, user) {
  try {
    return sb.resolve(p, user);
  } catch (err) {
    throw new ConnectError(err.message, Code.InvalidArgument);
  }
}

/** Go's filepath.Dir. */
function goDir(p) {
  const d = path.posix.dirname(p);
  return path.posix.normalize(d);
}

/**
 * envd's EnsureDirs: creates every missing directory of vdir (mode 0755,
 * chowned to the user); a component that is a file is an error.
 */
export async function ensureDirs(sb, vdir, user) {
  const subpaths = [];
  let p = vdir;
  for (;;) {
    subpaths.push(p);
    p = goDir(p);
    if (p === "/" || subpaths.length > 4096) break;
  }
  subpaths.reverse();
  for (const sub of subpaths) {
    const real = sb.toReal(sub);
    let st = null;
    try {
      st = await fs.stat(real);
    } catch (err) {
      if (err.code !== "ENOENT") {
        throw new Error(`failed to stat directory: ${pathError("stat", sub, err)}`);
      }
    }
    if (st === null) {
      try {
        await fs.mkdir(real, { mode: 0o755 });
      } catch (err) {
        throw new Error(`failed to create directory: ${pathError("mkdir", sub, err)}`);
      }
      await chownToUser(sb, real, user).catch((err) => {
        throw new Error(`failed to chown directory: ${pathError("chown", sub, err)}`);
      });
      continue;
    }
    if (!st.isDirectory()) throw new Error(`path is a file: ${sub}`);
  }
}

/** chown to the user's real uid/gid when there is one and we may. */
export async function chownToUser(sb, real, user) {
  if (user.uid === null || typeof process.getuid !== "function" || process.getuid() !== 0) return;
  await fs.chown(real, user.uid, user.gid);
}

/** Checks shared by WatchDir and CreateWatcher; returns the virtual path. */
async function checkWatchable(sb, req, user) {
  const vpath = resolveOrInvalid(sb, req.path, user);
  const real = sb.toReal(vpath);
  let st;
  try {
    st = await fs.stat(real);
  } catch (err) {
    if (err.code === "ENOENT") {
      throw new ConnectError(`path ${vpath} not found: ${pathError("stat", vpath, err)}`, Code.NotFound);
    }
    throw new ConnectError(`error statting path ${vpath}: ${pathError("stat", vpath, err)}`, Code.Internal);
  }
  if (!st.isDirectory()) {
    // envd wraps a nil error here, so Go prints its %!w(<nil>) marker.
    throw new ConnectError(`path ${vpath} not a directory: %!w(<nil>)`, Code.InvalidArgument);
  }
  let sfs;
  try {
    sfs = await fs.statfs(real);
  } catch (err) {
    throw new ConnectError(
      `error checking mount status: failed to statfs ${vpath}: ${errnoText(err)}`,
      Code.Internal,
    );
  }
  if (NETWORK_FS_MAGIC.has(Number(sfs.type)) && !req.allowNetworkMounts) {
    throw new ConnectError(`cannot watch path on network filesystem: ${vpath}`, Code.InvalidArgument);
  }
  return vpath;
}

const OP_TYPES = {
  CREATE: EventType.CREATE,
  RENAME: EventType.RENAME,
  CHMOD: EventType.CHMOD,
  WRITE: EventType.WRITE,
  REMOVE: EventType.REMOVE,
};

/**
 * One inotify watch (via inotify_helper.py) turned into FilesystemEvents,
 * delivered in order to onEvent; onError gets the first failure.
 */
class DirWatch {
  constructor(sb, vpath, { recursive, includeEntry }) {
    this.sb = sb;
    this.vpath = vpath;
    this.real = sb.toReal(vpath);
    this.recursive = recursive;
    this.includeEntry = includeEntry;
    this.chain = Promise.resolve();
    this.onEvent = () => {};
    this.onError = () => {};
    this.proc = null;
    this.stopped = false;
  }

  start() {
    return new Promise((resolve, reject) => {
      const proc = spawn(
        PYTHON,
        ["-I", helperPath("inotify_helper.py"), this.real, this.recursive ? "1" : "0"],
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      this.proc = proc;
      let ready = false;
      proc.on("error", (err) => {
        if (!ready) reject(new ConnectError(`error creating watcher: ${err.message}`, Code.Internal));
      });
      proc.stdin.on("error", () => {});
      proc.on("exit", () => {
        if (!ready) {
          reject(new ConnectError("error creating watcher: helper exited", Code.Internal));
        } else if (!this.stopped) {
          this.fail("watcher event channel closed");
        }
      });
      readline.createInterface({ input: proc.stdout }).on("line", (line) => {
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          return;
        }
        if (msg.ready) {
          ready = true;
          resolve();
        } else if (msg.error) {
          if (!ready) {
            ready = true;
            reject(new ConnectError(msg.error, Code.Internal));
          } else {
            this.fail(`watcher error: ${msg.error}`);
          }
        } else if (msg.path) {
          this.chain = this.chain.then(() => this.deliver(msg)).catch(() => {});
        }
      });
    });
  }

  fail(text) {
    if (this.stopped) return;
    this.chain = this.chain.then(() => this.onError(new ConnectError(text, Code.Internal)));
  }

  async deliver(msg) {
    if (this.stopped) return;
    const rel = path.relative(this.real, msg.path) || ".";
    const vfull = path.posix.join(this.vpath, rel);
    for (const op of msg.ops) {
      const ev = { name: rel, type: OP_TYPES[op] };
      if (this.includeEntry && (op === "CREATE" || op === "WRITE" || op === "CHMOD")) {
        try {
          const st = await fs.lstat(this.sb.toReal(vfull), { bigint: true });
          const e = await entryFromStat(this.sb, vfull, st);
          await fillMetadata(this.sb, [e]);
          ev.entry = e;
        } catch {
          // gone already: no entry
        }
      }
      if (!this.stopped) this.onEvent(ev);
    }
  }

  stop() {
    this.stopped = true;
    if (this.proc) {
      this.proc.stdin.end();
      this.proc.kill("SIGKILL");
    }
  }
}

function watcherId() {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let id = "w";
  for (let i = 0; i < 20; i++) id += alphabet[randomInt(alphabet.length)];
  return id;
}

/** Lexical, depth-first, pre-order walk like Go's filepath.WalkDir. */
async function walk(sb, vdir, rdir, depth) {
  const entries = [];
  async function visit(vcur, rcur, level) {
    let names;
    try {
      names = await fs.readdir(rcur);
    } catch (err) {
      if (err.code === "ENOENT" && level > 1) return;
      throw new ConnectError(
        `error reading directory ${sb.toVirtual(rdir)}: ${pathError("open", sb.toVirtual(rcur), err)}`,
        Code.Internal,
      );
    }
    names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const rpath = path.join(rcur, name);
      const vpath = path.posix.join(vcur, name);
      let st;
      try {
        st = await fs.lstat(rpath, { bigint: true });
      } catch {
        continue; // vanished during the walk
      }
      entries.push(await entryFromStat(sb, vpath, st));
      if (st.isDirectory() && level < depth) await visit(vpath, rpath, level + 1);
    }
  }
  await visit(vdir, rdir, 1);
  return fillMetadata(sb, entries);
}

export class WatcherRegistry {
  constructor() {
    this.watchers = new Map();
    this.streams = new Set();
  }

  stopAll() {
    for (const w of this.watchers.values()) w.watch.stop();
    for (const w of this.streams) w.stop();
  }
}

/**
 * Go's os.Rename on Unix (os/file_unix.go rename): an existing directory
 * (not a symlink to one) as destination fails with EEXIST before rename(2)
 * is tried, even when empty, unless it is the source itself under another
 * name; a missing source is reported first.
 */
async function goRename(src, dst) {
  let dstSt = null;
  try {
    dstSt = await fs.lstat(dst);
  } catch {
    // no destination: rename(2) decides
  }
  if (dstSt?.isDirectory()) {
    const srcSt = await fs.lstat(src); // its error (ENOENT...) wins
    if (src === dst || srcSt.dev !== dstSt.dev || srcSt.ino !== dstSt.ino) {
      throw Object.assign(new Error("file exists"), { code: "EEXIST" });
    }
  }
  await fs.rename(src, dst);
}

export function filesystemService(sb, watchers) {
  return {
    async stat(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const vpath = resolveOrInvalid(sb, req.path, user);
      return { entry: await entryInfo(sb, vpath) };
    },

    async makeDir(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const vpath = resolveOrInvalid(sb, req.path, user);
      let st = null;
      try {
        st = await fs.stat(sb.toReal(vpath));
      } catch (err) {
        if (err.code !== "ENOENT") {
          throw new ConnectError(`error getting file info: ${pathError("stat", vpath, err)}`, Code.Internal);
        }
      }
      if (st) {
        if (st.isDirectory()) {
          throw new ConnectError(`directory already exists: ${vpath}`, Code.AlreadyExists);
        }
        throw new ConnectError(
          `path already exists but it is not a directory: ${vpath}`,
          Code.InvalidArgument,
        );
      }
      try {
        await ensureDirs(sb, vpath, user);
      } catch (err) {
        throw new ConnectError(err.message, Code.Internal);
      }
      return { entry: await entryInfo(sb, vpath) };
    },

    async move(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const src = resolveOrInvalid(sb, req.source, user);
      const dst = resolveOrInvalid(sb, req.destination, user);
      try {
        await ensureDirs(sb, goDir(dst), user);
      } catch (err) {
        throw new ConnectError(err.message, Code.Internal);
      }
      try {
        await goRename(sb.toReal(src), sb.toReal(dst));
      } catch (err) {
        const text = linkError("rename", src, dst, err);
        if (err.code === "ENOENT") {
          throw new ConnectError(`source file not found: ${text}`, Code.NotFound);
        }
        throw new ConnectError(`error renaming: ${text}`, Code.Internal);
      }
      return { entry: await entryInfo(sb, dst) };
    },

    async listDir(req, ctx) {
      const depth = req.depth === 0 ? 1 : req.depth;
      const user = authUser(sb, ctx.requestHeader);
      const vpath = resolveOrInvalid(sb, req.path, user);
      let resolved;
      try {
        resolved = await fs.realpath(sb.toReal(vpath));
      } catch (err) {
        if (err.code === "ENOENT") {
          throw new ConnectError(`path not found: ${pathError("lstat", vpath, err)}`, Code.NotFound);
        }
        if (err.code === "ELOOP") {
          throw new ConnectError(
            `cyclic symlink or chain >255 links at ${JSON.stringify(vpath)}`,
            Code.FailedPrecondition,
          );
        }
        throw new ConnectError(`error resolving symlink: ${pathError("lstat", vpath, err)}`, Code.Internal);
      }
      let st;
      try {
        st = await fs.stat(resolved);
      } catch (err) {
        const text = pathError("stat", sb.toVirtual(resolved), err);
        if (err.code === "ENOENT") throw new ConnectError(`directory not found: ${text}`, Code.NotFound);
        throw new ConnectError(`error getting file info: ${text}`, Code.Internal);
      }
      if (!st.isDirectory()) {
        throw new ConnectError(`path is not a directory: ${sb.toVirtual(resolved)}`, Code.InvalidArgument);
      }
      const entries = await walk(sb, path.posix.normalize(vpath), resolved, depth);
      return { entries };
    },

    async remove(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const vpath = resolveOrInvalid(sb, req.path, user);
      // Go's os.RemoveAll refuses a path ending in "/." (rmdir would).
      if (vpath === "." || vpath.endsWith("/.")) {
        throw new ConnectError(
          `error removing file or directory: RemoveAll ${vpath}: invalid argument`,
          Code.Internal,
        );
      }
      // A ".." is resolved lexically here (a deviation: Go's RemoveAll hands
      // it to the kernel), so that a recursive delete cannot climb.
      const real = vpath.split("/").includes("..") ? sb.toReal(path.posix.normalize(vpath)) : sb.toReal(vpath);
      if (real === sb.root || real === sb.root + "/") {
        throw new ConnectError(
          `error removing file or directory: unlinkat ${vpath}: device or resource busy`,
          Code.Internal,
        );
      }
      try {
        await fs.rm(real, { recursive: true, force: true });
      } catch (err) {
        throw new ConnectError(
          `error removing file or directory: ${pathError("unlinkat", vpath, err)}`,
          Code.Internal,
        );
      }
      return {};
    },

    async *watchDir(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const vpath = await checkWatchable(sb, req, user);
      const kaMs = keepaliveMs(ctx.requestHeader);
      const watch = new DirWatch(sb, vpath, {
        recursive: req.recursive,
        includeEntry: req.includeEntry,
      });
      const queue = new Subscriber();
      let failure = null;
      watch.onEvent = (ev) => queue.push(ev);
      watch.onError = (err) => {
        failure = err;
        queue.close();
      };
      watchers.streams.add(watch);
      try {
        await watch.start();
        yield { event: { case: "start", value: {} } };
        if (kaMs === null) dropConnection(ctx, "non-positive Keepalive-Ping-Interval");
        let deadline = Date.now() + kaMs;
        for (;;) {
          const r = await queue.next(deadline - Date.now(), ctx.signal);
          if (r.aborted) throw abortError(ctx);
          if (r.timeout) {
            yield { event: { case: "keepalive", value: {} } };
            deadline = Date.now() + kaMs;
            continue;
          }
          if (r.done) throw failure ?? new ConnectError("watcher closed", Code.Internal);
          yield { event: { case: "filesystem", value: r.item } };
          deadline = Date.now() + kaMs;
        }
      } finally {
        watch.stop();
        watchers.streams.delete(watch);
      }
    },

    async createWatcher(req, ctx) {
      const user = authUser(sb, ctx.requestHeader);
      const vpath = await checkWatchable(sb, req, user);
      const watch = new DirWatch(sb, vpath, {
        recursive: req.recursive,
        includeEntry: req.includeEntry,
      });
      const state = { watch, events: [], error: null };
      watch.onEvent = (ev) => state.events.push(ev);
      watch.onError = (err) => {
        state.error = err;
      };
      await watch.start();
      const id = watcherId();
      watchers.watchers.set(id, state);
      return { watcherId: id };
    },

    async getWatcherEvents(req) {
      const state = watchers.watchers.get(req.watcherId);
      if (!state) {
        throw new ConnectError(`watcher with id ${req.watcherId} not found`, Code.NotFound);
      }
      if (state.error) throw state.error;
      const events = state.events;
      state.events = [];
      return { events };
    },

    async removeWatcher(req) {
      const state = watchers.watchers.get(req.watcherId);
      if (!state) {
        throw new ConnectError(`watcher with id ${req.watcherId} not found`, Code.NotFound);
      }
      state.watch.stop();
      watchers.watchers.delete(req.watcherId);
      return {};
    },
  };
}
