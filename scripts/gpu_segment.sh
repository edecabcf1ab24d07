#!/usr/bin/env bash
# One resumable GPU training segment (default 9 minutes), for machines lent by the hour or
# the 10-minute command limit of our device tool. Run it again and again: each call resumes
# from RUN/checkpoint.safetensors, and segments add up to one long training.
#
#   scripts/gpu_segment.sh DATA RUN [PRESET] [MINUTES] [STEPS]
#   e.g. scripts/gpu_segment.sh ../shared/data/train-small runs/gpu small-skip 9 60000
#
# Export when done:  leechcodec export RUN/checkpoint.safetensors -o my-model.safetensors
set -euo pipefail
data=${1:?data folder}; run=${2:?run folder}; preset=${3:-small-skip}; minutes=${4:-9}; steps=${5:-60000}
resume=()
[ -f "$run/checkpoint.safetensors" ] && resume=(--resume)
exec leechcodec train "$data" --out "$run" --preset "$preset" --device cuda --batch 32 \
  --steps "$steps" --warmup 1000 --lr 1e-3 --ema 0.999 --ckpt-minutes 3 --max-minutes "$minutes" \
  --compile --quiet "${resume[@]}"
