#!/usr/bin/env bash
# ctest bench.go-connect: envd-bench builds the go-connect driver (protoc and
# the connect-go plugins at go.mod's pins; Go modules from the proxy) and
# runs it against the reference server, which logs every request it gets
# (PEER_HEADER_LOG). Checks, per transport: a stat case and a run case with
# calls and no errors (libenvd's too, for the target lines), the requests the server saw (method path and media
# type: application/proto or application/connect+proto for Connect,
# application/grpc for gRPC; connect-tls through nginx's TLS port), at least
# as many as the calls counted; the
# target lines against go-connect; go-connect's series in the --report
# charts; and that an address nobody listens on gives a clear error. Needs
# Go (>= 1.24) and protoc in PATH, gnuplot; without them this fails.
#   bench/go-connect-test.sh BUILD/envd-bench
set -euo pipefail
bench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
fail() { echo "FAIL: $*" >&2; echo "$passed passed, 1 failed"; exit 1; }
ok() { passed=$((passed + 1)); }

command -v go >/dev/null || fail "go not installed (Go >= 1.24 needed for the go-connect driver)"
command -v protoc >/dev/null || fail "protoc not installed (Debian protobuf-compiler)"

# The rows of one scenario (go-connect and libenvd, whose rows the target
# lines need): a row per client and transport, calls and no errors. Prints
# "transport calls" per row, libenvd's too: the server logs both.
check_rows() {
  python3 - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for client in ("go-connect", "libenvd"):
    seen = {r["transport"] for r in rows if r["client"] == client}
    if seen != {"grpc", "connect-h1", "connect-h2c", "connect-tls"}:
        sys.exit(f"{client} rows for {sorted(seen)}, not the four transports: {rows}")
for r in rows:
    if r.get("skipped") or r["calls"] <= 0 or r["errors"] != 0:
        sys.exit(f"{r['client']} {r['scenario']} {r['transport']}: calls {r['calls']}, "
                 f"errors {r['errors']}, skipped {r.get('skipped', False)}: {r.get('note')}")
    if r["client"] == "go-connect" and "connect-go v" not in r.get("note", ""):
        sys.exit(f"the row's note does not say what go-connect is: {r.get('note')}")
    print(r["transport"], r["calls"])
EOF
}

# requests METHOD_PATH MEDIA_TYPE: how many the server logged
requests() { grep -c "^POST $1 .*content-type=$2\$" "$tmp/requests.log" || true; }

for sc in stat run; do
  : >"$tmp/requests.log"
  PEER_HEADER_LOG="$tmp/requests.log" "$bench" --clients go-connect,libenvd --scenario $sc \
    --concurrency 4 --duration 0.5 --warmup 0.2 --json >"$tmp/$sc.jsonl" 2>"$tmp/$sc.err" ||
    { cat "$tmp/$sc.err" >&2; fail "$sc: envd-bench exited non-zero"; }
  counts=$(check_rows "$tmp/$sc.jsonl") || { cat "$tmp/$sc.err" >&2; fail "$sc: bad rows"; }
  if [ $sc = stat ]; then
    path=/filesystem.Filesystem/Stat connect=application/proto
  else
    path=/process.Process/Start connect=application/connect+proto
  fi
  grpc_calls=$(awk '$1 == "grpc" {n += $2} END {print n}' <<<"$counts")
  connect_calls=$(awk '$1 != "grpc" {n += $2} END {print n}' <<<"$counts")
  grpc_seen=$(requests $path application/grpc)
  connect_seen=$(requests $path $connect)
  [ "$grpc_seen" -ge "$grpc_calls" ] ||
    fail "$sc: the server saw $grpc_seen gRPC $path requests for $grpc_calls calls"
  [ "$connect_seen" -ge "$connect_calls" ] ||
    fail "$sc: the server saw $connect_seen Connect $path requests ($connect) for $connect_calls calls"
  # nothing else from the driver (the setup's own requests are /files)
  others=$(grep -v -e "^POST $path " -e "^POST /files " -e "^GET /files " "$tmp/requests.log" || true)
  [ -z "$others" ] || fail "$sc: unexpected requests: $(sort <<<"$others" | uniq -c)"
  for t in grpc connect-h1 connect-h2c connect-tls; do
    grep -q "^  $sc *$t *c=4 .*the Go client's stack (go-connect) .*(< 1x): \(met\|MISSED\)" "$tmp/$sc.err" ||
      fail "$sc $t: no target line against go-connect: $(cat "$tmp/$sc.err")"
  done
  grep -q "^  go-connect: the agents-api runtime client's stack, not the module" "$tmp/$sc.err" ||
    fail "$sc: the targets do not say what go-connect is"
  ok
done

# the charts of these rows name go-connect's series
cat "$tmp/stat.jsonl" "$tmp/run.jsonl" >"$tmp/all.jsonl"
"$bench" --report "$tmp/r" --rows "$tmp/all.jsonl" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "--report exited non-zero"; }
for sc in stat run; do
  for kind in calls cpu latency; do
    grep -q '>go-connect connect-h2c<' "$tmp/r/$sc-$kind.svg" || fail "$sc-$kind.svg does not name go-connect connect-h2c"
  done
done
ok

# nobody listening: the row is skipped, the run fails, the driver says why
set +e
"$bench" --domain 127.0.0.1:1 --clients go-connect --scenario run --transport connect-h1 \
  --concurrency 1 --duration 0.2 --warmup 0 --json >"$tmp/down.jsonl" 2>"$tmp/down.err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "no server: exit $rc, not 1"
grep -q 'envd-bench-go-connect: failed to .*start.*: unavailable: .*connection refused' "$tmp/down.err" ||
  fail "no server: the driver's error is not clear: $(cat "$tmp/down.err")"
grep -q '"skipped":true' "$tmp/down.jsonl" || fail "no server: the row is not skipped: $(cat "$tmp/down.jsonl")"
ok

echo "$passed passed, 0 failed"
