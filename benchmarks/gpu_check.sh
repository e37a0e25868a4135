#!/usr/bin/env bash
# One short check of a GPU machine at Clothing scale (benchmarks/gpu_check.py has the details):
# exact full-ranking evaluation of 1.17M users x 377k items, LUMEN training tokens/s and MFU
# on a Gemma-2B-shaped backbone in bf16, and SASRec / FLARE epoch times. Under 8 minutes on
# one GPU: each part caps its own time (about 6.5 minutes at worst), and this wrapper stops
# the whole run at TIMEOUT (SIGTERM: the table of the parts done is still printed; KILL 15 s on).
#
#   bash benchmarks/gpu_check.sh --out gpu-check.json      # on the GPU machine
#   bash benchmarks/gpu_check.sh --small --threads 1       # scaled down, on CPU (or SMALL=1)
#
# Environment: PYTHON (default: the repository's .venv, else python3), TIMEOUT [450 s],
# SMALL=1 (same as --small). Other arguments go to gpu_check.py (--help lists them).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
ARGS=("$@")
if [[ "${SMALL:-0}" == "1" ]]; then ARGS+=(--small); fi
# The checkout itself, installed or not.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# Fewer fragmentation failures when parts of very different shapes share one process.
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"

echo "host: $(hostname), $(nproc) CPUs, python: $("$PYTHON" --version 2>&1)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
        --format=csv || true
else
    echo "nvidia-smi: not found (no NVIDIA GPU visible)"
fi

# SIGTERM at TIMEOUT lets gpu_check.py print the table of the parts already done; KILL 15 s later.
status=0
timeout -k 15 "${TIMEOUT:-450}" "$PYTHON" benchmarks/gpu_check.py "${ARGS[@]}" || status=$?
if [[ $status -eq 124 ]]; then echo "gpu_check: stopped at the ${TIMEOUT:-450} s timeout" >&2; fi
exit "$status"
