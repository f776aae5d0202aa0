#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (committed): the
shapes the unit tests use, and the inputs that found the defects fixed in
issue 13, kept as regression seeds. Rerun after changing a seed here."""
import os, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def ld(field, payload):  # length-delimited field
    return varint(field << 3 | 2) + varint(len(payload)) + payload

def vi(field, n):
    return varint(field << 3) + varint(n)

def frame(flags, payload):
    return bytes([flags]) + struct.pack(">I", len(payload)) + payload

# ---- connect_frame: byte 0 seeds the cuts, then the body
out = ld(1, ld(2, ld(1, b"hello\n")))        # StartResponse{event{data{stdout}}}
err = ld(1, ld(2, ld(2, b"oops\n")))
start = ld(1, ld(1, vi(1, 42)))
end = ld(1, ld(3, vi(1, 1) + ld(3, b"exit status 1") ))
put("connect_frame", "stream", b"\x07" + frame(0, start) + frame(0, out) + frame(0, err) +
    frame(0, end) + frame(2, b"{}"))
put("connect_frame", "end_error", b"\x03" + frame(0, out) +
    frame(2, b'{"error":{"code":"permission_denied","message":"nope"}}'))
put("connect_frame", "empty_frames_split", b"\x01" + frame(0, b"") + frame(2, b""))
put("connect_frame", "varint6", b"\x05" + frame(0, b"\x0a\x0b\x12\x09\x0a\x82\x80\x80\x80\x80\x00hi")
    + frame(2, b"{}"))
put("connect_frame", "flags_ff", b"\x02" + frame(0xFF, b"x"))
put("connect_frame", "huge_len", b"\x02" + b"\x00\xff\xff\xff\xf0")
put("connect_frame", "bad_end_json", b"\x09" + frame(2, b'{"error":'))

# ---- errmap: 2 bytes of status, then the body
def st(code):
    return struct.pack(">H", code - 100)
put("errmap", "empty_401", st(401))
put("errmap", "nginx_502", st(502) + b"<html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")
put("errmap", "connect_404", st(404) + b'{"code":"not_found","message":"process with pid 42 not found"}')
put("errmap", "e2b_502", st(502) + b'{"sandboxId":"abc","message":"The sandbox was not found","code":502}')
put("errmap", "envd_int", st(507) + b'{"code":507,"message":"not enough disk space"}')
put("errmap", "deep_json", st(500) + b"[" * 2000 + b"]" * 2000)

# ---- exec_credential
def cred(status):
    return ('{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
            '"status":%s}' % status)
put("exec_credential", "token", cred('{"token":"t1","expirationTimestamp":"2030-01-02T03:04:05.5+01:00"}'))
put("exec_credential", "cert", cred('{"clientCertificateData":"C","clientKeyData":"K"}'))
put("exec_credential", "short_offset", cred('{"token":"t","expirationTimestamp":"2030-01-02T03:04:05-0:3"}'))
put("exec_credential", "zulu", cred('{"token":"t","expirationTimestamp":"2030-01-02T03:04:05Z"}'))

# ---- config_file
put("config_file", "every_option", """domain: gw.example:7788
scheme: https
runtime_token: ${CF_TEST_TOKEN}
runtime-port: 5000
api_key: key-${CF_TEST_UNSET:-dflt}-$$x
user: node
sandbox_base_url: http://base.example/x
ca_file: certs/ca.pem
headers:
  X-Team: infra
  X-Empty: ''
request_timeout_ms: 1500
transport: connect
keepalive_s: 20
idle_timeout_ms: 0
workers: 3
max_inflight: 77
fail_fast: yes
kubernetes:
  source: in-cluster
  kubeconfig: a.yaml:/abs/b.yaml
  context: prod
  in_cluster_dir: sa
  timeout_ms: 1234
  require_running: false
sandboxes:
  - name: builder
    id: sbx-1
  - name: agent
    k8s: team-a/agent-7
    runtime_token: own
  - {name: local, k8s: solo}
""")
put("config_file", "environments", """domain: base:1
auth_header: Basic dXNlcjo=
headers: {X-A: a, X-B: b}
kubernetes: {context: base-ctx, timeout_ms: 5}
sandboxes:
  - {name: one, id: base-one}
  - {name: two, id: base-two}
environment: staging
environments:
  staging:
    domain: staging:2
    headers: {x-b: B2, X-C: c}
    kubernetes: {context: staging-ctx}
    sandboxes: [{name: two, k8s: ns/two}, {name: three, id: s3}]
  qa:
    domain: qa:3
    user: deploy
  bare:
""")
put("config_file", "duplicates", "sandboxes:\n  - {b: 1, a: 1, c: 1, a: 2, b: 2}\napi_key: a\napi-key: b\n")
put("config_file", "anchors", "x: &a {domain: d}\nheaders: *a\n")

# ---- kubeconfig: two files split at "\n---8<---\n"
a = """clusters:
- name: c1
  cluster: {server: 'https://a.example:6443', certificate-authority-data: Zm9v}
