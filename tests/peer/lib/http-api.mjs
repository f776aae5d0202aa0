// envd's plain-HTTP API (spec §6.3): /health, /envs, /metrics, /init and
// /files (download with Range and gzip, streamed multipart or raw uploads).
import fs from "node:fs/promises";
import { createReadStream, readFileSync, statfsSync } from "node:fs";
import { randomUUID } from "node:crypto";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { errnoText, pathError } from "./errors.mjs";
import { ensureDirs, chownToUser } from "./filesystem-service.mjs";
import { MultipartReader, MultipartError, parseMediaType } from "./multipart.mjs";
import { validateSigning } from "./signature.mjs";
import { goBase } from "./entry.mjs";
import { MAX_POST_HANDLER_READ, closeAfterAnswerLikeNetHttp } from "./rpc-util.mjs";

export const ENVD_VERSION = "0.6.13";

/** Go's encoding/json output: JSON with <, >, &, U+2028 and U+2029 escaped. */
function goJson(value) {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

// net/http gives a small body written at once a Content-Length.
export function jsonError(res, status, message) {
  const body = Buffer.from(goJson({ code: status, message }) + "\n");
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
    "Content-Length": body.length,
  });
  res.end(body);
}

function textError(res, status, message) {
  const body = Buffer.from(message + "\n");
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
    "Content-Length": body.length,
  });
  res.end(body);
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- content types (Go's mime.TypeByExtension + http.DetectContentType) ----

const BUILTIN_TYPES = {
  ".avif": "image/avif",
  ".css": "text/css; charset=utf-8",
  ".gif": "image/gif",
  ".htm": "text/html; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".jpeg": "image/jpeg",
  ".jpg": "image/jpeg",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".mjs": "text/javascript; charset=utf-8",
  ".pdf": "application/pdf",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".wasm": "application/wasm",
  ".webp": "image/webp",
  ".xml": "text/xml; charset=utf-8",
};

let systemTypes = null;
function typeByExtension(name) {
  const ext = path.posix.extname(name).toLowerCase();
  if (!ext) return "";
  if (BUILTIN_TYPES[ext]) return BUILTIN_TYPES[ext];
  if (systemTypes === null) {
    systemTypes = new Map();
    try {
      for (const line of readFileSync("/etc/mime.types", "utf8").split("\n")) {
        const f = line.replace(/#.*/, "").trim().split(/\s+/);
        if (f.length < 2) continue;
        let type = f[0];
        if (type.startsWith("text/")) type += "; charset=utf-8";
        for (const e of f.slice(1)) systemTypes.set("." + e.toLowerCase(), type);
      }
    } catch {
      // no system table
    }
  }
  return systemTypes.get(ext) ?? "";
}

function sniff(buf) {
  const starts = (s) => buf.subarray(0, s.length).equals(Buffer.from(s, "latin1"));
  if (starts("\xFE\xFF")) return "text/plain; charset=utf-16be";
  if (starts("\xFF\xFE")) return "text/plain; charset=utf-16le";
  if (starts("\xEF\xBB\xBF")) return "text/plain; charset=utf-8";
  if (starts("%PDF-")) return "application/pdf";
  if (starts("\x89PNG\r\n\x1a\n")) return "image/png";
  if (starts("\xFF\xD8\xFF")) return "image/jpeg";
  if (starts("GIF87a") || starts("GIF89a")) return "image/gif";
  if (starts("PK\x03\x04")) return "application/zip";
  if (starts("\x1F\x8B\x08")) return "application/x-gzip";
  const head = buf.toString("latin1").trimStart().toLowerCase();
  if (head.startsWith("<?xml")) return "text/xml; charset=utf-8";
  if (head.startsWith("<!doctype html") || head.startsWith("<html")) return "text/html; charset=utf-8";
  for (const b of buf) {
    if (b <= 0x08 || b === 0x0b || (b >= 0x0e && b <= 0x1a) || (b >= 0x1c && b <= 0x1f)) {
      return "application/octet-stream";
    }
  }
  return "text/plain; charset=utf-8";
}

// ---- Accept-Encoding / Content-Encoding (envd's encoding.go rules) ----

function parseEncodingWithQuality(value) {
  let v = value.trim();
  let q = 1;
  const i = v.indexOf(";");
  if (i >= 0) {
    for (const p of v.slice(i + 1).split(";")) {
      const t = p.trim();
      if (t.toLowerCase().startsWith("q=")) {
        const n = Number(t.slice(2));
        if (!Number.isNaN(n) && t.slice(2).trim() !== "") q = n;
      }
    }
    v = v.slice(0, i).trim();
  }
  return { encoding: v.toLowerCase(), q };
}

/** "" (identity) or "gzip"; throws when nothing acceptable is left. */
function parseAcceptEncoding(header) {
  if (!header) return { encoding: "", identityRejected: false };
  const list = header.split(",").map(parseEncodingWithQuality);
  list.sort((a, b) => b.q - a.q);
  // envd's parseAcceptEncodingHeader: identity;q=0 rejects identity, and so
  // does *;q=0 unless identity is named with a non-zero quality.
  const identityRejected =
    list.some((e) => e.encoding === "identity" && e.q === 0) ||
    (list.some((e) => e.encoding === "*" && e.q === 0) &&
      !list.some((e) => e.encoding === "identity" && e.q !== 0));
  for (const e of list) {
    if (e.q === 0) continue;
    if (e.encoding === "identity") return { encoding: "", identityRejected };
    if (e.encoding === "*") return { encoding: identityRejected ? "gzip" : "", identityRejected };
    if (e.encoding === "gzip") return { encoding: "gzip", identityRejected };
  }
  if (!identityRejected) return { encoding: "", identityRejected };
  throw new HttpError(
    406,
    "error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]",
  );
}

function contentEncoding(header) {
  if (!header) return "";
  const enc = parseEncodingWithQuality(header).encoding;
  if (enc === "identity") return "";
  if (enc !== "gzip") {
    throw new HttpError(
      400,
      `error decompressing request body: unsupported Content-Encoding: ${header}, supported: [gzip]`,
    );
  }
  return "gzip";
}

/**
 * The request body as an async iterable of Buffers, gunzipped when asked.
 * A body that does not start with a gzip header fails up front (400), as
 * Go's gzip.NewReader does.
 */
async function requestBody(req) {
  const enc = contentEncoding(req.headers["content-encoding"]);
  const it = req[Symbol.asyncIterator]();
  req.peerBodyIterator = it;
  if (enc !== "gzip") return { [Symbol.asyncIterator]: () => it };
  let head = Buffer.alloc(0);
  let ended = false;
  while (head.length < 10) {
    const { value, done } = await it.next();
    if (done) {
      ended = true;
      break;
    }
    head = Buffer.concat([head, value]);
  }
  if (head.length === 0) {
    throw new HttpError(400, "error decompressing request body: failed to create gzip reader: EOF");
  }
  if (head.length < 10) {
    throw new HttpError(
      400,
      "error decompressing request body: failed to create gzip reader: unexpected EOF",
    );
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 0x08) {
    throw new HttpError(
      400,
      "error decompressing request body: failed to create gzip reader: gzip: invalid header",
    );
  }
  async function* raw() {
    yield head;
    if (ended) return;
    for (;;) {
      const { value, done } = await it.next();
      if (done) return;
      yield value;
    }
  }
  const gunzip = zlib.createGunzip();
  const src = Readable.from(raw());
  src.on("error", (err) => gunzip.destroy(err));
  src.pipe(gunzip);
  return gunzip;
}

// ---- metadata headers ----

const PRINTABLE = /^[\x20-\x7e]*$/;

function metadataFromHeaders(req) {
  const meta = {};
  const raw = req.rawHeaders;
  let total = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!name.startsWith("x-metadata-")) continue;
    const key = name.slice("x-metadata-".length);
    if (key in meta) continue; // only the first value of a repeated header
    const value = raw[i + 1];
    if (key === "") continue; // envd's extractMetadataHeaders skips "X-Metadata-" itself
    if (!PRINTABLE.test(key) || !PRINTABLE.test(value)) {
      throw new HttpError(400, `invalid metadata: key ${JSON.stringify(key)} or its value is not printable ASCII`);
    }
    if (Buffer.byteLength(key) > 246) {
      throw new HttpError(400, `invalid metadata: key ${JSON.stringify(key)} is longer than 246 bytes`);
    }
    total += 9 + Buffer.byteLength(key) + Buffer.byteLength(value);
    if (total > 4096) throw new HttpError(400, "invalid metadata: total size exceeds 4096 bytes");
    meta[key] = value;
  }
  return meta;
}

