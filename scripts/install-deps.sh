#!/usr/bin/env bash
# Installs what libenvd needs to build and test on Debian 12 (as root, or with
# sudo), then the reference server's npm packages. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential cmake pkg-config libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
      protobuf-compiler libprotobuf-dev libcurl4-openssl-dev libnghttp2-dev libjansson-dev libyaml-dev libssl-dev zlib1g-dev
      libcmocka-dev nginx-light openssl curl python3 e2fsprogs util-linux nghttp2-client gnuplot-nox  # gnuplot: envd-bench --report
      clang libclang-rt-14-dev)  # clang 14 and its runtimes (libFuzzer, ASan; a Recommends, so not pulled by --no-install-recommends) for scripts/fuzz.sh
# node 20 and npm come with the machine (nodesource); Debian 12's nodejs is too old.
command -v node >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -d tests/peer/node_modules ] || [ tests/peer/package-lock.json -nt tests/peer/node_modules ]; then
  (cd tests/peer && npm ci --no-audit --no-fund)
fi
(cd tests/peer && npm run --silent gen)
