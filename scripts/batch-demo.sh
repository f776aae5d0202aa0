#!/usr/bin/env bash
# The main job, as a batch: builds envdctl and runs the example batch
# (examples/jobs/jobs.jsonl: 300 jobs with uploads, commands and downloads,
# a few failing on purpose; each job works in its own /tmp/envdctl-demo-ID,
# since envd creates the parents of an upload with a check-then-mkdir that
# concurrent uploads into one new directory can race) over several sandboxes, with the progress bar
# and the summary. With no --domain (and no ENVD_DOMAIN) it starts the
# bundled reference server on loopback and spreads the jobs over four
# sandbox IDs; otherwise every argument goes to envdctl (global options and
# batch options: --domain, --token, --sandbox ID (repeatable), --k8s NS/NAME,
# --k8s-selector NS:SEL, --per-sandbox K, ...).
#   scripts/batch-demo.sh
#   scripts/batch-demo.sh --domain gw.example:7788 --token T --sandbox ID1 --sandbox ID2
# The results (results.jsonl), the downloads (out/) and the full outputs
# stay in the work directory it prints.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target envdctl >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/envdctl-batch-demo.XXXXXX")
ln -s "$repo/examples/jobs/data" "$work/data"
envdctl=("$repo/build/envdctl")
progress=()
[ -t 2 ] || progress=(--progress)

run() {
  cd "$work"
  set +e
  "${envdctl[@]}" batch "${progress[@]}" --results results.jsonl --output-dir outputs \
    "$@" "$repo/examples/jobs/jobs.jsonl"
  rc=$?
  set -e
  echo "results: $work/results.jsonl (downloads under $work/out, outputs under $work/outputs)"
  echo "envdctl batch exited with $rc (0 only when every job is ok; this example fails some on purpose)"
}

if [[ " $* " == *" --domain "* || " $* " == *" --domain="* || -n "${ENVD_DOMAIN:-}" || \
      " $* " == *" --k8s"* || " $* " == *" --config "* ]]; then
  run "$@"
  exit 0
fi
. scripts/reference-server.sh
start_reference_server tmp # a sandbox has /tmp; the jobs make their directories in it
echo "local reference server on 127.0.0.1:$port; 300 jobs over sandboxes demo-1..demo-4"
run --domain "127.0.0.1:$port" --sandbox demo-1 --sandbox demo-2 --sandbox demo-3 \
  --sandbox demo-4 --per-sandbox 4 "$@"