// ---- the API ----

const TSPECIALS = new Set('()<>@,;:\\"/[]?=');
const isTokenByte = (c) => c > 0x20 && c < 0x7f && !TSPECIALS.has(String.fromCharCode(c));

/**
 * Go's mime.FormatMediaType(type, {attr: value}) for one parameter, as
 * envd's GetFiles builds Content-Disposition: RFC 2231 `attr*=utf-8''…`
 * percent-encoding when the value has a byte outside ' '..'~' (tab
 * aside), else a bare token when it is one, else a quoted string with `"`
 * and `\` escaped.
 */
export function formatMediaType(type, attr, value) {
  const bytes = Buffer.from(value, "utf8");
  const needEnc = [...value].some((ch) => (ch < " " || ch > "~") && ch !== "\t");
  if (needEnc) {
    let out = "";
    for (const c of bytes) {
      const special =
        c <= 0x20 || c >= 0x7f || c === 0x2a || c === 0x27 || c === 0x25 || TSPECIALS.has(String.fromCharCode(c));
      out += special ? "%" + c.toString(16).toUpperCase().padStart(2, "0") : String.fromCharCode(c);
    }
    return `${type}; ${attr}*=utf-8''${out}`;
  }
  if (bytes.length > 0 && bytes.every(isTokenByte)) return `${type}; ${attr}=${value}`;
  return `${type}; ${attr}="${value.replace(/["\\]/g, "\\$&")}"`;
}


