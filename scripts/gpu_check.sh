#!/usr/bin/env bash
# GPU check (≤ 5 minutes on an H100/H200): run it first when a GPU is lent, before the shots.
# Prints and leaves under $OUT:
#   exact.log          the training search under bf16 autocast against float64 on CUDA, for each
#                      method (structured, tiled fp32, tiled16), and each method's ms per 65,536 tokens
#   before/log.jsonl   the step as shots 1-6 ran it (tiled fp32 search, eager): per-phase profile
#                      ("profile": data, encoder, search, decoder, backward, optimizer) and crops/s ("rate")
#   after/log.jsonl    the same with the fastest exact search and compiled transformer blocks
#                      ("compile": seconds), profile and crops/s
#   quantizer-search.json  (CUDA only) LeechQuantizer's exact search against brute
#                      force at 1k/64k/1M vectors on the GPU (benchmarks/quantizer_search.py), for the
#                      README beside the CPU's docs/results/quantizer-search.json
#
# On the GPU:  scripts/gpu_check.sh             (carry .carry: python -m leechcodec.models.shot prepare first)
# Dry run:     OUT=/tmp/c DEVICE=cpu PRESET=shot-tiny PROBE_S=2 BATCH=2 TOKENS=256 COMPILE_BACKEND=eager \
#              scripts/gpu_check.sh --search-tokens 256
# Environment: OUT (required), DEVICE (cuda), PRESET (shot), CARRY (.carry), INIT (default
# CARRY/init.safetensors if present), BATCH (128), PROBE_S (25: seconds of unprofiled steps
# timed for crops/s), TOKENS (65536: for timing the searches), PYTHON (python3), COMPILE_BACKEND
# (inductor), IMAGE (docs/kodim23.png: its latents for the exactness).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT must name the results folder}"
carry=${CARRY:-.carry}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
init=${INIT:-}
[ -z "$init" ] && [ -f "$carry/init.safetensors" ] && init=$carry/init.safetensors
init_args=()
[ -n "$init" ] && init_args=(--init "$init")
common=(--pack "$carry/pack" --minutes 3 --deadline 4 --device "$device" --preset "${PRESET:-shot}" "${init_args[@]}"
  --batch "${BATCH:-128}" --profile-steps 8 --profile-only --probe-s "${PROBE_S:-25}" --search-tokens 65536
  --mix 0 --holdout 8)
rc=0
"$py" -m leechcodec.models.shot exact --image "${IMAGE:-docs/kodim23.png}" --device "$device" --tokens "${TOKENS:-65536}" 2>&1 | tee "$OUT/exact.log" || rc=1
if [ "$device" = cuda ]; then
  "$py" benchmarks/quantizer_search.py --device cuda --json "$OUT/quantizer-search.json" 2>&1 | tail -n 12 || rc=1
fi
"$py" -m leechcodec.models.shot train --out "$OUT/before" --search tiled "${common[@]}" "$@" >/dev/null 2>"$OUT/before.err" || rc=1
"$py" -m leechcodec.models.shot train --out "$OUT/after" --compile --compile-backend "${COMPILE_BACKEND:-inductor}" "${common[@]}" "$@" \
  >/dev/null 2>"$OUT/after.err" || rc=1
for run in before after; do
  tail -n 3 "$OUT/$run.err"
  "$py" - "$OUT/$run/log.jsonl" "$run" <<'PY'
import json, sys
recs = {r["event"]: r for r in map(json.loads, open(sys.argv[1]))}
p, r, s = recs.get("profile", {}), recs.get("rate", {}), recs.get("setup", {})
print(f"{sys.argv[2]:>6}: search {p.get('search_used')}, compile {recs.get('compile', {}).get('s', 'off')} s, "
      f"crops/s {r.get('images_per_s')} (profiled step {p.get('step_ms')} ms: {p.get('ms')})")
PY
done
exit "$rc"
