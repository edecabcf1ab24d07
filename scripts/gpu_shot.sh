#!/usr/bin/env bash
# GPU shot: the one command a borrowed GPU runs (README, "Training"). It trains for MINUTES of
# wall clock from the pack in CARRY and always leaves its results under $OUT: the EMA weights
# in parts (shot.safetensors.partK), log.jsonl, summary.json, shot.log and, when a constriction
# wheel was carried, kodim23-gpu.lq (the bundled model's ar stream encoded on the GPU).
#
# Here, first:  python -m leechcodec.models.shot prepare --pack ../shared/data/train-shot --wheel WHEEL
# On the GPU:   MINUTES=8 scripts/gpu_shot.sh          (carry .carry; the tool sets OUT)
# Dry run:      OUT=/tmp/o DEVICE=cpu PRESET=shot-tiny MINUTES=0.1 scripts/gpu_shot.sh --batch 4
# Back here:    scripts/shot_home.sh FILES_AT
#
# Environment: OUT (required), MINUTES (8), DEVICE (cuda), PRESET (shot), CARRY (.carry),
# INIT (weights to start from; default CARRY/init.safetensors if present), DEADLINE (minutes
# from the start of training's process by which it has ended, compilation included; default
# MINUTES + 1.5), PYTHON (python3). Extra arguments go to `python -m leechcodec.models.shot train`.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT must name the results folder}"
carry=${CARRY:-.carry}
device=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
init=${INIT:-}
[ -z "$init" ] && [ -f "$carry/init.safetensors" ] && init=$carry/init.safetensors
init_args=()
[ -n "$init" ] && init_args=(--init "$init")
[ "$device" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/shot.log"
minutes=${MINUTES:-8}
deadline=${DEADLINE:-$("$py" -c "print($minutes + 1.5)")}
"$py" -m leechcodec.models.shot train --pack "$carry/pack" --out "$OUT" --minutes "$minutes" --deadline "$deadline" \
  --device "$device" --preset "${PRESET:-shot}" "${init_args[@]}" "$@" 2>&1 | tee -a "$OUT/shot.log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 0 ] && compgen -G "$carry/wheels/*.whl" >/dev/null; then
  site=${TMPDIR:-/tmp}/leech-shot-site
  "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$carry"/wheels/*.whl 2>&1 | tee -a "$OUT/shot.log"
  PYTHONPATH=$PYTHONPATH:$site timeout "${DEMO_TIMEOUT:-90}" "$py" -m leechcodec.models.shot encode-demo docs/kodim23.png \
    "$OUT/kodim23-gpu.lq" --device "$device" 2>&1 | tee -a "$OUT/shot.log" || echo "encode-demo failed" | tee -a "$OUT/shot.log"
fi
exit "$rc"