/**
 * What Go's net/http does with a request body the handler left unread
 * before it writes the response (response.go, chunkWriter.writeHeader):
 * it reads up to 256 KiB more; when the body ends within that the
 * connection stays open, otherwise the answer carries `Connection: close`
 * and the connection ends after it (Node would drain any amount).
 */
async function discardLikeNetHttp(req, res) {
  if (req.readableEnded || req.destroyed || res.headersSent) return;
  // The body may already be read through an async iterator (requestBody):
  // go on with the same one.
  const it = req.peerBodyIterator ?? req[Symbol.asyncIterator]();
  let n = 0;
  try {
    for (;;) {
      const { value, done } = await it.next();
      if (done) return;
      n += value.length;
      if (n > MAX_POST_HANDLER_READ) break;
    }
  } catch {
    // a broken body: the connection cannot be reused either
  }
  closeAfterAnswerLikeNetHttp(res, req.socket);
}

/**
 * Go's url.ParseQuery as r.URL.Query() uses it: pairs split on "&" only; a
 * pair holding ";" or a bad %-escape is dropped (the error is ignored);
 * "+" is a space.
 */
export function goParseQuery(raw) {
  const out = new URLSearchParams();
  const unescape = (t) => {
    if (/%(?![0-9a-fA-F]{2})/.test(t)) return null;
    return Buffer.from(
      t.replace(/\+/g, " ").replace(/%([0-9a-fA-F]{2})|[^%]+/g, (m, hex) => (hex ? String.fromCharCode(parseInt(hex, 16)) : Buffer.from(m, "utf8").toString("latin1"))),
      "latin1",
    ).toString("utf8");
  };
  for (const pair of raw.split("&")) {
    if (pair === "" || pair.includes(";")) continue;
    const eq = pair.indexOf("=");
    const key = unescape(eq < 0 ? pair : pair.slice(0, eq));
    const value = unescape(eq < 0 ? "" : pair.slice(eq + 1));
    if (key === null || value === null) continue;
    out.append(key, value);
  }
  return out;
}

/**
 * The /files query as envd's generated wrapper binds it (oapi-codegen,
 * form style): a single-value parameter given twice is a 400 in plain text
 * before the handler runs.
 */
function filesQuery(url) {
  const q = goParseQuery(url.search.replace(/^\?/, ""));
  for (const name of ["path", "username", "signature", "signature_expiration"]) {
    if (q.getAll(name).length > 1) {
      const e = new HttpError(
        400,
        `Invalid format for parameter ${name}: multiple values for single value parameter '${name}'`,
      );
      e.plain = true;
      throw e;
    }
  }
  return q;
}

