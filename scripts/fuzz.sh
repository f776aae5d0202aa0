#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan, and runs each for SECONDS (default 60) on one core, starting from
# its committed seed corpus tests/fuzz/corpus/<name>. New inputs go to
# build-fuzz/corpus/<name> (not committed); crashes to build-fuzz/crashes/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Exit status: non-zero when a target crashed, leaked or broke a check.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENVD_FUZZ=ON \
  -DENVD_BUILD_TESTS=OFF >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
mkdir -p build-fuzz/crashes
status=0
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/${t#fuzz_}
  work=build-fuzz/corpus/${t#fuzz_}
  mkdir -p "$work"
  echo "== $t: ${secs} s"
  # -rss_limit_mb bounds what one input may make the client hold; the
  # timeout catches inputs that make a parser spin.
  if ! UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
      build-fuzz/"$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -artifact_prefix=build-fuzz/crashes/"$t"- -print_final_stats=1 "$work" "$seeds" \
        > build-fuzz/"$t".log 2>&1; then
    echo "$t FAILED (build-fuzz/$t.log):"
    tail -40 build-fuzz/"$t".log
    status=1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ *DONE' build-fuzz/"$t".log | tr '\n' ' '
  echo
done
exit $status
