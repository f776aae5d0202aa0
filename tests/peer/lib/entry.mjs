// EntryInfo as envd fills it (spec §8.1): lstat for name/size/permissions,
// the target's type and permission bits for symlinks, Go's FileMode string.
import fs from "node:fs/promises";
import { constants as C } from "node:fs";
import { FileType } from "../gen/filesystem_pb.js";
import { Code, ConnectError, pathError } from "./errors.mjs";

// Not in fs.constants.
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_ISVTX = 0o1000;

/** Go's os.FileMode.String() for a raw st_mode. */
export function goModeString(stMode) {
  const mode = Number(stMode);
  const fmt = mode & C.S_IFMT;
  let s = "";
  if (fmt === C.S_IFDIR) s += "d";
  if (fmt === C.S_IFLNK) s += "L";
  if (fmt === C.S_IFBLK || fmt === C.S_IFCHR) s += "D";
  if (fmt === C.S_IFIFO) s += "p";
  if (fmt === C.S_IFSOCK) s += "S";
  if (mode & S_ISUID) s += "u";
  if (mode & S_ISGID) s += "g";
  if (fmt === C.S_IFCHR) s += "c";
  if (mode & S_ISVTX) s += "t";
  if (s === "") s = "-";
  const rwx = "rwxrwxrwx";
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? rwx[i] : "-";
  return s;
}

function typeOf(stMode) {
  const fmt = Number(stMode) & C.S_IFMT;
  if (fmt === C.S_IFREG) return FileType.FILE;
  if (fmt === C.S_IFDIR) return FileType.DIRECTORY;
  return FileType.UNSPECIFIED;
}

/** Go's filepath.Base. */
export function goBase(p) {
  if (p === "") return ".";
  const trimmed = p.replace(/\/+$/, "");
  if (trimmed === "") return "/";
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function timestamp(st) {
  const ns = st.mtimeNs;
  if (ns === 0n) return undefined;
  let seconds = ns / 1000000000n;
  let nanos = Number(ns % 1000000000n);
  if (nanos < 0) {
    nanos += 1e9;
    seconds -= 1n;
  }
  return { seconds, nanos };
}

/**
 * Builds EntryInfo for a virtual path whose lstat is `st` (bigint stats).
 * Metadata is filled in afterwards by fillMetadata (one helper round trip
 * for many entries).
 */
export async function entryFromStat(sb, vpath, st) {
  const real = sb.toReal(vpath);
  const entry = {
    name: goBase(vpath),
    type: typeOf(st.mode),
    path: vpath,
    size: st.size,
    mode: Number(st.mode) & 0o777,
    permissions: goModeString(st.mode),
    owner: sb.ownerName(Number(st.uid)),
    group: sb.groupName(Number(st.gid)),
    modifiedTime: timestamp(st),
    metadata: {},
  };
  if ((Number(st.mode) & C.S_IFMT) === C.S_IFLNK) {
    let target;
    try {
      target = await fs.realpath(real);
    } catch {
      target = real;
    }
    entry.symlinkTarget = sb.toVirtual(target);
    try {
      const t = await fs.stat(target, { bigint: true });
      entry.type = typeOf(t.mode);
      entry.mode = Number(t.mode) & 0o777;
    } catch {
      entry.type = FileType.UNSPECIFIED;
      entry.mode = 0;
    }
  }
  if (entry.modifiedTime === undefined) delete entry.modifiedTime;
  return entry;
}

export async function fillMetadata(sb, entries) {
  const metas = await sb.xattr.get(entries.map((e) => sb.toReal(e.path)));
  entries.forEach((e, i) => {
    e.metadata = metas[i] ?? {};
  });
  return entries;
}

/**
 * envd's entryInfo(path): lstat + EntryInfo, with its not_found / internal
 * errors.
 */
export async function entryInfo(sb, vpath) {
  let st;
  try {
    st = await fs.lstat(sb.toReal(vpath), { bigint: true });
  } catch (err) {
    const text = pathError("lstat", vpath, err);
    if (err.code === "ENOENT") {
      throw new ConnectError(`file not found: ${text}`, Code.NotFound);
    }
    throw new ConnectError(`error getting file info: ${text}`, Code.Internal);
  }
  const e = await entryFromStat(sb, vpath, st);
  await fillMetadata(sb, [e]);
  return e;
}

