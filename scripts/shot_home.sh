#!/usr/bin/env bash
# Bring a GPU shot home (README, "Training"): put its weights back together, measure all 24
# Kodak images at the fixed rate next to the shipped model, and when Kodak improves, retrain
# the AR prior for the new tokenizer here on the CPU and ship both into models/weights/.
#
#   scripts/shot_home.sh FILES_AT [KODAK_DIR] [PRIOR_DATA]
#   e.g. scripts/shot_home.sh /work/.device/2 ../shared/data/kodak ../shared/data/train-small
#
# Everything it measures is kept under runs/home-MODELID/ (Kodak tables, prior log, ar bench);
# update docs/training-log.md and MODEL_CARD.md from those files. PRIOR_STEPS (default 1000) sets the prior's length;
# PRIOR_INIT=CHECKPOINT starts the prior from that `train --prior` run's EMA weights (e.g. the
# shipped prior's run) instead of afresh.
# HALO=N sets the decoder's halo (tokens) of weights trained before their preset had one.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?the shot results folder (the device reply files_at)}
kodak=${2:-../shared/data/kodak}
data=${3:-../shared/data/train-small}
mkdir -p runs
tmp=runs/home-incoming.safetensors
id=$(python -m leechcodec.models.shot join "$src" "$tmp" ${HALO:+--decode-halo "$HALO"})
dir=runs/home-$id
mkdir -p "$dir"
mv "$tmp" "$dir/tokenizer.safetensors"
cp "$src"/summary.json "$src"/log.jsonl "$dir"/
psnr_of() { sed -n 's/^mean over .*PSNR \([0-9.]*\) dB.*/\1/p' "$1"; }
python benchmarks/kodak_roundtrip.py --kodak-dir "$kodak" --model "$dir/tokenizer.safetensors" --coder fixed \
  --out "$dir/kodak-new" | tee "$dir/kodak-new.txt"
python benchmarks/kodak_roundtrip.py --kodak-dir "$kodak" --coder fixed --out "$dir/kodak-shipped" | tee "$dir/kodak-shipped.txt"
new=$(psnr_of "$dir/kodak-new.txt"); old=$(psnr_of "$dir/kodak-shipped.txt")
echo "Kodak PSNR at the fixed rate: shot $id $new dB, shipped $old dB"
if ! python -c "import sys; sys.exit(0 if float('$new') > float('$old') else 1)"; then
  echo "not better than the shipped model: nothing shipped"
  exit 0
fi
leechcodec train --prior "$data" --out "$dir/prior" --tokenizer "$dir/tokenizer.safetensors" --preset small \
  --batch 16 --steps "${PRIOR_STEPS:-1000}" --warmup 60 --lr 2e-3 --ema 0.99 --val-dir "$kodak" --val-every 100 \
  --ckpt-minutes 4 ${PRIOR_INIT:+--init "$PRIOR_INIT"} --quiet
leechcodec export "$dir/prior/checkpoint.safetensors" -o "$dir/tokenizer.prior.safetensors" --force
cp "$dir/tokenizer.safetensors" models/weights/leech.safetensors
cp "$dir/tokenizer.prior.safetensors" models/weights/leech.prior.safetensors
python benchmarks/bench_ar.py --kodak-dir "$kodak" | tee "$dir/bench-ar.txt"
echo "shipped $id ($new dB > $old dB); now update docs/training-log.md and MODEL_CARD.md from $dir"
