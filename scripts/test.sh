#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs the C unit and
# integration tests (each starts the reference servers it needs itself, on
# loopback), the reference server's conformance suite, then rebuilds with
# ASan+UBSan and runs the C tests again, and once more with TSan.
#   scripts/test.sh            everything
#   SKIP_SANITIZERS=1 scripts/test.sh
#   SKIP_FUZZ=1 scripts/test.sh        (no clang needed)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENVD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== install: pkg-config and find_package consumers"
tests/install/check.sh build

echo "== C tests"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 300)

echo "== reference server conformance (e2b SDK)"
(cd tests/peer && npm test)

if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== C tests under ASan+UBSan"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DENVD_SANITIZE=address -DENVD_WERROR=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     LSAN_OPTIONS=suppressions="$PWD/../tests/lsan.supp" \
     ctest --output-on-failure -j"$jobs" --timeout 600)
fi
if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
  # Every unit and integration test. Two knobs keep the stage short without
  # losing a code path: the big-file round trip moves 256 MiB instead of
  # 2 GiB (the same transfer code, ~8x less time under TSan), and the load
  # test starts 300 concurrent runs instead of 1000: each start must be
  # answered within the 20 s request timeout, and TSan makes the client
  # several times slower, so 1000 turns it into a throughput test.
  echo "== C tests under TSan"
  t0=$SECONDS
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DENVD_SANITIZE=thread -DENVD_WERROR=ON >/dev/null
  cmake --build build-tsan -j"$jobs"
  (cd build-tsan && TSAN_OPTIONS="suppressions=$PWD/../tests/tsan.supp halt_on_error=1" \
     ENVD_TEST_BIG_MB=256 ENVD_TEST_LOAD_RUNS=300 ctest --output-on-failure -j"$jobs" --timeout 600)
  echo "== TSan stage: $((SECONDS - t0)) s"
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  # A short run of every libFuzzer target from its committed seeds: the
  # regression inputs replay, and each parser gets a few seconds of new ones.
  # Longer runs: scripts/fuzz.sh 3600.
  echo "== fuzz targets, ${FUZZ_SECONDS:-10} s each"
  scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fi
echo "== all tests passed"
