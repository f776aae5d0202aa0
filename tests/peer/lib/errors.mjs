// Error text in the shape envd (a Go program) produces, so that clients see
// the same messages: Go's errno strings, *PathError and *LinkError layouts.
import { Code, ConnectError } from "@connectrpc/connect";

const ERRNO_TEXT = {
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  ESRCH: "no such process",
  EINTR: "interrupted system call",
  EIO: "input/output error",
  EBADF: "bad file descriptor",
  EAGAIN: "resource temporarily unavailable",
  ENOMEM: "cannot allocate memory",
  EACCES: "permission denied",
  EBUSY: "device or resource busy",
  EEXIST: "file exists",
  EXDEV: "invalid cross-device link",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EINVAL: "invalid argument",
  EMFILE: "too many open files",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  EPIPE: "broken pipe",
  ENAMETOOLONG: "file name too long",
  ENOTEMPTY: "directory not empty",
  ELOOP: "too many levels of symbolic links",
  EDQUOT: "disk quota exceeded",
  ENOTSUP: "operation not supported",
  EOPNOTSUPP: "operation not supported",
  ENODATA: "no data available",
  E2BIG: "argument list too long",
};

/** Go's syscall.Errno.Error() for a Node.js system error. */
export function errnoText(err) {
  if (err && err.code && ERRNO_TEXT[err.code]) return ERRNO_TEXT[err.code];
  if (err && err.code) return err.code.toLowerCase();
  return String(err && err.message ? err.message : err);
}

/** Go's *os.PathError text: "<op> <path>: <errno>". */
export function pathError(op, path, err) {
  return `${op} ${path}: ${errnoText(err)}`;
}

/** Go's *os.LinkError text: "<op> <old> <new>: <errno>". */
export function linkError(op, oldPath, newPath, err) {
  return `${op} ${oldPath} ${newPath}: ${errnoText(err)}`;
}

export { Code, ConnectError };
