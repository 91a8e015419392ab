#!/usr/bin/env bash
# Recipe of the bundled CPU model (smd_core/weights/MODEL_CARD.md): renders the synthetic training set
# once, trains the bimodal and the standard (L1) light models side by side (one core each), evaluates both
# on the held-out synthetic set and copies the weights into smd_core/weights/.
#   bash scripts/train_light.sh [STEPS]        (default: the configs' steps)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
DATA=${SMD_DATA:-data}
STEPS=${1:-}
extra=()
[ -n "$STEPS" ] && extra+=("steps=$STEPS")
if [ ! -f "$DATA/synth_train/train.txt" ]; then
  smd synth --out "$DATA/synth_train" --num 800 --height 480 --width 640 --seed 1000 --max-disparity 64
fi
export OMP_NUM_THREADS=1   # two runs on two cores: one thread each avoids oversubscription
smd train --config configs/light_synthetic.yaml "data.split=$DATA/synth_train/train.txt" "${extra[@]}" \
  > runs_light_bimodal.log 2>&1 &
smd train --config configs/light_synthetic_standard.yaml "data.split=$DATA/synth_train/train.txt" "${extra[@]}" \
  > runs_light_standard.log 2>&1 &
wait
python scripts/finish_light.py
