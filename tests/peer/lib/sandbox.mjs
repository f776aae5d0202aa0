// The sandbox's view of the world: the root directory every path is confined
// to, the virtual users and their homes, default user/workdir, env vars.
//
// Paths come in two flavours. A *virtual* path is what a client sends and
// sees ("/home/user/a.txt"). The *real* path is where the file lives on this
// machine (<root>/home/user/a.txt). Only real paths touch the filesystem; only
// virtual paths go back on the wire.
import { readFileSync, mkdirSync } from "node:fs";
import path from "node:path";

function readColonFile(file) {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split(":"));
  } catch {
    return [];
  }
}

export class Sandbox {
  constructor({ root, defaultUser = "root", token = null }) {
    this.root = path.resolve(root);
    this.defaultUser = defaultUser;
    this.defaultWorkdir = null; // set by /init defaultWorkdir
    this.token = token;
    this.envVars = new Map([["E2B_SANDBOX", "true"]]);
    this.lastInit = null;
    this.passwdByName = new Map();
    this.passwdByUid = new Map();
    this.groupByGid = new Map();
    this.createdHomes = new Set();
    this.loadAccounts();
  }

  loadAccounts() {
    for (const f of readColonFile("/etc/passwd")) {
      const [name, , uid, gid] = f;
      const u = { name, uid: Number(uid), gid: Number(gid) };
      this.passwdByName.set(name, u);
      if (!this.passwdByUid.has(u.uid)) this.passwdByUid.set(u.uid, name);
    }
    for (const f of readColonFile("/etc/group")) {
      const [name, , gid] = f;
      if (!this.groupByGid.has(Number(gid))) this.groupByGid.set(Number(gid), name);
    }
  }

  ownerName(uid) {
    return this.passwdByUid.get(uid) ?? String(uid);
  }

  groupName(gid) {
    return this.groupByGid.get(gid) ?? String(gid);
  }

  /**
   * Looks up a virtual user: root, "user" (the E2B templates' default) and
   * every account in /etc/passwd. Returns null for an unknown name.
   */
  lookupUser(name) {
    if (typeof name !== "string" || name === "") return null;
    const pw = this.passwdByName.get(name);
    if (!pw && name !== "root" && name !== "user") return null;
    const home = name === "root" ? "/root" : `/home/${name}`;
    const u = {
      name,
      home, // virtual
      uid: pw ? pw.uid : null, // null: no real account to chown to
      gid: pw ? pw.gid : null,
    };
    this.ensureHome(u);
    return u;
  }

  ensureHome(u) {
    if (this.createdHomes.has(u.name)) return;
    try {
      mkdirSync(this.toReal(u.home), { recursive: true, mode: 0o755 });
    } catch {
      // reported later, when something uses the home
    }
    this.createdHomes.add(u.name);
  }

  /**
   * Virtual path -> real path under the root. envd hands absolute paths to
   * the kernel as they are (ExpandAndResolve does not clean them), so
   * "/f/" on a file is ENOTDIR and "/a/link/.." goes through the link: the
   * path is kept as given. Only a ".." that would climb above "/" is
   * cleaned lexically, so that nothing escapes the root.
   */
  toReal(vpath) {
    if (!vpath.startsWith("/")) vpath = "/" + vpath;
    let depth = 0;
    for (const seg of vpath.split("/")) {
      if (seg === "" || seg === ".") continue;
      depth += seg === ".." ? -1 : 1;
      if (depth < 0) {
        const clean = path.posix.resolve("/", vpath);
        return clean === "/" ? this.root : this.root + clean;
      }
    }
    return vpath === "/" ? this.root : this.root + vpath;
  }

  /** Real path -> virtual path (paths outside the root are returned as is). */
  toVirtual(rpath) {
    if (rpath === this.root) return "/";
    if (rpath.startsWith(this.root + "/")) return rpath.slice(this.root.length);
    return rpath;
  }

  /**
   * envd's ExpandAndResolve on virtual paths: "" -> default workdir, "~" and
   * "~/x" -> the user's home, absolute paths as they are (not cleaned),
   * relative paths joined to the home and cleaned. Throws an Error whose
   * message is envd's on "~otheruser".
   */
  resolve(p, user) {
    if (p === "" && this.defaultWorkdir) p = this.defaultWorkdir;
    if (p.length > 0 && p[0] === "~") {
      if (p.length > 1 && p[1] !== "/" && p[1] !== "\\") {
        throw new Error(
          `failed to expand path '${p}' for user '${user.name}': cannot expand user-specific home dir`,
        );
      }
      p = path.posix.join(user.home, p.slice(1));
    }
    if (p.startsWith("/")) return p;
    return path.posix.join(user.home, p) || "/";
  }

  /** Creates the real directories for a virtual default workdir, if any. */
  setDefaultWorkdir(vdir) {
    this.defaultWorkdir = vdir || null;
  }
}

/**
 * Go's (*http.Request).BasicAuth(): the user name from "Basic base64(u:p)",
 * or null when the header is absent or not valid Basic credentials.
 */
export function basicAuthUser(header) {
  if (!header) return null;
  const prefix = "basic ";
  if (header.length < prefix.length || header.slice(0, prefix.length).toLowerCase() !== prefix) {
    return null;
  }
  const b64 = header.slice(prefix.length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
  const decoded = Buffer.from(b64, "base64").toString("latin1");
  const i = decoded.indexOf(":");
  if (i < 0) return null;
  return Buffer.from(decoded.slice(0, i), "latin1").toString("utf8");
}
