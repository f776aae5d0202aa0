"""Reads and writes envd's file metadata (user.e2b.* extended attributes).

Node.js has no xattr API, so the peer server keeps one of these running and
talks JSON lines over stdin/stdout:
  {"id": 1, "op": "get", "paths": ["/real/a", ...]}
      -> {"id": 1, "result": [{"k": "v"}, ...]}       (one object per path)
  {"id": 2, "op": "set", "path": "/real/a", "meta": {"k": "v"}}
      -> {"id": 2, "result": true} or {"id": 2, "error": "...", "errno": "ENOSPC"}
"set" replaces the whole user.e2b.* set of the file.
"""
import errno
import json
import os
import sys

PREFIX = "user.e2b."


def get_meta(path):
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if not name.startswith(PREFIX):
            continue
        try:
            raw = os.getxattr(path, name, follow_symlinks=False)
            out[name[len(PREFIX):]] = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return out


def set_meta(path, meta):
    for name in os.listxattr(path):
        if name.startswith(PREFIX):
            os.removexattr(path, name)
    for key, value in meta.items():
        os.setxattr(path, PREFIX + key, value.encode("utf-8"))


def main():
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        resp = {"id": req.get("id")}
        try:
            if req.get("op") == "get":
                resp["result"] = [get_meta(p) for p in req.get("paths", [])]
            elif req.get("op") == "set":
                set_meta(req["path"], req.get("meta", {}))
                resp["result"] = True
            else:
                resp["error"] = "unknown op"
        except OSError as e:
            resp["error"] = e.strerror or str(e)
            resp["errno"] = errno.errorcode.get(e.errno, "")
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
