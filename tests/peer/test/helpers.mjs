// Test support: start/stop a peer server on port 0 with a fresh root, make
// clients for it (the e2b SDK in debug mode, connect-node transports).
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import readline from "node:readline";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { Process } from "../gen/process_pb.js";
import { Filesystem } from "../gen/filesystem_pb.js";

const serverPath = join(dirname(dirname(fileURLToPath(import.meta.url))), "server.mjs");

/**
 * Starts `server.mjs` with its own temporary root. Options: http ("h1" |
 * "both"), token, defaultUser, env (extra variables, e.g. PEER_SEED). Returns {port, url, root, proc, stop()}.
 */
export async function startServer({ http = "h1", token, defaultUser, env = {} } = {}) {
  // PEER_TEST_EXTERNAL=host:port (+ PEER_TEST_EXTERNAL_ROOT, the directory
  // it sees as "/") runs a suite against a server started by hand, such as
  // a real envd. Options are not applied; say so every time.
  const ext = process.env.PEER_TEST_EXTERNAL;
  if (ext) {
    process.stderr.write(`*** PEER_TEST_EXTERNAL: testing ${ext}, not a reference server (http=${http} not applied) ***\n`);
    return {
      port: Number(ext.split(":").pop()),
      url: `http://${ext}`,
      root: process.env.PEER_TEST_EXTERNAL_ROOT ?? "",
      proc: null,
      stderr: () => "",
      async stop() {},
    };
  }
  const root = await mkdtemp(join(tmpdir(), "envd-peer-"));
  const args = [serverPath, "--port", "0", "--host", "127.0.0.1", "--root", root, "--http", http];
  if (token) args.push("--token", token);
  if (defaultUser) args.push("--default-user", defaultUser);
  const proc = spawn(process.execPath, args, {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, PEER_EXIT_ON_STDIN_EOF: "1", ...env },
  });
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 10_000);
    proc.once("exit", (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    readline.createInterface({ input: proc.stdout }).once("line", (line) => {
      clearTimeout(timer);
      const m = /^listening (\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    root,
    proc,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** An e2b Sandbox for this server, in the SDK's debug mode. */
export async function e2bSandbox(server) {
  process.env.E2B_DEBUG = "true";
  process.env.E2B_SANDBOX_URL = server.url;
  const { Sandbox } = await import("e2b");
  return Sandbox.create();
}

/**
 * connect-node clients for both services. kind: "connect-json",
 * "connect-binary", "grpc" (h2c), "grpc-web".
 */
export function rpcClients(server, kind = "connect-binary", extra = {}) {
  let transport;
  if (kind === "grpc") {
    transport = createGrpcTransport({ baseUrl: server.url, httpVersion: "2", ...extra });
  } else if (kind === "grpc-web") {
    transport = createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", ...extra });
  } else {
    transport = createConnectTransport({
      baseUrl: server.url,
      httpVersion: "1.1",
      useBinaryFormat: kind === "connect-binary",
      ...extra,
    });
  }
  return {
    process: createClient(Process, transport),
    fs: createClient(Filesystem, transport),
  };
}

/** Basic-auth header selecting a user, as the SDKs send it. */
export function userHeader(name) {
  return { Authorization: "Basic " + Buffer.from(`${name}:`).toString("base64") };
}

/** Collects a process event stream into {pid, out, err, pty, end, keepalives, events}. */
export async function collect(stream, { onStart } = {}) {
  const r = { pid: 0, out: "", err: "", pty: "", end: null, keepalives: 0, events: [] };
  for await (const msg of stream) {
    const ev = msg.event.event;
    r.events.push(ev.case);
    if (ev.case === "start") {
      r.pid = ev.value.pid;
      await onStart?.(ev.value.pid);
    } else if (ev.case === "data") {
      const o = ev.value.output;
      r[o.case === "stdout" ? "out" : o.case === "stderr" ? "err" : "pty"] += Buffer.from(o.value).toString();
    } else if (ev.case === "keepalive") {
      r.keepalives++;
    } else if (ev.case === "end") {
      r.end = ev.value;
    }
  }
  return r;
}

/** `bash -c` StartRequest the way the SDKs build it. */
export function bashStart(command, extra = {}) {
  return { process: { cmd: "/bin/bash", args: ["-l", "-c", command], envs: {} }, ...extra };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** True while a pid is alive (signal 0). */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(cond, { timeout = 5000, step = 20 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await sleep(step);
  }
}
