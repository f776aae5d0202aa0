// Where the reference server must behave like envd 0.6.13's filesystem
// service (issue 12): paths reach the kernel as given, os.Rename's rule for
// directory destinations. Each test names the envd/Go function it follows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { FileType } from "../gen/filesystem_pb.js";
import { startServer, rpcClients } from "./helpers.mjs";

let server;
let rpc;
let real;

before(async () => {
  server = await startServer({ http: "h1" });
  rpc = rpcClients(server, "connect-binary").fs;
  real = (p) => server.root + p;
  await fs.mkdir(real("/m/src-dir"), { recursive: true });
  await fs.mkdir(real("/m/empty-dst"));
  await fs.writeFile(real("/m/f.txt"), "x");
  await fs.mkdir(real("/p/d"), { recursive: true });
  await fs.mkdir(real("/x/y/z"), { recursive: true });
  // Relative, so that it resolves the same inside a chroot (PEER_TEST_EXTERNAL).
  await fs.symlink("../x/y/z", real("/p/l"));
});
after(async () => {
  await server?.stop();
});

async function rejectsWith(promise, code, message) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
    assert.equal(err.code, code, `code ${Code[err.code]}: ${err.rawMessage}`);
    if (message !== undefined) assert.equal(err.rawMessage, message);
    return true;
  });
}

test("Move onto an existing (even empty) directory fails: os.Rename's EEXIST", async () => {
  await rejectsWith(
    rpc.move({ source: "/m/src-dir", destination: "/m/empty-dst" }),
    Code.Internal,
    "error renaming: rename /m/src-dir /m/empty-dst: file exists",
  );
  await rejectsWith(
    rpc.move({ source: "/m/f.txt", destination: "/m/empty-dst" }),
    Code.Internal,
    "error renaming: rename /m/f.txt /m/empty-dst: file exists",
  );
  // A missing source is reported first (not_found), as os.Rename does.
  await rejectsWith(
    rpc.move({ source: "/m/nope", destination: "/m/empty-dst" }),
    Code.NotFound,
    "source file not found: rename /m/nope /m/empty-dst: no such file or directory",
  );
  assert.ok((await fs.stat(real("/m/src-dir"))).isDirectory());
  // A file destination is replaced, as rename(2) does.
  await fs.writeFile(real("/m/g.txt"), "g");
  await rpc.move({ source: "/m/g.txt", destination: "/m/f2.txt" });
  assert.equal(await fs.readFile(real("/m/f2.txt"), "utf8"), "g");
});

test("Stat of a file with a trailing slash is ENOTDIR (no lexical cleaning)", async () => {
  await rejectsWith(
    rpc.stat({ path: "/m/f.txt/" }),
    Code.Internal,
    "error getting file info: lstat /m/f.txt/: not a directory",
  );
  const d = await rpc.stat({ path: "/m/src-dir/" });
  assert.equal(d.entry.type, FileType.DIRECTORY);
});

test("Remove of a path ending in /. is EINVAL (os.RemoveAll) and removes nothing", async () => {
  await rejectsWith(
    rpc.remove({ path: "/p/d/." }),
    Code.Internal,
    "error removing file or directory: RemoveAll /p/d/.: invalid argument",
  );
  assert.ok((await fs.stat(real("/p/d"))).isDirectory());
});

test(".. after a symlink resolves through the link, as the kernel does", async () => {
  // /p/l -> /x/y/z, so /p/l/.. is /x/y (lexically it would be /p).
  const { entries } = await rpc.listDir({ path: "/p/l/..", depth: 1 });
  assert.deepEqual(
    entries.map((e) => e.name),
    ["z"],
  );
  const st = await rpc.stat({ path: "/p/l/../z" });
  assert.equal(st.entry.type, FileType.DIRECTORY);
});

test("a .. above / stays inside the root", async () => {
  const st = await rpc.stat({ path: "/../../m" });
  assert.equal(st.entry.type, FileType.DIRECTORY);
});
