#!/usr/bin/env bash
# ctest bench.report: `envd-bench --report DIR --rows FILE` on the committed
# rows of the last full run (bench/report/rows.jsonl). Checks that rows.jsonl
# round-trips byte for byte, that every chart is drawn and names its series,
# that without gnuplot the rows are still written and the error names the
# package, and that a bad row is refused with its line number. Needs gnuplot
# (scripts/install-deps.sh installs gnuplot-nox); without it this fails.
#   bench/report-test.sh BUILD/envd-bench bench/report/rows.jsonl
set -euo pipefail
bench=$1 rows=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
fail() { echo "FAIL: $*" >&2; echo "$passed passed, 1 failed"; exit 1; }
ok() { passed=$((passed + 1)); }

command -v gnuplot >/dev/null || fail "gnuplot not installed (Debian gnuplot-nox; scripts/install-deps.sh)"

# 1. the charts of the committed rows
"$bench" --report "$tmp/r" --rows "$rows" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "--report exited non-zero"; }
cmp -s "$rows" "$tmp/r/rows.jsonl" || fail "rows.jsonl differs from the rows read"
for sc in stat list run; do
  grep -q "\"scenario\":\"$sc\"" "$rows" || fail "the committed rows have no $sc rows"
  for kind in calls cpu latency; do
    f="$tmp/r/$sc-$kind.svg"
    [ -s "$f" ] || fail "$f not drawn"
    grep -q '</svg>' "$f" || fail "$f is not a whole SVG"
    grep -q '>libenvd grpc<' "$f" || fail "$f does not name the series libenvd grpc"
  done
done
for sc in sandboxes inflight; do  # not closed-loop: only in memory.svg
  [ ! -e "$tmp/r/$sc-calls.svg" ] || fail "$sc got a calls chart"
done
grep -q '>sandboxes: idle client, grpc<' "$tmp/r/memory.svg" || fail "memory.svg lacks the sandboxes series"
grep -q '>inflight: Stat in flight, grpc<' "$tmp/r/memory.svg" || fail "memory.svg lacks the inflight series"
ok

# 2. no gnuplot: the rows are written, the charts are not, the package is named
set +e
"$bench" --report "$tmp/n" --rows "$rows" --gnuplot "$tmp/absent/gnuplot" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "without gnuplot: exit $rc, not 1"
grep -q 'gnuplot-nox' "$tmp/err" || fail "without gnuplot: the message does not name gnuplot-nox: $(cat "$tmp/err")"
cmp -s "$rows" "$tmp/n/rows.jsonl" || fail "without gnuplot: rows.jsonl not written"
! ls "$tmp/n"/*.svg >/dev/null 2>&1 || fail "without gnuplot: SVGs appeared"
ok

# 3. a bad row is refused, naming its line
printf '{"client":"libenvd"}\nnot json\n' >"$tmp/bad.jsonl"
set +e
"$bench" --report "$tmp/b" --rows "$tmp/bad.jsonl" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "bad row: exit $rc, not 1"
grep -q 'bad.jsonl:2:' "$tmp/err" || fail "bad row: the message does not name line 2: $(cat "$tmp/err")"
ok

echo "$passed passed, 0 failed"
