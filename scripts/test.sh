#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs the C unit and
# integration tests (each starts the reference servers it needs itself, on
# loopback), the reference server's conformance suite, then rebuilds with
# ASan+UBSan and runs the C tests again.
#   scripts/test.sh            everything
#   SKIP_SANITIZERS=1 scripts/test.sh
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
  echo "== engine tests under TSan"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DENVD_SANITIZE=thread -DENVD_WERROR=ON >/dev/null
  cmake --build build-tsan -j"$jobs"
  (cd build-tsan && TSAN_OPTIONS="suppressions=$PWD/../tests/tsan.supp halt_on_error=1" \
     ctest --output-on-failure -j"$jobs" --timeout 600 -R 'test_future|test_grpc|test_connect|test_http|test_error_model|it_first_calls|it_engine')
fi
echo "== all tests passed"
