#!/usr/bin/env bash
# One resumable GPU training segment (default 9 minutes), for machines lent by the hour or
# the 10-minute command limit of our device tool. Run it again and again: each call resumes
# from RUN/checkpoint.safetensors, and segments add up to one long training.
#
#   scripts/gpu_segment.sh DATA RUN [PRESET] [MINUTES] [STEPS] [EXTRA TRAIN OPTIONS...]
#   e.g. scripts/gpu_segment.sh ../shared/data/train-small runs/gpu small-skip 9 60000
#
#   The AR prior of a finished tokenizer, the same way:
#   scripts/gpu_segment.sh --prior TOKENIZER DATA RUN [PRESET] [MINUTES] [STEPS] [EXTRA...]
#   e.g. scripts/gpu_segment.sh --prior my-model.safetensors ../shared/data/train-small runs/gpu-prior
#
# Export when done:  leechcodec export RUN/checkpoint.safetensors -o my-model.safetensors
#               (prior: -o my-model.prior.safetensors, beside its tokenizer)
# DEVICE=cpu runs a segment without a GPU (for trying the script out); extra options go last,
# so they override the defaults below.
set -euo pipefail
mode=(); tokenizer=()
if [ "${1:-}" = "--prior" ]; then
  mode=(--prior); tokenizer=(--tokenizer "${2:?tokenizer weights}"); shift 2
fi
data=${1:?data folder}; run=${2:?run folder}; minutes=${4:-9}
if [ ${#mode[@]} -gt 0 ]; then
  preset=${3:-small}; steps=${5:-3000}
  defaults=(--batch 64 --warmup 100 --lr 2e-3 --ema 0.995)
else
  preset=${3:-small-skip}; steps=${5:-60000}
  defaults=(--batch 32 --warmup 1000 --lr 1e-3 --ema 0.999)
fi
[ "${DEVICE:-cuda}" = cuda ] && defaults+=(--compile)
shift $(( $# < 5 ? $# : 5 ))
resume=()
[ -f "$run/checkpoint.safetensors" ] && resume=(--resume)
exec leechcodec train "${mode[@]}" "$data" --out "$run" "${tokenizer[@]}" --preset "$preset" \
  --device "${DEVICE:-cuda}" --steps "$steps" --ckpt-minutes 3 --max-minutes "$minutes" --quiet \
  "${defaults[@]}" "${resume[@]}" "$@"
