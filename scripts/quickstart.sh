#!/usr/bin/env bash
# The main job: build libenvd and run the quick start. With no --domain (and
# no ENVD_DOMAIN) it starts the bundled envd-compatible reference server on
# loopback and runs against it; otherwise it talks to the sandbox or gateway
# you name. Extra arguments go to the quickstart program.
#   scripts/quickstart.sh
#   scripts/quickstart.sh --domain gw.example:7788 --sandbox ID --token T
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target quickstart >/dev/null

if [[ " $* " == *" --domain "* || -n "${ENVD_DOMAIN:-}" ]]; then
  exec build/quickstart "$@"
fi
root=$(mktemp -d)
out=$(mktemp)
node tests/peer/server.mjs --port 0 --host 127.0.0.1 --root "$root" --http both >"$out" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$root" "$out"' EXIT
for _ in $(seq 100); do
  grep -q '^listening ' "$out" && break
  sleep 0.1
done
port=$(sed -n 's/^listening \([0-9]*\).*/\1/p' "$out")
[ -n "$port" ] || { echo "reference server did not start:"; cat "$out"; exit 1; }
echo "local reference server on 127.0.0.1:$port"
build/quickstart --domain "127.0.0.1:$port" --sandbox local "$@"
