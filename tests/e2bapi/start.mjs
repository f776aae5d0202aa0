// Starts tests/e2bapi/stub.mjs for node tests: resolves to { url, port,
// call(method, path, body) -> JSON, live() -> number, stop() }.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const STUB = path.join(path.dirname(fileURLToPath(import.meta.url)), "stub.mjs");

export async function startE2bStub(domain, args = []) {
  const child = spawn(process.execPath, [STUB, "--port", "0", "--domain", domain, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`e2b stub did not start: ${out}`)), 20000);
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
      reject(new Error(`e2b stub exited with ${code}: ${out}`));
    });
  });
  child.removeAllListeners("exit");
  const url = `http://127.0.0.1:${port}`;
  const call = async (method, p, body) => {
    const r = await fetch(url + p, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    return r.json();
  };
  return {
    url,
    port,
    call,
    live: async () => (await call("GET", "/_stub/live")).live,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
    },
  };
}
