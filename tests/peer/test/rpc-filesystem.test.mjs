// filesystem.Filesystem over the Connect JSON codec, checked against envd's
// semantics in spec §8: EntryInfo contents, error codes and messages, watch.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { FileType, EventType } from "../gen/filesystem_pb.js";
import { startServer, rpcClients, sleep, waitFor } from "./helpers.mjs";

let server;
let rpc;
let real; // real path of a virtual one

before(async () => {
  server = await startServer({ http: "h1" });
  rpc = rpcClients(server, "connect-json").fs;
  real = (p) => server.root + p;
  await fs.mkdir(real("/data/sub/deeper"), { recursive: true });
  await fs.writeFile(real("/data/a.txt"), "hello");
  await fs.writeFile(real("/data/sub/b.txt"), "bb");
  await fs.writeFile(real("/data/sub/deeper/c.txt"), "c");
  await fs.chmod(real("/data/a.txt"), 0o640);
  await fs.symlink(real("/data/sub"), real("/data/link-dir"));
  await fs.symlink(real("/data/missing"), real("/data/broken"));
  await fs.mkdir(real("/data/sticky"));
  await fs.chmod(real("/data/sticky"), 0o1777);
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

test("stat: EntryInfo fully filled for a file", async () => {
  const { entry } = await rpc.stat({ path: "/data/a.txt" });
  assert.equal(entry.name, "a.txt");
  assert.equal(entry.type, FileType.FILE);
  assert.equal(entry.path, "/data/a.txt");
  assert.equal(entry.size, 5n);
  assert.equal(entry.mode, 0o640);
  assert.equal(entry.permissions, "-rw-r-----");
  assert.equal(entry.owner, "root");
  assert.equal(entry.group, "root");
  const st = await fs.stat(real("/data/a.txt"));
  assert.equal(Number(entry.modifiedTime.seconds), Math.floor(st.mtimeMs / 1000));
  assert.equal(entry.symlinkTarget, undefined);
});

test("stat: symlinks, sticky dirs, relative and ~ paths", async () => {
  const link = (await rpc.stat({ path: "/data/link-dir" })).entry;
  assert.equal(link.type, FileType.DIRECTORY); // the target's type
  assert.equal(link.permissions, "Lrwxrwxrwx");
  assert.equal(link.symlinkTarget, "/data/sub");
  assert.equal(link.mode, 0o755);

  const broken = (await rpc.stat({ path: "/data/broken" })).entry;
  assert.equal(broken.type, FileType.UNSPECIFIED);
  assert.equal(broken.symlinkTarget, "/data/broken");
  assert.equal(broken.mode, 0);

  const sticky = (await rpc.stat({ path: "/data/sticky" })).entry;
  assert.equal(sticky.permissions, "dtrwxrwxrwx");
  assert.equal(sticky.mode, 0o777);

  await fs.writeFile(real("/root/rel.txt"), "r");
  assert.equal((await rpc.stat({ path: "rel.txt" })).entry.path, "/root/rel.txt");
  assert.equal((await rpc.stat({ path: "~/rel.txt" })).entry.path, "/root/rel.txt");
  await rejectsWith(
    rpc.stat({ path: "~other/x" }),
    Code.InvalidArgument,
    "failed to expand path '~other/x' for user 'root': cannot expand user-specific home dir",
  );
  await rejectsWith(
    rpc.stat({ path: "/data/nope" }),
    Code.NotFound,
    "file not found: lstat /data/nope: no such file or directory",
  );
});

test("listDir: depth, order, paths; errors", async () => {
  const one = await rpc.listDir({ path: "/data" });
  assert.deepEqual(
    one.entries.map((e) => e.name),
    ["a.txt", "broken", "link-dir", "sticky", "sub"],
  );
  const two = await rpc.listDir({ path: "/data", depth: 2 });
  assert.deepEqual(
    two.entries.map((e) => e.path),
    [
      "/data/a.txt",
      "/data/broken",
      "/data/link-dir", // a symlinked directory is listed, not descended
      "/data/sticky",
      "/data/sub",
      "/data/sub/b.txt",
      "/data/sub/deeper",
    ],
  );
  const three = await rpc.listDir({ path: "/data", depth: 3 });
  assert.ok(three.entries.some((e) => e.path === "/data/sub/deeper/c.txt"));
  // Listing through a symlink reports the requested path.
  const viaLink = await rpc.listDir({ path: "/data/link-dir" });
  assert.deepEqual(viaLink.entries.map((e) => e.path), ["/data/link-dir/b.txt", "/data/link-dir/deeper"]);
  await rejectsWith(rpc.listDir({ path: "/data/a.txt" }), Code.InvalidArgument, "path is not a directory: /data/a.txt");
  await rejectsWith(rpc.listDir({ path: "/data/none" }), Code.NotFound, /^path not found: /);
});

test("makeDir: creates parents, already_exists, not a directory", async () => {
  const { entry } = await rpc.makeDir({ path: "/made/x/y" });
  assert.equal(entry.path, "/made/x/y");
  assert.equal(entry.type, FileType.DIRECTORY);
  assert.ok((await fs.stat(real("/made/x/y"))).isDirectory());
  await rejectsWith(rpc.makeDir({ path: "/made/x/y" }), Code.AlreadyExists, "directory already exists: /made/x/y");
  await rejectsWith(
    rpc.makeDir({ path: "/data/a.txt" }),
    Code.InvalidArgument,
    "path already exists but it is not a directory: /data/a.txt",
  );
  await rejectsWith(rpc.makeDir({ path: "/data/a.txt/under" }), Code.Internal);
});

test("move: renames, creates parents, replaces; missing source", async () => {
  await fs.writeFile(real("/mv-src.txt"), "m");
  const { entry } = await rpc.move({ source: "/mv-src.txt", destination: "/mv/new/dst.txt" });
  assert.equal(entry.path, "/mv/new/dst.txt");
  assert.equal(entry.name, "dst.txt");
  assert.equal(await fs.readFile(real("/mv/new/dst.txt"), "utf8"), "m");
  await rejectsWith(
    rpc.move({ source: "/mv-src.txt", destination: "/x.txt" }),
    Code.NotFound,
    "source file not found: rename /mv-src.txt /x.txt: no such file or directory",
  );
});

test("remove: recursive, and a missing path is fine", async () => {
  await fs.mkdir(real("/rm/a/b"), { recursive: true });
  await fs.writeFile(real("/rm/a/b/f"), "");
  await rpc.remove({ path: "/rm" });
  await assert.rejects(fs.stat(real("/rm")));
  await rpc.remove({ path: "/rm" });
});

test("watchDir: recursive events with relative names and entries", async () => {
  await fs.mkdir(real("/w/sub"), { recursive: true });
  const ctl = new AbortController();
  const events = [];
  let started = false;
  const done = (async () => {
    try {
      for await (const msg of rpc.watchDir(
        { path: "/w", recursive: true, includeEntry: true },
        { signal: ctl.signal },
      )) {
        if (msg.event.case === "start") started = true;
        if (msg.event.case === "filesystem") events.push(msg.event.value);
      }
    } catch (err) {
      if (!ctl.signal.aborted) throw err;
    }
  })();
  assert.ok(await waitFor(() => started));
  await fs.writeFile(real("/w/sub/f.txt"), "x");
  // The entry is taken when the event is handled: let it be handled while
  // the file is still there.
  assert.ok(await waitFor(() => events.some((e) => e.type === EventType.WRITE)));
  await fs.rename(real("/w/sub/f.txt"), real("/w/g.txt"));
  await fs.rm(real("/w/g.txt"));
  assert.ok(await waitFor(() => events.some((e) => e.type === EventType.REMOVE)));
  ctl.abort();
  await done;
  const seen = events.map((e) => `${EventType[e.type]} ${e.name}`);
  assert.ok(seen.includes("CREATE sub/f.txt"), seen.join(", "));
  assert.ok(seen.includes("WRITE sub/f.txt"), seen.join(", "));
  assert.ok(seen.includes("RENAME sub/f.txt"), seen.join(", "));
  assert.ok(seen.includes("CREATE g.txt"), seen.join(", "));
  assert.ok(seen.includes("REMOVE g.txt"), seen.join(", "));
  const created = events.find((e) => e.type === EventType.CREATE && e.name === "sub/f.txt");
  assert.equal(created.entry?.path, "/w/sub/f.txt");
  assert.equal(events.find((e) => e.type === EventType.REMOVE).entry, undefined);
});

test("watchDir: keepalives, errors", async () => {
  await fs.mkdir(real("/w2"), { recursive: true });
  const ctl = new AbortController();
  let keepalives = 0;
  // Room for two 1 s keepalives on a busy machine.
  const t = setTimeout(() => ctl.abort(), 3500);
  try {
    for await (const msg of rpc.watchDir(
      { path: "/w2" },
      { signal: ctl.signal, headers: { "Keepalive-Ping-Interval": "1" } },
    )) {
      if (msg.event.case === "keepalive") keepalives++;
    }
  } catch {
    // aborted
  }
  clearTimeout(t);
  assert.ok(keepalives >= 2, `keepalives ${keepalives}`);
  await rejectsWith(
    (async () => {
      for await (const _ of rpc.watchDir({ path: "/nope" })) {
        // nothing
      }
    })(),
    Code.NotFound,
    "path /nope not found: stat /nope: no such file or directory",
  );
  await rejectsWith(
    (async () => {
      for await (const _ of rpc.watchDir({ path: "/data/a.txt" })) {
        // nothing
      }
    })(),
    Code.InvalidArgument,
    /^path \/data\/a.txt not a directory/,
  );
});

test("polling watchers: create, get events, remove", async () => {
  await fs.mkdir(real("/pw"), { recursive: true });
  const { watcherId } = await rpc.createWatcher({ path: "/pw" });
  assert.match(watcherId, /^w[a-z0-9]{20}$/);
  await fs.writeFile(real("/pw/one"), "1");
  await sleep(200);
  const got = [];
  assert.ok(
    await waitFor(async () => {
      got.push(...(await rpc.getWatcherEvents({ watcherId })).events);
      return got.some((e) => e.type === EventType.WRITE);
    }),
  );
  assert.equal(got[0].name, "one");
  assert.equal(got[0].type, EventType.CREATE);
  assert.deepEqual((await rpc.getWatcherEvents({ watcherId })).events, []); // drained
  await rpc.removeWatcher({ watcherId });
  await rejectsWith(rpc.getWatcherEvents({ watcherId }), Code.NotFound, `watcher with id ${watcherId} not found`);
  await rejectsWith(rpc.removeWatcher({ watcherId }), Code.NotFound);
  await rejectsWith(rpc.createWatcher({ path: "/nope" }), Code.NotFound);
});