users:
- name: u1
  user: {token: tok-u1}
- name: ux
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: plug, args: [a], env: [{name: A, value: b}]}
contexts:
- name: ctx
  context: {cluster: c1, user: u1, namespace: team}
current-context: ctx
"""
b = """clusters:
- name: c2
  cluster: {server: 'https://c2.example/', insecure-skip-tls-verify: true}
users:
- name: u2
  user: {username: bob, password: pw}
contexts:
- name: ctx
  context: {cluster: c2, user: u2}
- name: other
  context: {cluster: c2, user: ux}
current-context: other
"""
put("kubeconfig", "merged", a + "\n---8<---\n" + b)
put("kubeconfig", "one", b)

# ---- sandbox
put("sandbox", "running", '{"metadata":{"labels":{"agents.kruise.io/sandbox-id":"short"},'
    '"annotations":{"e2b.agents.kruise.io/envd-access-token":"legacy"}},'
    '"status":{"phase":"Running","podInfo":{"podIP":"10.1.2.3"},'
    '"conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"True"}]}}')
put("sandbox", "deleting", '{"metadata":{"annotations":{"agents.kruise.io/runtime-access-token":"new"},'
    '"deletionTimestamp":"2026-01-01T00:00:00Z","ownerReferences":[{"kind":"SandboxSet","name":"p",'
    '"controller":true}]},"spec":{"paused":true},"status":{"conditions":[{"type":"Ready",'
    '"status":"False","reason":"Pending","message":"waiting"}]}}')

# ---- fs_proto: EntryInfo fields name 1, type 2, path 3, size 4, mode 5,
# permissions 6, owner 7, group 8, modified_time 9, symlink_target 10
entry = (ld(1, b"a.txt") + vi(2, 1) + ld(3, b"/tmp/a.txt") + vi(4, 12) + vi(5, 0o644) +
         ld(6, b"-rw-r--r--") + ld(7, b"user") + ld(8, b"user") + ld(9, vi(1, 1700000000)) +
         ld(10, b"/tmp/b"))
put("fs_proto", "list_dir", ld(1, entry) + ld(1, ld(1, b"d") + vi(2, 2)))
put("fs_proto", "empty_entries", ld(1, b"") * 64)
put("fs_proto", "watch_event", ld(2, ld(1, b"a.txt") + vi(2, 1)))

# ---- jobs: envdctl batch files, read both as JSON Lines and as YAML
put("jobs", "jsonl", "\n".join([
    '{"id":"ok","cmd":"cat","stdin":"from stdin"}',
    '{"id":"exit7","cmd":"echo no >&2; exit 7","sandbox":"a","env":{"A":"b"},"cwd":"/w","user":"root"}',
    '{"id":"slow","cmd":"sleep 20","timeout":0.5,"retries":2}',
    '{"id":"nodl","argv":["true"],"upload":[{"src":"/nonexistent/in","dst":"/x"}],'
    '"download":[{"src":"/does/not/exist","dst":"/tmp/fuzz-nodl.txt"}]}',
    '{"id":"x","cmd":"true","colour":"red"}',
    '{"cmd": "true",',
    '["not","an","object"]',
    '# a comment',
    '',
    '{"argv":[]}',
    '{"cmd":"true","retries":"two"}',
]) + "\n")
put("jobs", "yaml", """- id: up
  cwd: /ud
  argv: [/bin/sh, -c, "tr a-z A-Z < in1.txt > out1.txt"]
  env: {K: v}
  download:
    - {src: /ud/out1.txt, dst: /tmp/fuzz-dl/out1.txt}
- cmd: 'true'
  retries: 3
- cmd: 'true'
  bogus: 1
