#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and builds a program
# against it twice: with pkg-config and with CMake's find_package.
set -euo pipefail
build=${1:?build dir}
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name envd.pc | head -1)")
libdir=$(dirname "$(find "$prefix" -name 'libenvd.so' | head -1)")
PKG_CONFIG_PATH=$pcdir cc -std=c11 -Wall -Werror "$here/consumer.c" -o "$prefix/by-pkgconfig" \
  $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs envd)
LD_LIBRARY_PATH=$libdir "$prefix/by-pkgconfig"
cmake -S "$here" -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" >/dev/null
LD_LIBRARY_PATH=$libdir "$prefix/consumer-build/consumer"
