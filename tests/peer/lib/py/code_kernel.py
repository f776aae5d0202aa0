"""A tiny Python kernel for the reference code interpreter (one per context).

Reads requests on fd 0, one JSON object a line: {"code": str, "env": {...}}.
Answers on fd 3, one JSON object a line, in the order a Jupyter kernel
emits its messages, so that the Node side translates them as E2B's server
(template/server/messaging.py) translates Jupyter's:

  {"kind": "execute_input", "execution_count": n}
  {"kind": "stream", "name": "stdout"|"stderr", "text": str}
  {"kind": "display_data"|"execute_result", "data": {mime: value}}
  {"kind": "error", "ename": str, "evalue": str, "traceback": [str]}
  {"kind": "idle"}

State (the namespace) lives as long as the process. The value of a final
expression is the execute_result, with text/plain its repr() and the
other representations from the IPython display protocol methods
(_repr_html_, _repr_png_, ..., _repr_mimebundle_). display(obj) sends a
display_data. SIGINT interrupts the running code (KeyboardInterrupt).
"""
import ast
import base64
import io
import json
import os
import sys
import traceback

PROTO = os.fdopen(3, "w", encoding="utf-8")

REPR_METHODS = [
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_pdf_", "application/pdf"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_javascript_", "application/javascript"),
]


def send(msg):
    PROTO.write(json.dumps(msg) + "\n")
    PROTO.flush()


class Stream(io.TextIOBase):
    """sys.stdout / sys.stderr: text goes out as stream messages, a line at
    a time (and the rest on flush, as IPython's buffered streams do)."""

    def __init__(self, name):
        self.name = name
        self.buf = ""

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str")
        self.buf += s
        cut = self.buf.rfind("\n")
        if cut >= 0:
            out, self.buf = self.buf[: cut + 1], self.buf[cut + 1 :]
            send({"kind": "stream", "name": self.name, "text": out})
        return len(s)

    def flush(self):
        if self.buf:
            out, self.buf = self.buf, ""
            send({"kind": "stream", "name": self.name, "text": out})


def mime_bundle(obj):
    data = {"text/plain": repr(obj)}
    for method, mime in REPR_METHODS:
        fn = getattr(obj, method, None)
        if fn is None:
            continue
        value = fn()
        if value is None:
            continue
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        data[mime] = value
    fn = getattr(obj, "_repr_mimebundle_", None)
    if fn is not None:
        extra = fn()
        if isinstance(extra, tuple):
            extra = extra[0]
        data.update(extra or {})
    return data


def flush_streams():
    sys.stdout.flush()
    sys.stderr.flush()


def display(*objs):
    flush_streams()
    for obj in objs:
        send({"kind": "display_data", "data": mime_bundle(obj)})


def send_error(exc, skip_frames):
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    send({"kind": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": lines})


class Kernel:
    def __init__(self):
        self.ns = {"__name__": "__main__", "display": display}
        self.count = 0

    def run(self, code):
        try:
            tree = ast.parse(code, "<cell>", "exec")
        except SyntaxError as exc:
            send_error(exc, 99)
            return
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        try:
            exec(compile(tree, "<cell>", "exec"), self.ns)
            if last is not None:
                value = eval(compile(last, "<cell>", "eval"), self.ns)
                if value is not None:
                    self.ns["_"] = value
                    flush_streams()
                    send({"kind": "execute_result", "data": mime_bundle(value)})
        except BaseException as exc:  # noqa: B036 - the user's code may raise anything
            flush_streams()
            send_error(exc, 1)

    def execute(self, req):
        self.count += 1
        send({"kind": "execute_input", "execution_count": self.count})
        saved = {}
        for k, v in (req.get("env") or {}).items():
            saved[k] = os.environ.get(k)
            os.environ[k] = v
        try:
            self.run(req["code"])
        except KeyboardInterrupt as exc:  # an interrupt between two steps
            send_error(exc, 99)
        finally:
            flush_streams()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            send({"kind": "idle"})


def main():
    requests = os.fdopen(0, "r", encoding="utf-8")
    sys.stdin = io.StringIO("")
    sys.stdout = Stream("stdout")
    sys.stderr = Stream("stderr")
    kernel = Kernel()
    while True:
        try:
            line = requests.readline()
        except KeyboardInterrupt:  # an interrupt while idle: nothing to stop
            continue
        if not line:
            return
        if line.strip():
            kernel.execute(json.loads(line))


if __name__ == "__main__":
    main()
