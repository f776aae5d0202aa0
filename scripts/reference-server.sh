# Sourced by the demo scripts: start_reference_server starts the bundled
# envd-compatible reference server on loopback with an empty root (plus
# the directories named as arguments, made inside it), sets $port and
# $root, and stops the server and removes the root when the script exits.
start_reference_server() {
  root=$(mktemp -d)
  local d
  for d in "$@"; do mkdir -p "$root/$d"; done
  _ref_out=$(mktemp)
  node tests/peer/server.mjs --port 0 --host 127.0.0.1 --root "$root" --http both >"$_ref_out" 2>&1 &
  _ref_pid=$!
  trap 'kill $_ref_pid 2>/dev/null; wait $_ref_pid 2>/dev/null; rm -rf "$root" "$_ref_out"' EXIT
  for _ in $(seq 100); do
    grep -q '^listening ' "$_ref_out" && break
    sleep 0.1
  done
  port=$(sed -n 's/^listening \([0-9]*\).*/\1/p' "$_ref_out")
  [ -n "$port" ] || { echo "reference server did not start:"; cat "$_ref_out"; exit 1; }
}
