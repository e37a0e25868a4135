#!/usr/bin/env bash
# Train LUMEN with the paper's Gemma 2B settings on one GPU through `accelerate launch`, then
# print the training throughput (tokens/s) and the result's metrics.
#
# Paper (section 5.1.2): Gemma 2B backbone, batch size 512, constant learning rate 1e-5, up to
# 10,000 steps with early stopping. Here: micro-batches of MICRO rows, accumulated to 512;
# bf16 autocast (chosen automatically on GPUs that support it; float32 master weights, so
# Gemma 2B needs ~40 GB for weights + AdamW states: an 80 GB A100/H100/H200).
#
# Usage (on a machine with the Hugging Face hub, or with BACKBONE set to a local folder):
#   benchmarks/lumen_gpu.sh                      # google/gemma-2b on the embedded `mini` set
#   DATASET=/data/REGEN/office.jsonl benchmarks/lumen_gpu.sh
#   BACKBONE=gemma3-270m MAX_STEPS=200 benchmarks/lumen_gpu.sh   # offline quick check
#
# Environment knobs (defaults in brackets): BACKBONE [google/gemma-2b], DATASET [mini],
# NARRATIVE [product_endorsement], MICRO [8], BATCH [512], LR [1e-5], ITEM_LR [1e-3],
# MAX_STEPS [10000], EVAL_EVERY [200], EPOCHS [100], LIMIT [all test users], OUT [results-gpu],
# DEVICE [cuda], MIXED [bf16], EXTRA [more `--set key=value` words, e.g. "valid_examples=50"].
# `DEVICE=cpu MIXED=no BACKBONE=smollm2 MAX_STEPS=2 ...` runs the same path on a CPU machine
# (tests/test_lumen_gpu_script.py does so with a tiny random backbone).
# The paper's full fine-tuning is spelt out (train_layers=-1: whole backbone; the item table
# trains; the paper's item block; one item target per prefix), so CPU presets never leak in.
# One process only: with several processes every one would also evaluate and write the result.
set -euo pipefail

BACKBONE=${BACKBONE:-google/gemma-2b}
DATASET=${DATASET:-mini}
NARRATIVE=${NARRATIVE:-product_endorsement}
MICRO=${MICRO:-8}
BATCH=${BATCH:-512}
LR=${LR:-1e-5}
ITEM_LR=${ITEM_LR:-1e-3}
MAX_STEPS=${MAX_STEPS:-10000}
EVAL_EVERY=${EVAL_EVERY:-200}
EPOCHS=${EPOCHS:-100}
OUT=${OUT:-results-gpu}
DEVICE=${DEVICE:-cuda}
MIXED=${MIXED:-bf16}
EXTRA_ARGS=()
for kv in ${EXTRA:-}; do EXTRA_ARGS+=(--set "$kv"); done
LIMIT_ARGS=()
if [[ -n "${LIMIT:-}" ]]; then LIMIT_ARGS=(--limit "$LIMIT"); fi

cd "$(dirname "$0")/.."
start=$(date +%s)
accelerate launch --num_processes 1 --num_machines 1 --dynamo_backend no \
    --mixed_precision "$MIXED" -m regen_bench.cli run \
    --model lumen --task conversational --narrative "$NARRATIVE" --dataset "$DATASET" \
    --output "$OUT" "${LIMIT_ARGS[@]}" \
    --set backbone="$BACKBONE" --set device="$DEVICE" \
    --set batch_size="$BATCH" --set micro_batch="$MICRO" \
    --set lr="$LR" --set item_lr="$ITEM_LR" --set epochs="$EPOCHS" \
    --set max_steps="$MAX_STEPS" --set eval_every="$EVAL_EVERY" --set patience=5 \
    --set train_layers=-1 --set train_item_emb=true --set fields=full --set item_loss=last \
    --set save_dir="$OUT/lumen-checkpoint" "${EXTRA_ARGS[@]}"
echo "wall time: $(( $(date +%s) - start )) s"

python - "$OUT" "$NARRATIVE" <<'EOF'
import json, pathlib, sys

out, narrative = pathlib.Path(sys.argv[1]), sys.argv[2]
path = next(out.glob(f"*/conversational/lumen__{narrative}.json"))
result = json.loads(path.read_text())
log = result["fit_log"]
print(f"result: {path}")
print(f"training: {log['train_tokens']} tokens in {log['steps']} steps, "
      f"{log['train_tokens_per_s']} tokens/s ({log['mixed_precision']}, {log['device']})")
print("metrics:", json.dumps(result["metrics"], indent=1))
EOF