- id: 1
- &a {cmd: x}
- *a
""")

# ---- files_reply: first byte = files sent - 1 (bits 0-1), body cut (bit 2)
put("files_reply", "envd", b"\x00" + b'[{"name":"a","type":"file","path":"/a"}]')
put("files_reply", "three", b"\x02" + b'[{"name":"a","type":"file","path":"/a"},'
    b'{"path":"/tmp/b"},{"name":"","type":"directory","path":"/"}]')
put("files_reply", "not_array", b"\x01" + b'{"path":"/a"}')
put("files_reply", "no_path", b"\x00" + b'[{"name":"a"}]')
put("files_reply", "cut", b"\x04" + b'[{"name":"a","type":"file","path":"/a"}]')
put("files_reply", "html", b"\x00" + b"<html>502 Bad Gateway</html>")
put("files_reply", "nested", b"\x00" + b"[" * 2000)

# ---- code_ndjson: first byte = piece size (bits 0-3, 0 = all at once),
# small line cap (bit 4); then an /execute stream as E2B's server writes it
# (template/server/stream.py: json.dumps per line, the end last), or a
# context reply.
CODE_STREAM = (
    b'{"type": "keepalive"}\n'
    b'{"type": "number_of_executions", "execution_count": 1}\n'
    b'{"type": "stdout", "text": "h\\u00e9\\n", "timestamp": "2026-12-02T12:00:00.000000+00:00"}\n'
    b'{"type": "stderr", "text": "e\\n"}\r\n'
    b'{"type": "result", "text": "42", "html": "<b/>", "png": "UE5H", "json": {"a": 1}, '
    b'"data": {"d": [1]}, "chart": {"type": "line"}, "extra": {}, "is_main_result": true}\n'
    b'{"type": "error", "name": "ValueError", "value": "bad", "traceback": "Traceback\\n"}\n'
    b'{"type": "end_of_execution"}\n')
put("code_ndjson", "stream", b"\x00" + CODE_STREAM)
put("code_ndjson", "stream_bytes", b"\x01" + CODE_STREAM)
put("code_ndjson", "stream_cut7", b"\x07" + CODE_STREAM)
put("code_ndjson", "stream_cap", b"\x10" + CODE_STREAM)
put("code_ndjson", "unexpected_end", b"\x03" + b'{"type": "unexpected_end_of_execution"}\n')
put("code_ndjson", "no_end", b"\x00" + b'{"type": "stdout", "text": "x"}')
put("code_ndjson", "after_end", b"\x00" + b'{"type": "end_of_execution"}\n{"type": "stdout"}\n')
put("code_ndjson", "context", b"\x00" + b'{"id":"c1","language":"python","cwd":"/home/user"}')
put("code_ndjson", "contexts", b"\x00" + b'[{"id":"c1","language":"python","cwd":"/home/user"},{"id":"c2"}]')
put("code_ndjson", "nested", b"\x00" + b'{"type": "result", "json": ' + b"[" * 3000 + b"\n")

# ---- h2c: byte 0 = kind << 1 | a SETTINGS frame first (| 8: close_send),
# byte 1 = cut - 1, then the server's HTTP/2 bytes (the client's stream is 1)
def h2(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload

def hp(name, value):  # HPACK literal without indexing, new name
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

def h2_headers(sid, status, ctype, end=False, extra=()):
    block = hp(":status", str(status)) + (hp("content-type", ctype) if ctype else b"")
    for k, v in extra:
        block += hp(k, v)
    return h2(1, 0x4 | (0x1 if end else 0), sid, block)

SET, SET_ACK = h2(4, 0, 0, b""), h2(4, 1, 0, b"")
stat_reply = ld(1, ld(1, b"x") + vi(2, 1))
put("h2c", "unary_ok", b"\x00\xff" + SET + SET_ACK + h2_headers(1, 200, "application/proto") +
    h2(0, 1, 1, stat_reply))
put("h2c", "unary_ok_cut3", b"\x01\x02" + SET_ACK + h2_headers(1, 200, "application/proto") +
    h2(0, 1, 1, stat_reply))
put("h2c", "stream_ok", b"\x03\xff" + SET_ACK + h2_headers(1, 200, "application/connect+proto") +
    h2(0, 0, 1, frame(0, start) + frame(0, out)) + h2(0, 1, 1, frame(0, end) + frame(2, b"{}")))
put("h2c", "stream_error_end", b"\x03\x10" + SET_ACK + h2_headers(1, 200, "application/connect+proto") +
    h2(0, 1, 1, frame(2, b'{"error":{"code":"not_found","message":"no such process"}}')))
put("h2c", "client_stream", b"\x0d\xff" + SET_ACK + h2(8, 0, 1, struct.pack(">I", 65535)) +
    h2_headers(1, 200, "application/connect+proto") + h2(0, 1, 1, frame(0, b"") + frame(2, b"{}")))
put("h2c", "status_503", b"\x01\xff" + SET_ACK + h2_headers(1, 503, "text/plain", extra=[("retry-after", "2")]) +
    h2(0, 1, 1, b"gateway_not_ready"))
put("h2c", "rst_refused", b"\x01\xff" + SET_ACK + h2(3, 0, 1, struct.pack(">I", 7)))
put("h2c", "rst_internal", b"\x03\xff" + SET_ACK + h2_headers(1, 200, "application/connect+proto") +
    h2(3, 0, 1, struct.pack(">I", 2)))
put("h2c", "goaway", b"\x01\xff" + SET_ACK + h2(7, 0, 0, struct.pack(">II", 0, 0)))
put("h2c", "low_limit", b"\x00\xff" + h2(4, 0, 0, struct.pack(">HI", 3, 0)) +
    h2(4, 0, 0, struct.pack(">HI", 3, 1)))
put("h2c", "http1", b"\x00\xff" + b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
