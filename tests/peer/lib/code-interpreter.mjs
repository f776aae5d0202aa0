// The code interpreter E2B runs beside envd (port 49999), as its wire format
// reads in e2b-dev/code-interpreter template/server:
//
//   POST /execute {code, language?, context_id?, env_vars?}  (main.py)
//     400 text/plain when both language and context_id are given, 404
//     text/plain for an unknown context; else 200 and a stream of lines,
//     each json.dumps(event) + "\n" (stream.py: Python's separators ", " and
//     ": ", non-ASCII escaped), the last '{"type": "end_of_execution"}'.
//     Events (messaging.py, fields without None: model_dump(exclude_none)):
//       {"type": "number_of_executions", "execution_count": n}   first
//       {"type": "stdout"|"stderr", "text", "timestamp"}
//       {"type": "result", "text"?, "html"?, ..., "extra": {...}, "is_main_result"}
//       {"type": "error", "name", "value", "traceback"}              at most one
//       {"type": "keepalive"}                         after 5 s of silence
//   POST /contexts {language = "python", cwd = "/home/user"} -> {id, language, cwd}
//   GET /contexts -> [{id, language, cwd}, ...]
//   DELETE /contexts/{id}, POST /contexts/{id}/restart -> null; 404 text/plain
//
// Each context is a python3 process running py/code_kernel.py (a stand-in
// for a Jupyter kernel: persistent namespace, stdout/stderr, the value of
// a final expression, exceptions with tracebacks). Only python has a
// kernel here; another language fails to create as a missing Jupyter
// kernel does (500). The server's default python context is created on
// first use (E2B's creates python and javascript ones at start-up).
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import readline from "node:readline";
import { PYTHON, helperPath } from "./pyhelpers.mjs";

const KEEPALIVE_MS = Number(process.env.PEER_CODE_KEEPALIVE_MS) || 5000;
const BODY_MAX = 64 << 20;

/** Python's json.dumps with its defaults (ensure_ascii, ", " and ": "). */
export function pyDumps(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : JSON.stringify(v);
  if (typeof v === "string") {
    let out = '"';
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      const ch = v[i];
      if (ch === '"') out += '\\"';
      else if (ch === "\\") out += "\\\\";
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else if (ch === "\b") out += "\\b";
      else if (ch === "\f") out += "\\f";
      else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
      else out += ch;
    }
    return out + '"';
  }
  if (Array.isArray(v)) return "[" + v.map(pyDumps).join(", ") + "]";
  return "{" + Object.entries(v).map(([k, x]) => pyDumps(k) + ": " + pyDumps(x)).join(", ") + "}";
}

/** A Jupyter MIME bundle as E2B's Result model (api/models/result.py). */
function resultEvent(isMain, bundle) {
  const data = { ...bundle };
  const take = (mime) => {
    const v = data[mime];
    delete data[mime];
    return v ?? null;
  };
  let text = take("text/plain");
  if (text && text.length >= 2 && ((text[0] === "'" && text.at(-1) === "'") || (text[0] === '"' && text.at(-1) === '"')))
    text = text.slice(1, -1);
  const ev = {
    type: "result",
    text,
    html: take("text/html"),
    markdown: take("text/markdown"),
    svg: take("image/svg+xml"),
    png: take("image/png"),
    jpeg: take("image/jpeg"),
    pdf: take("application/pdf"),
    latex: take("text/latex"),
    json: take("application/json"),
    javascript: take("application/javascript"),
    data: take("e2b/data"),
    chart: take("e2b/chart"),
  };
  ev.extra = data;
  ev.is_main_result = isMain;
  for (const k of Object.keys(ev)) if (ev[k] === null) delete ev[k];
  return ev;
}

function normalizeLanguage(l) {
  if (!l) return "python";
  l = l.toLowerCase().trim();
  return l === "js" ? "javascript" : l === "ts" ? "typescript" : l;
}

class Context {
  constructor(sb, id, language, cwd) {
    Object.assign(this, { sb, id, language, cwd });
    this.queue = Promise.resolve();
    this.current = null; // the execution's event sink
    this.start();
  }

  start() {
    const real = this.sb.toReal(this.cwd);
    mkdirSync(real, { recursive: true });
    this.proc = spawn(PYTHON, [helperPath("code_kernel.py")], {
      cwd: real,
      stdio: ["pipe", "inherit", "inherit", "pipe"],
      env: { ...process.env, PYTHONUNBUFFERED: "1" },
    });
    const proc = this.proc;
    proc.on("error", () => {});
    proc.stdin.on("error", () => {});
    readline.createInterface({ input: proc.stdio[3] }).on("line", (line) => {
      if (this.proc === proc) this.current?.(JSON.parse(line));
    });
    proc.on("exit", () => {
      // A kernel that died mid-execution: E2B's server reports the lost
      // connection as an error, then the end (messaging.py).
      if (this.proc !== proc || !this.current) return;
      this.current({ kind: "error", ename: "WebSocketError", evalue: "The connections was lost, rerun the code to get the results", traceback: [] });
      this.current({ kind: "idle" });
    });
  }

  stop() {
    const proc = this.proc;
    this.proc = null;
    proc?.kill("SIGKILL");
  }

  restart() {
    this.stop();
    this.start();
  }

