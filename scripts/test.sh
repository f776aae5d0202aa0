#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs the C unit and
# integration tests (they start the reference server themselves, on
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

# Two reference servers for the transport tests that take an address (the
# integration tests start their own).
peers=$(mktemp -d)
trap 'kill $(cat "$peers"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$peers"' EXIT
start_peer() { # name http-mode
  mkdir -p "$peers/$1.root"
  node tests/peer/server.mjs --port 0 --host 127.0.0.1 --root "$peers/$1.root" --http "$2" \
    >"$peers/$1.out" 2>"$peers/$1.err" &
  echo $! >"$peers/$1.pid"
  for _ in $(seq 100); do grep -q '^listening ' "$peers/$1.out" && break; sleep 0.1; done
  sed -n 's/^listening \([0-9]*\).*/127.0.0.1:\1/p' "$peers/$1.out"
}
export ENVD_TEST_H2C_ADDR=$(start_peer h2c both)
export ENVD_TEST_H1_ADDR=$(start_peer h1 h1)
export ENVD_TEST_ROOT="$peers/h1.root"
[ -n "$ENVD_TEST_H2C_ADDR" ] && [ -n "$ENVD_TEST_H1_ADDR" ] || { echo "reference servers did not start"; exit 1; }

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
     ctest --output-on-failure -j"$jobs" --timeout 600 -R 'test_future|test_grpc|test_connect|test_http|it_first_calls|it_engine')
fi
echo "== all tests passed"