export class HttpApi {
  constructor(sb) {
    this.sb = sb;
    this.cpuSample = os.cpus();
  }

  async handle(req, res) {
    const url = new URL(req.url, "http://peer");
    const route = `${req.method} ${url.pathname}`;
    try {
      switch (route) {
        case "GET /health":
          res.writeHead(204, { "Cache-Control": "no-store" });
          res.end();
          return;
        case "GET /envs":
          return this.envs(res);
        case "GET /metrics":
          return await this.metrics(res);
        case "POST /init":
          return await this.init(req, res);
        case "GET /files":
          return await this.download(req, res, filesQuery(url));
        case "POST /files":
          return await this.upload(req, res, filesQuery(url));
        case "POST /files/compose":
          return await this.compose(req, res);
        default:
          if (["/health", "/envs", "/metrics", "/init", "/files", "/files/compose"].includes(url.pathname)) {
            res.writeHead(405);
            res.end();
            return;
          }
          res.writeHead(404, {
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
          });
          res.end("404 page not found\n");
      }
    } catch (err) {
      if (res.headersSent) {
        res.destroy?.();
        return;
      }
      await discardLikeNetHttp(req, res);
      if (err instanceof HttpError) {
        if (err.plain) textError(res, err.status, err.message);
        else jsonError(res, err.status, err.message);
      } else {
        jsonError(res, 500, String(err?.message ?? err));
      }
    }
  }