  /** Runs code; sink(msg) gets the kernel's messages until "idle". */
  execute(code, env, sink, signal) {
    const run = () =>
      new Promise((resolve) => {
        if (signal.aborted || !this.proc) return resolve();
        this.current = (msg) => {
          sink(msg);
          if (msg.kind === "idle") {
            this.current = null;
            signal.removeEventListener("abort", interrupt);
            resolve();
          }
        };
        // The client went away: interrupt the kernel (E2B's #213).
        const interrupt = () => this.proc?.kill("SIGINT");
        signal.addEventListener("abort", interrupt, { once: true });
        this.proc.stdin.write(JSON.stringify({ code, env: env ?? {} }) + "\n");
      });
    // Executions in one context run one at a time (messaging.py's lock).
    this.queue = this.queue.then(run, run);
    return this.queue;
  }

  toJSON() {
    return { id: this.id, language: this.language, cwd: this.cwd };
  }
}

export class CodeInterpreter {
  constructor(sandbox) {
    this.sb = sandbox;
    this.contexts = new Map();
    this.defaults = new Map(); // language -> context id
  }

  shutdown() {
    for (const c of this.contexts.values()) c.stop();
    this.contexts.clear();
  }

  create(language, cwd) {
    if (language !== "python") {
      const e = new Error(`Failed to create context: {"message": "No such kernel named ${language}", "reason": null}`);
      e.status = 500;
      throw e;
    }
    const ctx = new Context(this.sb, randomUUID(), language, cwd);
    this.contexts.set(ctx.id, ctx);
    return ctx;
  }

  defaultContext(language) {
    const id = this.defaults.get(language);
    if (id && this.contexts.has(id)) return this.contexts.get(id);
    const ctx = this.create(language, "/home/user");
    this.defaults.set(language, ctx.id);
    return ctx;
  }

  handle(req, res) {
    const path = (req.url ?? "/").split("?")[0];
    readBody(req)
      .then((body) => this.route(req.method, path, body, req, res))
      .catch((err) => text(res, err.status ?? 500, err.message));
  }

  route(method, path, body, req, res) {
    if (method === "GET" && path === "/health") return json(res, 200, "OK");
    if (method === "POST" && path === "/execute") return this.execute(parse(body), req, res);
    if (path === "/contexts" && method === "POST") {
      const b = parse(body);
      const ctx = this.create(normalizeLanguage(b.language ?? "python"), b.cwd || "/home/user");
      return json(res, 200, ctx);
    }
    if (path === "/contexts" && method === "GET") return json(res, 200, [...this.contexts.values()]);
    const m = /^\/contexts\/([^/]+)(\/restart)?$/.exec(path);
    if (m && ((method === "DELETE" && !m[2]) || (method === "POST" && m[2]))) {
      const id = decodeURIComponent(m[1]);
      const ctx = this.contexts.get(id);
      if (!ctx) return text(res, 404, `Context ${id} not found`);
      if (m[2]) ctx.restart();
      else {
        ctx.stop();
        this.contexts.delete(id);
      }
      return json(res, 200, null);
    }
    return json(res, 404, { detail: "Not Found" });
  }

  execute(b, req, res) {
    if (typeof b.code !== "string") return json(res, 422, { detail: [{ type: "string_type", loc: ["body", "code"], msg: "Input should be a valid string" }] });
    if (b.context_id && b.language) return text(res, 400, "Only one of context_id or language can be provided");
    let ctx;
    if (b.language) ctx = this.defaultContext(normalizeLanguage(b.language));
    else if (b.context_id) ctx = this.contexts.get(b.context_id);
    else ctx = this.defaultContext("python");
    if (!ctx) return text(res, 404, `Context ${b.context_id} not found`);

    res.writeHead(200);
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    const write = (ev) => {
      if (!res.writableEnded && !res.destroyed) res.write(pyDumps(ev) + "\n");
    };
    let silent = setInterval(() => write({ type: "keepalive" }), KEEPALIVE_MS);
    const touch = () => {
      clearInterval(silent);
      silent = setInterval(() => write({ type: "keepalive" }), KEEPALIVE_MS);
    };
    let errored = false;
    const sink = (msg) => {
      touch();
      const now = new Date().toISOString().replace("Z", "000+00:00");
      if (msg.kind === "execute_input") write({ type: "number_of_executions", execution_count: msg.execution_count });
      else if (msg.kind === "stream") write({ type: msg.name, text: msg.text, timestamp: now });
      else if (msg.kind === "display_data") write(resultEvent(false, msg.data));
      else if (msg.kind === "execute_result") write(resultEvent(true, msg.data));
      else if (msg.kind === "error" && !errored) {
        errored = true;
        write({ type: "error", name: msg.ename, value: msg.evalue, traceback: msg.traceback.join("") });
      }
    };
    ctx.execute(b.code, b.env_vars, sink, abort.signal).then(() => {
      clearInterval(silent);
      write({ type: "end_of_execution" });
      if (!res.writableEnded) res.end();
    });
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on("data", (c) => {
      n += c.length;
      if (n > BODY_MAX) {
        const e = new Error("request body too large");
        e.status = 413;
        reject(e);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parse(body) {
  try {
    const v = JSON.parse(body || "{}");
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch {
    /* below */
  }
  const e = new Error('{"detail": [{"type": "json_invalid", "msg": "JSON decode error"}]}');
  e.status = 422;
  throw e;
}

// FastAPI's JSONResponse: compact separators, non-ASCII as is.
function json(res, status, v) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(v));
}

function text(res, status, msg) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(msg);
}
