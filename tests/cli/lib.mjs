// Shared harness of envdctl's end-to-end tests: a reference server per
// test file (tests/peer/server.mjs on loopback, its own root directory) and
// a runner for the built envdctl. A missing binary or a server that does
// not start fails the test; nothing is skipped.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const SOURCE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const ENVDCTL = process.env.ENVDCTL || path.join(SOURCE_DIR, "build/envdctl");

/**
 * Starts a reference server; resolves to { port, root, domain, stop() }.
 * env: more environment for it (its test hooks, PEER_*).
 */
export async function startServer({ token = null, http = "both", env = {} } = {}) {
  if (!existsSync(ENVDCTL)) throw new Error(`envdctl not found at ${ENVDCTL} (set ENVDCTL)`);
  const root = mkdtempSync(path.join(tmpdir(), "envdctl-test-"));
  const args = [path.join(SOURCE_DIR, "tests/peer/server.mjs"), "--port", "0", "--host", "127.0.0.1",
    "--root", root, "--http", http];
  if (token) args.push("--token", token);
  // The server stops when its stdin closes, so a crashed test leaves none.
  const child = spawn(process.execPath, args, {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...env, PEER_EXIT_ON_STDIN_EOF: "1" },
  });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /^listening (\d+)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${out}`));
    });
  });
  child.removeAllListeners("exit");
  child.stdout.resume();
  return {
    port,
    root,
    domain: `127.0.0.1:${port}`,
    child,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Runs envdctl with args; resolves to { code, signal, stdout, stderr }
 * (stdout as a Buffer in .stdoutBuf). opts: input (string/Buffer written
 * to stdin, then EOF), env, timeoutMs (the process is killed and the test
 * fails past it), cwd.
 */
export function envdctl(args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(ENVDCTL, args, {
      env: { ...process.env, ENVD_DOMAIN: "", ENVD_SANDBOX_ID: "", ENVD_RUNTIME_TOKEN: "", ...opts.env },
      cwd: opts.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out = [];
    const err = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`envdctl ${args.join(" ")} did not finish in ${opts.timeoutMs ?? 30000} ms`));
    }, opts.timeoutMs ?? 30000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBuf.toString(), stdoutBuf, stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on("error", () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else if (!opts.keepStdin) child.stdin.end();
    if (opts.onSpawn) opts.onSpawn(child);
  });
}

/** A temporary local directory, removed by the returned function. */
export function tempDir(prefix = "envdctl-local-") {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts the Kubernetes API stub (tests/k8s/stub.mjs) with a fresh test PKI
 * and writes a kubeconfig for it (bearer token tok-alice); resolves to
 * { port, kubeconfig, stop() }.
 */
export async function startK8sStub() {
  const dir = mkdtempSync(path.join(tmpdir(), "envdctl-k8s-"));
  const gen = spawn("sh", [path.join(SOURCE_DIR, "tests/k8s/gen-certs.sh"), dir], { stdio: "inherit" });
  const genCode = await new Promise((r) => gen.on("exit", r));
  if (genCode !== 0) throw new Error(`gen-certs.sh failed (${genCode})`);
  const child = spawn(process.execPath, [path.join(SOURCE_DIR, "tests/k8s/stub.mjs"), "--certs", dir,
    "--port", "0", "--host", "127.0.0.1"], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`k8s stub did not start: ${out}`)), 20000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /^listening (\d+)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`k8s stub exited with ${code}: ${out}`)));
  });
  child.removeAllListeners("exit");
  const kubeconfig = path.join(dir, "kubeconfig");
  writeFileSync(kubeconfig, [
    "apiVersion: v1", "kind: Config", "clusters:", "- name: stub", "  cluster:",
    `    server: https://127.0.0.1:${port}`, `    certificate-authority: ${dir}/ca.crt`,
    "users:", "- name: tester", "  user:", "    token: tok-alice", "contexts:",
    "- name: test", "  context: {cluster: stub, user: tester}", "current-context: test", ""].join("\n"));
  return {
    port,
    dir,
    kubeconfig,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
