"""Makes anonymous pipes for the peer server, which Node.js cannot.

Reads lines on fd 0: "make N" answers "fds R1 W1 R2 W2 ..." (N new pipes,
held open here); "close FD..." closes them. The server opens each end
through /proc/<this pid>/fd/<fd>, which gives it its own open file of the
same pipe, then has the helper close its copies. EOF on fd 0 ends it.
"""
import os
import sys


def main():
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "make":
            fds = []
            for _ in range(int(parts[1])):
                r, w = os.pipe()
                fds += [r, w]
            sys.stdout.write("fds %s\n" % " ".join(map(str, fds)))
            sys.stdout.flush()
        elif parts[0] == "close":
            for fd in parts[1:]:
                try:
                    os.close(int(fd))
                except OSError:
                    pass


if __name__ == "__main__":
    main()
