// A streaming multipart/form-data reader: parts come one at a time and each
// part's body is an async iterable of chunks, so an upload of any size goes
// to disk without being held in memory.

const CRLF = Buffer.from("\r\n");

export class MultipartError extends Error {}

/** Parses `type/subtype; a=b; c="d"` into {type, params} (keys lowercased). */
export function parseMediaType(value) {
  if (!value) return { type: "", params: {} };
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = {};
  let rest = semi < 0 ? "" : value.slice(semi + 1);
  const re = /^\s*([^\s=;]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]*)\s*(;|$)/;
  while (rest.trim() !== "") {
    const m = re.exec(rest);
    if (!m) break;
    const key = m[1].toLowerCase();
    const v = m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : m[2].trim();
    if (!(key in params)) params[key] = v;
    rest = rest.slice(m[0].length);
  }
  // RFC 2231 extended values (`filename*=utf-8''%E6%97%A5`), which Go's
  // mime.ParseMediaType decodes under the plain name (Part.FileName uses it).
  for (const key of Object.keys(params)) {
    if (!key.endsWith("*") || key.slice(0, -1).includes("*")) continue;
    const ext = /^(utf-8|us-ascii)'[^']*'(.*)$/i.exec(params[key]);
    delete params[key];
    if (!ext || /%(?![0-9a-fA-F]{2})/.test(ext[2])) continue;
    params[key.slice(0, -1)] = Buffer.from(
      ext[2].replace(/%([0-9a-fA-F]{2})|[^%]+/g, (m0, hex) =>
        hex ? String.fromCharCode(parseInt(hex, 16)) : Buffer.from(m0, "utf8").toString("latin1"),
      ),
      "latin1",
    ).toString("utf8");
  }
  return { type, params };
}

export class MultipartReader {
  /**
   * @param source async iterable of Buffers (the request body)
   * @param boundary the boundary parameter of the Content-Type
   */
  constructor(source, boundary) {
    this.it = source[Symbol.asyncIterator]();
    this.buf = Buffer.alloc(0);
    this.eof = false;
    this.dashBoundary = Buffer.from("--" + boundary);
    this.delimiter = Buffer.from("\r\n--" + boundary);
    this.started = false;
    this.finished = false;
    this.current = null;
  }

  async fill() {
    if (this.eof) return false;
    const { value, done } = await this.it.next();
    if (done) {
      this.eof = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, value]) : Buffer.from(value);
    return true;
  }

  /** Ensures at least n bytes are buffered (false at EOF before that). */
  async need(n) {
    while (this.buf.length < n) if (!(await this.fill())) return false;
    return true;
  }

  /** Returns the next part, or null after the closing boundary. */
  async nextPart() {
    if (this.current) {
      for await (const _ of this.current.body()) {
        // drain the unread rest of the previous part
      }
      this.current = null;
    }
    if (this.finished) return null;
    if (!this.started) {
      // Skip the preamble up to the first boundary.
      for (;;) {
        const i = this.buf.indexOf(this.dashBoundary);
        if (i >= 0) {
          this.buf = this.buf.subarray(i);
          break;
        }
        if (this.buf.length > this.dashBoundary.length) {
          this.buf = this.buf.subarray(this.buf.length - this.dashBoundary.length);
        }
        if (!(await this.fill())) throw new MultipartError("multipart: NextPart: EOF");
      }
      this.started = true;
    }
    // this.buf starts with --boundary
    if (!(await this.need(this.dashBoundary.length + 2))) {
      throw new MultipartError("multipart: NextPart: EOF");
    }
    let pos = this.dashBoundary.length;
    if (this.buf[pos] === 0x2d && this.buf[pos + 1] === 0x2d) {
      this.finished = true;
      return null;
    }
    // optional transport padding, then the line break
    for (;;) {
      while (pos < this.buf.length && (this.buf[pos] === 0x20 || this.buf[pos] === 0x09)) pos++;
      if (pos < this.buf.length) break;
      if (!(await this.fill())) throw new MultipartError("multipart: NextPart: EOF");
    }
    if (this.buf[pos] === 0x0d) {
      if (!(await this.need(pos + 2))) throw new MultipartError("multipart: NextPart: EOF");
      if (this.buf[pos + 1] !== 0x0a) throw new MultipartError("multipart: expecting a new Part");
      pos += 2;
    } else if (this.buf[pos] === 0x0a) {
      pos += 1;
    } else {
      throw new MultipartError("multipart: expecting a new Part");
    }
    this.buf = this.buf.subarray(pos);

    // Header block up to an empty line.
    let headerEnd;
    for (;;) {
      if (this.buf.subarray(0, 2).equals(CRLF)) {
        headerEnd = 0;
        break;
      }
      headerEnd = this.buf.indexOf("\r\n\r\n");
      if (headerEnd >= 0) {
        headerEnd += 2;
        break;
      }
      if (this.buf.length > 64 * 1024) throw new MultipartError("multipart: message too large");
      if (!(await this.fill())) throw new MultipartError("multipart: NextPart: EOF");
    }
    const headerText = this.buf.subarray(0, headerEnd).toString("latin1");
    this.buf = this.buf.subarray(headerEnd + 2);
    const headers = new Map();
    for (const line of headerText.split("\r\n")) {
      const c = line.indexOf(":");
      if (c <= 0) continue;
      const k = line.slice(0, c).trim().toLowerCase();
      if (!headers.has(k)) headers.set(k, Buffer.from(line.slice(c + 1).trim(), "latin1").toString("utf8"));
    }
    const cd = parseMediaType(headers.get("content-disposition") ?? "");
    const part = {
      headers,
      formName: cd.type === "form-data" ? cd.params.name ?? "" : "",
      fileName: cd.params.filename,
      done: false,
      body: () => this.partBody(part),
    };
    this.current = part;
    return part;
  }

  async *partBody(part) {
    if (part.done) return;
    const d = this.delimiter;
    for (;;) {
      const i = this.buf.indexOf(d);
      if (i >= 0) {
        const chunk = this.buf.subarray(0, i);
        this.buf = this.buf.subarray(i + 2); // keep "--boundary"
        part.done = true;
        if (chunk.length) yield chunk;
        return;
      }
      const keep = d.length - 1;
      if (this.buf.length > keep) {
        const chunk = this.buf.subarray(0, this.buf.length - keep);
        this.buf = Buffer.from(this.buf.subarray(this.buf.length - keep));
        yield chunk;
      }
      if (!(await this.fill())) {
        part.done = true;
        throw new MultipartError("unexpected EOF");
      }
    }
  }
}
