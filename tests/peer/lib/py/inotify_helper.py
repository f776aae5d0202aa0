"""Watches a directory with inotify, the way envd's fsnotify does, for the
peer server (Node's fs.watch cannot tell a create from a rename or a chmod
from a write).

Usage: inotify_helper.py PATH RECURSIVE(0|1)

stdout, one JSON object per line:
  {"ready": true}                              once the watches are in place
  {"path": "/abs/name", "ops": ["CREATE"]}     one inotify event; ops in
                                               envd's order CREATE, RENAME,
                                               CHMOD, WRITE, REMOVE
  {"error": "..."}                             the watcher failed; it exits
The helper exits when its stdin is closed.
"""
import ctypes
import ctypes.util
import errno
import json
import os
import select
import struct
import sys

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000

MASK = (IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
        | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


def emit(obj):
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(0)


def fail(msg):
    emit({"error": msg})
    sys.exit(1)


class Watcher:
    def __init__(self, root, recursive):
        self.root = root
        self.recursive = recursive
        self.fd = libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if self.fd < 0:
            fail("error creating watcher: " + os.strerror(ctypes.get_errno()).lower())
        self.paths = {}

    def add(self, path, must=False):
        wd = libc.inotify_add_watch(self.fd, path.encode(), MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if must or err == errno.ENOSPC:
                fail("error adding path %s to watcher: %s" % (self.root, os.strerror(err).lower()))
            return
        self.paths[wd] = path

    def add_tree(self, top, announce):
        """Watches top and, when recursive, every directory below it. With
        announce, reports what already sits in a newly created directory as
        created (as fsnotify does after `mkdir -p`)."""
        stack = [top]
        while stack:
            d = stack.pop()
            self.add(d)
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if announce:
                    emit({"path": e.path, "ops": ["CREATE"]})
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                except OSError:
                    pass

    def run(self):
        buf = b""
        while True:
            r, _, _ = select.select([self.fd, 0], [], [])
            if 0 in r:
                if not os.read(0, 4096):
                    return
            if self.fd not in r:
                continue
            try:
                buf += os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            while len(buf) >= 16:
                wd, mask, _cookie, length = struct.unpack("iIII", buf[:16])
                if len(buf) < 16 + length:
                    break
                name = buf[16:16 + length].rstrip(b"\0").decode("utf-8", "surrogateescape")
                buf = buf[16 + length:]
                self.handle(wd, mask, name)

    def handle(self, wd, mask, name):
        if mask & IN_Q_OVERFLOW:
            fail("fsnotify: queue or buffer overflow")
        base = self.paths.get(wd)
        if mask & IN_IGNORED:
            self.paths.pop(wd, None)
            return
        if base is None:
            return
        path = os.path.join(base, name) if name else base
        ops = []
        if mask & (IN_CREATE | IN_MOVED_TO):
            ops.append("CREATE")
        if mask & (IN_MOVE_SELF | IN_MOVED_FROM):
            ops.append("RENAME")
        if mask & IN_ATTRIB:
            ops.append("CHMOD")
        if mask & IN_MODIFY:
            ops.append("WRITE")
        if mask & (IN_DELETE | IN_DELETE_SELF):
            ops.append("REMOVE")
        # Events about a watched subdirectory itself are reported by its
        # parent's watch already; only the root's own events come from here.
        if not name and base != self.root:
            return
        if ops:
            emit({"path": path, "ops": ops})
        if self.recursive and name and (mask & IN_ISDIR) and (mask & (IN_CREATE | IN_MOVED_TO)):
            self.add_tree(path, announce=True)


def main():
    root = sys.argv[1]
    recursive = sys.argv[2] == "1"
    w = Watcher(root, recursive)
    w.add(root, must=True)
    if recursive:
        try:
            for e in sorted(os.scandir(root), key=lambda e: e.name):
                if e.is_dir(follow_symlinks=False):
                    w.add_tree(e.path, announce=False)
        except OSError:
            pass
    emit({"ready": True})
    w.run()


if __name__ == "__main__":
    main()
