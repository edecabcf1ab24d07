#!/usr/bin/env bash
# A/B of the tokenizer's design choices at equal CPU minutes (docs/training-log.md,
# "A/B at equal CPU minutes"). Each arm trains from scratch for MINUTES of wall clock on this
# machine's cores, alone (run nothing else meanwhile), with the same data, crops, seed, batch,
# peak learning rate and Kodak validation crops, its cosine sized (from 50 timed steps) to end
# at MINUTES; then its EMA weights are measured on all 24 Kodak images
# (fixed coder: PSNR, MS-SSIM, grid error ratios).
#
#   benchmarks/ab_cpu.sh [MINUTES] [OUT] [DATA] [KODAK]
#   e.g. benchmarks/ab_cpu.sh 10 runs/ab ../shared/data/train-small ../shared/data/kodak
#
# Arms: conv-l1 (the last CPU-trained release's preset, small-skip: per-patch head, ℓ1),
# overlap-l1 (the same with the overlapping 16×16/stride-8 head), conv-mse (small-skip, MSE
# loss) and shot-l1 (the GPU preset, wider and deeper, at the same minutes). ARMS="a b" picks.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
out=${2:-runs/ab}
data=${3:-../shared/data/train-small}
kodak=${4:-../shared/data/kodak}
mkdir -p "$out"
# small-skip with the overlapping head (the shot preset's head), as a --config file
python - "$out/overlap.json" <<'EOF'
import dataclasses, json, sys
from leechcodec.models.vit import PRESETS
cfg = dataclasses.replace(PRESETS["small-skip"], name="small-skip-overlap", head="overlap")
open(sys.argv[1], "w").write(json.dumps(cfg.to_dict()))
EOF
common=(--crop 128 --batch 8 --lr 1e-3 --ema 0.99 --seed 0 --val-dir "$kodak" --ckpt-minutes 30 --quiet)
for arm in ${ARMS:-conv-l1 overlap-l1 conv-mse shot-l1}; do
  case $arm in
    conv-l1) model=(--preset small-skip); loss=l1 ;;
    overlap-l1) model=(--config "$out/overlap.json"); loss=l1 ;;
    conv-mse) model=(--preset small-skip); loss=mse ;;
    shot-l1) model=(--preset shot); loss=l1 ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  rm -rf "${out:?}/$arm" "${out:?}/$arm-probe"
  # equal minutes, each with a whole schedule: time 50 steps of this arm, then give it as many
  # steps as fit in MINUTES (less 5 % for its 4 validations), so every cosine ends on time
  leechcodec train "$data" --out "$out/$arm-probe" "${model[@]}" --loss "$loss" "${common[@]}" --steps 50 \
    --warmup 5 --val-every 1000000
  steps=$(python - "$out/$arm-probe/log.jsonl" "$minutes" <<'EOF2'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
per_step = (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]) / (rows[-1]["step"] - rows[0]["step"])
print(int(float(sys.argv[2]) * 60 * 0.95 / per_step))
EOF2
)
  rm -rf "${out:?}/$arm-probe"
  leechcodec train "$data" --out "$out/$arm" "${model[@]}" --loss "$loss" "${common[@]}" --steps "$steps" \
    --warmup $((steps / 20)) --val-every $((steps / 100 * 25 > 25 ? steps / 100 * 25 : 25)) --max-minutes "$minutes"
  leechcodec export "$out/$arm/checkpoint.safetensors" -o "$out/$arm/model.safetensors" --force
  python benchmarks/kodak_roundtrip.py --kodak-dir "$kodak" --model "$out/$arm/model.safetensors" --coder fixed \
    --out "$out/$arm/kodak" | tail -1 | tee "$out/$arm/kodak.txt"
  python - "$out/$arm" "$arm" <<'EOF2'
import json, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/log.jsonl")]
val = [f"{r['val_psnr']:.2f} dB at {r['step']}" for r in rows if "val_psnr" in r]
last = rows[-1]
print(f"{sys.argv[2]}: {last['step']} steps in {last['elapsed_s'] / 60:.1f} min, "
      f"{last['step'] * 8 / last['elapsed_s']:.1f} crops/s; validation {', '.join(val) or 'none'}")
EOF2
done