  envs(res) {
    const obj = {};
    for (const k of [...this.sb.envVars.keys()].sort()) obj[k] = this.sb.envVars.get(k);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(obj));
  }

  async metrics(res) {
    const now = os.cpus();
    let idle = 0;
    let total = 0;
    now.forEach((c, i) => {
      const prev = this.cpuSample[i]?.times ?? { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 };
      const t = (x) => x.user + x.nice + x.sys + x.idle + x.irq;
      idle += c.times.idle - prev.idle;
      total += t(c.times) - t(prev);
    });
    this.cpuSample = now;
    let cache = 0;
    try {
      const m = /^Cached:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
      if (m) cache = Number(m[1]) * 1024;
    } catch {
      // not Linux
    }
    const memTotal = os.totalmem();
    const memUsed = memTotal - os.freemem();
    let diskTotal = 0;
    let diskUsed = 0;
    try {
      const s = statfsSync(this.sb.root);
      diskTotal = s.blocks * s.bsize;
      diskUsed = (s.blocks - s.bfree) * s.bsize;
    } catch {
      // unknown
    }
    const body = {
      ts: Math.floor(Date.now() / 1000),
      cpu_count: now.length,
      cpu_used_pct: total > 0 ? Math.round((1 - idle / total) * 10000) / 100 : 0,
      mem_total_mib: Math.floor(memTotal / 1048576),
      mem_used_mib: Math.floor(memUsed / 1048576),
      mem_total: memTotal,
      mem_used: memUsed,
      mem_cache: cache,
      disk_used: diskUsed,
      disk_total: diskTotal,
    };
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
    res.end(JSON.stringify(body));
  }

  /** A local envd's /init: token, env vars, default user and workdir. */
  async init(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString("utf8").trim();
    let body = {};
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch (err) {
        const e = new HttpError(400, err.message);
        e.plain = true;
        throw e;
      }
    }
    const sb = this.sb;
    if (body.accessToken === "") {
      const e = new HttpError(400, "accessToken must not be empty");
      e.plain = true;
      throw e;
    }
    if (sb.token) {
      if (body.accessToken === undefined) {
        const e = new HttpError(401, "access token reset not authorized");
        e.plain = true;
        throw e;
      }
      if (body.accessToken !== sb.token) {
        const e = new HttpError(401, "access token validation failed");
        e.plain = true;
        throw e;
      }
    }
    if (body.accessToken !== undefined) sb.token = body.accessToken;
    if (body.envVars && typeof body.envVars === "object") {
      sb.envVars = new Map([["E2B_SANDBOX", "true"]]);
      for (const [k, v] of Object.entries(body.envVars)) {
        if (k !== "E2B_SANDBOX") sb.envVars.set(k, String(v));
      }
    }
    if (typeof body.defaultUser === "string" && body.defaultUser !== "") {
      sb.defaultUser = body.defaultUser;
    }
    if (typeof body.defaultWorkdir === "string" && body.defaultWorkdir !== "") {
      sb.setDefaultWorkdir(body.defaultWorkdir);
    }
    res.writeHead(204, { "X-Envd-Version": ENVD_VERSION, "Cache-Control": "no-store" });
    res.end();
  }

  /** Signature check; returns the user name from ?username= (or the default). */
  checkFilesAccess(req, query, operation) {
    let expiration;
    const rawExp = query.get("signature_expiration");
    if (rawExp !== null) {
      if (!/^[+-]?\d+$/.test(rawExp)) {
        const e = new HttpError(
          400,
          `Invalid format for parameter signature_expiration: error binding string parameter: strconv.ParseInt: parsing ${JSON.stringify(rawExp)}: invalid syntax`,
        );
        e.plain = true;
        throw e;
      }
      expiration = Number(rawExp);
    }
    const sigErr = validateSigning({
      token: this.sb.token,
      headerToken: req.headers["x-access-token"],
      query,
      operation,
      expiration,
    });
    if (sigErr) throw new HttpError(401, sigErr);
    return query.get("username") ?? this.sb.defaultUser;
  }

  lookupUser(username) {
    const user = this.sb.lookupUser(username);
    if (!user) {
      throw new HttpError(401, `error looking up user '${username}': user: unknown user ${username}`);
    }
    return user;
  }

  async download(req, res, query) {
    const sb = this.sb;
    const user = this.lookupUser(this.checkFilesAccess(req, query, "read"));
    const reqPath = query.get("path") ?? "";
    let vpath;
    try {
      vpath = sb.resolve(reqPath, user);
    } catch (err) {
      throw new HttpError(400, `error expanding and resolving path '${reqPath}': ${err.message}`);
    }
    const real = sb.toReal(vpath);
    let st;
    try {
      st = await fs.stat(real);
    } catch (err) {
      if (err.code === "ENOENT") throw new HttpError(404, `path '${vpath}' does not exist`);
      throw new HttpError(
        500,
        `error checking if path exists '${vpath}': ${pathError("stat", vpath, err)}`,
      );
    }
    if (st.isDirectory()) throw new HttpError(400, `path '${vpath}' is a directory`);

    let { encoding, identityRejected } = parseAcceptEncoding(req.headers["accept-encoding"]);
    const h = req.headers;
    const rangeOrConditional =
      !!h.range || !!h["if-modified-since"] || !!h["if-none-match"] || !!h["if-range"];
    if (rangeOrConditional) {
      if (identityRejected) {
        throw new HttpError(406, "identity encoding not acceptable for Range or conditional request");
      }
      encoding = "";
    }

    let fh;
    try {
      fh = await fs.open(real, "r");
    } catch (err) {
      throw new HttpError(500, `error opening file '${vpath}': ${pathError("open", vpath, err)}`);
    }
    try {
      const headers = {
        Vary: "Accept-Encoding",
        "Content-Disposition": formatMediaType("inline", "filename", goBase(vpath)),
      };
      if (encoding === "gzip") {
        headers["Content-Encoding"] = "gzip";
        headers["Content-Type"] = typeByExtension(reqPath) || "application/octet-stream";
        res.writeHead(200, headers);
        await pipeline(fh.createReadStream({ autoClose: false }), zlib.createGzip(), res);
        return;
      }
      await this.serveContent(req, res, fh, st, reqPath, headers);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** A single-range subset of Go's http.ServeContent. */
  async serveContent(req, res, fh, st, name, headers) {
    const size = st.size;
    const mtime = new Date(Math.floor(st.mtimeMs / 1000) * 1000);
    headers["Last-Modified"] = mtime.toUTCString();
    headers["Accept-Ranges"] = "bytes";

    const ims = req.headers["if-modified-since"];
    if (ims && !req.headers["if-none-match"]) {
      const t = Date.parse(ims);
      if (!Number.isNaN(t) && mtime.getTime() <= t) {
        delete headers["Content-Disposition"];
        res.writeHead(304, { "Last-Modified": headers["Last-Modified"], Vary: headers.Vary });
        res.end();
        return;
      }
    }

    let ctype = typeByExtension(name);
    if (!ctype) {
      const probe = Buffer.alloc(Math.min(512, size));
      if (probe.length) await fh.read(probe, 0, probe.length, 0);
      ctype = sniff(probe);
    }
    headers["Content-Type"] = ctype;

    let start = 0;
    let end = size - 1;
    let status = 200;
    let range = req.headers.range;
    const ifRange = req.headers["if-range"];
    if (range && ifRange && Date.parse(ifRange) !== mtime.getTime()) range = undefined;
    if (range) {
      const parsed = parseRange(range, size);
      if (parsed === "invalid") {
        res.writeHead(416, {
          "Content-Range": `bytes */${size}`,
          "Content-Type": "text/plain; charset=utf-8",
          "X-Content-Type-Options": "nosniff",
        });
        res.end("invalid range: failed to overlap\n");
        return;
      }
      if (parsed) {
        ({ start, end } = parsed);
        status = 206;
        headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
      }
    }
    headers["Content-Length"] = String(size === 0 ? 0 : end - start + 1);
    res.writeHead(status, headers);
    if (req.method === "HEAD" || size === 0) {
      res.end();
      return;
    }
    await pipeline(fh.createReadStream({ start, end, autoClose: false }), res);
  }

  async upload(req, res, query) {
    const sb = this.sb;
    const username = this.checkFilesAccess(req, query, "write");
    const body = await requestBody(req);
    const user = this.lookupUser(username);
    const meta = metadataFromHeaders(req);
    const ctypeHeader = req.headers["content-type"] ?? "";
    const { type, params } = parseMediaType(ctypeHeader);
    const pathParam = query.get("path");
    const contentLength = Number(req.headers["content-length"] ?? 0);
    const written = [];

    const resolveTarget = (p) => {
      try {
        return sb.resolve(p, user);
      } catch (err) {
        throw new HttpError(400, `error resolving path: ${err.message}`);
      }
    };

    if (type === "application/octet-stream") {
      if (pathParam === null) {
        throw new HttpError(400, "path query parameter is required for raw body upload");
      }
      const vpath = resolveTarget(pathParam);
      await this.writeFile(vpath, body, user, meta, contentLength);
      written.push(vpath);
    } else if (type.startsWith("multipart/")) {
      // net/http's Request.MultipartReader allows multipart/mixed too.
      if (type !== "multipart/form-data" && type !== "multipart/mixed") {
        throw new HttpError(
          500,
          "error parsing multipart form: request Content-Type isn't multipart/form-data",
        );
      }
      if (!params.boundary) {
        throw new HttpError(500, "error parsing multipart form: no multipart boundary param in Content-Type");
      }
      const reader = new MultipartReader(body, params.boundary);
      for (;;) {
        let part;
        try {
          part = await reader.nextPart();
        } catch (err) {
          throw new HttpError(500, `error reading form: ${err.message}`);
        }
        if (!part) break;
        if (part.formName !== "file") continue;
        let target = pathParam;
        if (target === null) {
          if (part.fileName === undefined) {
            throw new HttpError(
              400,
              "error getting multipart custom part file name: no filename in Content-Disposition",
            );
          }
          target = part.fileName;
        }
        const vpath = resolveTarget(target);
        if (written.includes(vpath)) {
          let msg = `you cannot upload multiple files to the same path '${vpath}' in one upload request, only the first specified file was uploaded`;
          const others = written.filter((w) => w !== vpath);
          if (others.length > 1) msg += `, also the following files were uploaded: ${others.join(", ")}`;
          throw new HttpError(400, msg);
        }
        try {
          await this.writeFile(vpath, part.body(), user, meta, contentLength);
        } catch (err) {
          if (err instanceof MultipartError) throw new HttpError(500, `error writing file: ${err.message}`);
          throw err;
        }
        written.push(vpath);
      }
    } else {
      throw new HttpError(
        400,
        `unsupported content type: ${ctypeHeader}, expected multipart/form-data or application/octet-stream`,
      );
    }

    // Field order of envd's generated EntryInfo struct: metadata (omitempty),
    // name, path, type; Go's json.Marshal also sorts the metadata keys.
    const result = written.map((p) => {
      const e = {};
      if (Object.keys(meta).length) {
        e.metadata = Object.fromEntries(Object.keys(meta).sort().map((k) => [k, meta[k]]));
      }
      Object.assign(e, { name: goBase(p), path: p, type: "file" });
      return e;
    });
    // envd's PostFiles: json.Marshal (which escapes <, > and &) written
    // without a Content-Type, so net/http sniffs "text/plain; charset=utf-8";
    // a body that fits its 2 KiB buffer gets a Content-Length, a longer one
    // is chunked.
    const reply = Buffer.from(goJson(result));
    const headers = { "Content-Type": "text/plain; charset=utf-8" };
    if (reply.length <= 2048) headers["Content-Length"] = reply.length;
    res.writeHead(200, headers);
    res.end(reply);
  }

  /**
   * envd's PostFilesCompose (envd >= 0.5.5, compose.go): checks in its
   * order, the sources concatenated into <dest>.e2b-compose.<uuid>.tmp
   * (chowned to the user), renamed over dest, then the sources deleted.
   * Reply: one EntryInfo {name, path, type} from a json.Encoder (a trailing
   * newline), application/json.
   */
  async compose(req, res) {
    const sb = this.sb;
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString("utf8");
    let body;
    try {
      if (text.trim() === "") throw new Error("EOF");
      body = JSON.parse(text);
      if (body !== null && (typeof body !== "object" || Array.isArray(body))) {
        throw new Error("json: cannot unmarshal into Go value of type api.ComposeRequest");
      }
      body ??= {};
      const sp = body.source_paths;
      if (sp != null && (!Array.isArray(sp) || sp.some((x) => typeof x !== "string"))) {
        throw new Error("json: cannot unmarshal into Go struct field ComposeRequest.source_paths");
      }
      for (const k of ["destination", "username"]) {
        if (body[k] != null && typeof body[k] !== "string") {
          throw new Error(`json: cannot unmarshal into Go struct field ComposeRequest.${k}`);
        }
      }
    } catch (err) {
      throw new HttpError(400, `invalid request body: ${err.message}`);
    }
    const sources = body.source_paths ?? [];
    if (sources.length === 0) throw new HttpError(400, "source_paths must not be empty");
    if (!body.destination) throw new HttpError(400, "destination is required");
    const username = body.username ?? sb.defaultUser;
    if (!username) throw new HttpError(400, "no user specified");
    const user = this.lookupUser(username);
    let dest;
    try {
      dest = sb.resolve(body.destination, user);
    } catch (err) {
      throw new HttpError(400, `error resolving destination path: ${err.message}`);
    }
    const resolved = [];
    for (const src of sources) {
      let r;
      try {
        r = sb.resolve(src, user);
      } catch (err) {
        throw new HttpError(400, `error resolving source path ${JSON.stringify(src)}: ${err.message}`);
      }
      if (r === dest) {
        throw new HttpError(400, `source path ${JSON.stringify(src)} cannot be the same as destination`);
      }
      let st;
      try {
        st = await fs.stat(sb.toReal(r));
      } catch {
        throw new HttpError(404, `source file not found: ${src}`);
      }
      if (!st.isFile()) throw new HttpError(400, `source path is not a regular file: ${src}`);
      resolved.push(r);
    }
    try {
      await ensureDirs(sb, path.posix.dirname(dest), user);
    } catch (err) {
      throw new HttpError(500, `error ensuring directories: ${err.message}`);
    }
    const tmp = `${dest}.e2b-compose.${randomUUID()}.tmp`;
    const realTmp = sb.toReal(tmp);
    let fh;
    try {
      fh = await fs.open(realTmp, "w", 0o666);
    } catch (err) {
      if (err.code === "ENOSPC") throw new HttpError(507, "not enough disk space available");
      throw new HttpError(500, `error creating destination file: ${pathError("open", tmp, err)}`);
    }
    const abandon = async (status, message) => {
      await fh.close().catch(() => {});
      await fs.unlink(realTmp).catch(() => {});
      throw new HttpError(status, message);
    };
    try {
      await chownToUser(sb, realTmp, user);
    } catch (err) {
      await abandon(500, `error changing file ownership: ${pathError("chown", tmp, err)}`);
    }
    for (const r of resolved) {
      try {
        for await (const chunk of createReadStream(sb.toReal(r))) {
          let off = 0;
          while (off < chunk.length) {
            const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
            off += bytesWritten;
          }
        }
      } catch (err) {
        if (err.code === "ENOSPC") await abandon(507, "not enough disk space available");
        await abandon(500, `error composing source ${r}: ${errnoText(err)}`);
      }
    }
    try {
      await fh.close();
    } catch (err) {
      await fs.unlink(realTmp).catch(() => {});
      throw new HttpError(500, `error closing destination file: ${errnoText(err)}`);
    }
    try {
      await fs.rename(realTmp, sb.toReal(dest));
    } catch (err) {
      await fs.unlink(realTmp).catch(() => {});
      throw new HttpError(500, `error finalizing compose: ${pathError("rename", tmp, err)}`);
    }
    for (const r of resolved) await fs.unlink(sb.toReal(r)).catch(() => {});
    const reply = Buffer.from(goJson({ name: goBase(dest), path: dest, type: "file" }) + "\n");
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": reply.length });
    res.end(reply);
  }

  /** envd's processFile: parents, overwrite, owner, streamed write, metadata. */
  async writeFile(vpath, source, user, meta, contentLength) {
    const sb = this.sb;
    const real = sb.toReal(vpath);
    try {
      await ensureDirs(sb, path.posix.dirname(vpath), user);
    } catch (err) {
      throw new HttpError(500, `error ensuring directories: ${err.message}`);
    }
    let exists = false;
    try {
      const st = await fs.stat(real);
      if (st.isDirectory()) throw new HttpError(400, `path is a directory: ${vpath}`);
      exists = true;
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (err.code !== "ENOENT") {
        throw new HttpError(500, `error getting file info: ${pathError("stat", vpath, err)}`);
      }
    }
    if (exists) await chownToUser(sb, real, user).catch(() => {});
    let fh;
    try {
      fh = await fs.open(real, "w", 0o666);
    } catch (err) {
      if (err.code === "ENOSPC") {
        throw new HttpError(507, `not enough inodes available: ${pathError("open", vpath, err)}`);
      }
      throw new HttpError(500, `error opening file: ${pathError("open", vpath, err)}`);
    }
    try {
      if (!exists) {
        await chownToUser(sb, real, user).catch((err) => {
          throw new HttpError(500, `error changing file ownership: ${pathError("chown", vpath, err)}`);
        });
      }
      try {
        for await (const chunk of source) {
          let off = 0;
          while (off < chunk.length) {
            const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
            off += bytesWritten;
          }
        }
      } catch (err) {
        if (err instanceof MultipartError) throw err;
        if (err.code === "ENOSPC") {
          let msg = "not enough disk space available";
          if (contentLength > 0) msg = `attempted to write ${contentLength} bytes: ${msg}`;
          throw new HttpError(507, msg);
        }
        if (typeof err.code === "string" && err.code.startsWith("Z_")) {
          throw new HttpError(500, `error writing file: gzip: ${err.message}`);
        }
        throw new HttpError(500, `error writing file: ${pathError("write", vpath, err)}`);
      }
    } finally {
      await fh.close().catch(() => {});
    }
    try {
      await sb.xattr.set(real, meta);
    } catch (err) {
      if (err.code === "ENOSPC" || err.code === "EDQUOT") {
        throw new HttpError(507, `not enough disk space available for metadata: ${err.message}`);
      }
      if (Object.keys(meta).length) {
        throw new HttpError(500, `error setting metadata: ${errnoText(err)}`);
      }
    }
  }
}

/** Parses a Range header: {start, end}, null (ignore), or "invalid" (416). */
function parseRange(header, size) {
  if (!header.startsWith("bytes=")) return "invalid";
  const specs = header.slice(6).split(",").map((s) => s.trim()).filter(Boolean);
  if (specs.length !== 1) return null; // multipart/byteranges: served whole
  const m = /^(\d*)-(\d*)$/.exec(specs[0]);
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  let start;
  let end;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "invalid";
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    if (start >= size) return "invalid";
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (end < start) return "invalid";
  }
  return { start, end };
}
