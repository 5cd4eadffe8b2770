#!/usr/bin/env bash
# The prepared GPU check: one command on the device machine (scripts/gpu_check.py has the parts, sizes,
# timeouts and the $OUT layout; README.md "GPU" says how to call it).
#
#   bash scripts/gpu-check.sh                 # GPU machine: installs .whl (carried), results in $OUT
#   bash scripts/gpu-check.sh --cpu-dry-run   # here / CI: same steps, tiny sizes, CPU, a local wheelhouse
#
# Expected durations (GPU, estimates until the first run; each part also has its own timeout):
# install 15 s, environment 5 s, gpu tests 110 s, throughput 45 s, Playground 75 s, PBT overhead 60 s,
# AcrobotHard population 35 s: ~345 s; a 400 s deadline over all parts keeps the whole within 7 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3} # the device image's python3 holds CUDA torch and jax
if [ "${1:-}" = "--cpu-dry-run" ] && [ -z "${OUT:-}" ]; then
    OUT=$(mktemp -d -t gpu-check-out-XXXXXX)
    echo "[gpu-check] OUT unset: results in $OUT"
fi
: "${OUT:?set OUT to the folder the results go to (the device sets it)}"
exec "$PY" scripts/gpu_check.py --out "$OUT" "$@"
