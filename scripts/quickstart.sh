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
. scripts/reference-server.sh
start_reference_server
echo "local reference server on 127.0.0.1:$port"
build/quickstart --domain "127.0.0.1:$port" --sandbox local "$@"
