"""Runs one command on a new pseudo-terminal for the peer server.

Usage: pty_helper.py ROWS COLS -- CMD [ARGS...]

fd 0      bytes for the terminal (written to the pty master)
fd 1      everything the terminal prints (read from the pty master)
fd 3      control in, lines: "resize ROWS COLS", "stop" (stop reading the
          terminal once the child has exited); EOF means the server is gone
fd 4      control out, lines: "pid N" once started, then "exit N" or
          "signal N" (with " core" when a core was dumped) when it exits

As envd reads the master until EIO (services/process/handler New), fd 1
stays open after the child's exit while anything else holds the terminal
(a background job), until "stop" (envd's Handler.Wait closing the master
after a SIGTERM/SIGKILL or the deadline).

The child becomes a session leader with the pty as its controlling terminal
and runs `/bin/sh -c 'exec "$@"' -- CMD ARGS`, as envd runs commands, so the
reported pid is the user's program and an unknown command exits with 127.
"""
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import termios

CHUNK = 16 * 1024


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        data = data[n:]


def main():
    rows, cols = int(sys.argv[1]), int(sys.argv[2])
    argv = sys.argv[3:]
    if argv and argv[0] == "--":
        argv = argv[1:]

    master, slave = os.openpty()
    set_size(master, rows, cols)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)

    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.closerange(3, 1 << 16)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            env = dict(os.environ)
            if env.pop("PEER_PTY_DROP_LC_CTYPE", None):
                env.pop("LC_CTYPE", None)
            os.execve("/bin/sh", ["/bin/sh", "-c", 'exec "$@"', "--"] + argv, env)
        finally:
            os._exit(127)

    os.close(slave)
    os.set_blocking(master, False)
    ctl_out = 4
    write_all(ctl_out, b"pid %d\n" % pid)

    pending_in = b""
    stdin_open = True
    ctl_open = True
    master_open = True
    out_open = True
    stop = False
    ctl_buf = b""
    status = None

    while True:
        if status is not None and (not master_open or not out_open or stop or not ctl_open):
            break
        rlist = [wake_r]
        if master_open:
            rlist.append(master)
        if stdin_open:
            rlist.append(0)
        if ctl_open:
            rlist.append(3)
        wlist = [master] if (pending_in and master_open) else []
        try:
            r, w, _ = select.select(rlist, wlist, [], 1.0)
        except InterruptedError:
            r, w = [], []
        if wake_r in r:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
        if master in r:
            try:
                data = os.read(master, CHUNK)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                master_open = False
            elif data and out_open:
                try:
                    write_all(1, data)
                except OSError:
                    out_open = False
        if 0 in r:
            data = os.read(0, 65536)
            if not data:
                stdin_open = False
            else:
                pending_in += data
        if master in w and pending_in:
            try:
                n = os.write(master, pending_in)
                pending_in = pending_in[n:]
            except BlockingIOError:
                pass
            except OSError:
                pending_in = b""
        if 3 in r:
            data = os.read(3, 4096)
            if not data:
                ctl_open = False
                if status is None:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
            else:
                ctl_buf += data
                while b"\n" in ctl_buf:
                    line, ctl_buf = ctl_buf.split(b"\n", 1)
                    parts = line.split()
                    if parts == [b"stop"]:
                        stop = True
                    elif len(parts) == 3 and parts[0] == b"resize":
                        try:
                            set_size(master, int(parts[1]), int(parts[2]))
                        except (OSError, ValueError):
                            pass
        if status is None:
            try:
                wpid, st = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, st = pid, 0
            if wpid == pid:
                status = st
                if os.WIFSIGNALED(status):
                    line = "signal %d%s\n" % (os.WTERMSIG(status), " core" if os.WCOREDUMP(status) else "")
                else:
                    line = "exit %d\n" % os.WEXITSTATUS(status)
                write_all(ctl_out, line.encode())
    os.close(1)
    os.close(master)

if __name__ == "__main__":
    main()
