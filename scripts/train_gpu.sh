#!/usr/bin/env bash
# The bundled models' whole recipe (scripts/train_guided.sh: stages 1-2 of both heads, then the stages in
# scripts/guided_stages.sh) on one CUDA GPU, for a lent GPU machine (16 cores for data and SGBM), then
# scripts/ship_models.py. Each stage runs with GPU_BATCH crops a step instead of 4, for steps x 4 / GPU_BATCH
# steps at peak lr x sqrt(GPU_BATCH / 4): the same number of crops seen as on the CPU.
#   SMD_TORCH=cuda bash scripts/setup.sh && bash scripts/train_gpu.sh
# Env: GPU_BATCH (16), SMD_DATA (data), SMD_RUNS (runs_gpu), SMD_JOBS (rendering processes, nproc),
#      SMD_WORKERS (data loader workers, 8), SHIP (1: copy the result into smd_core/weights; 0: evaluate only),
#      DRY_RUN (1: print the training and shipping commands instead of running them; no GPU needed).
# Interrupted? Run it again: finished stages are skipped, the others start again from their stage's start.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
DRY=${DRY_RUN:-0}
[ "$DRY" = 1 ] || python -c 'import sys, torch
sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU: use scripts/train_guided.sh")'
# run_or_print CMD...: run CMD, or print it with DRY_RUN=1.
run_or_print() { if [ "$DRY" = 1 ]; then echo "$*"; else "$@"; fi; }
DATA=${SMD_DATA:-data}
RUNS=${SMD_RUNS:-runs_gpu}
BATCH=${GPU_BATCH:-16}
JOBS=${SMD_JOBS:-$(nproc)}
WORKERS=${SMD_WORKERS:-8}
. scripts/guided_stages.sh
SMD_JOBS=$JOBS render_guided_data "$DATA"
SPLIT="$DATA/synth_guided/train.txt"

# stage RUN CONFIG FROM STEPS LR key=value...: one stage (FROM: a checkpoint folder to --init from, or "-").
stage() {
  local run=$1 config=$2 from=$3 steps=$4 lr=$5 gpu_steps gpu_lr last
  shift 5
  gpu_steps=$(( steps * 4 / BATCH ))
  gpu_lr=$(python -c "import math, sys; print(float(sys.argv[1]) * math.sqrt(int(sys.argv[2]) / 4))" "$lr" "$BATCH")
  [ -f "$(printf '%s/checkpoints/step_%08d.pth' "$RUNS/$run" "$gpu_steps")" ] && return 0
  local -a init=()
  if [ "$from" != - ]; then
    last=$(ls "$RUNS/$from/checkpoints"/step_*.pth 2> /dev/null | sort | tail -n 1 || true)
    init=(--init "${last:-$RUNS/$from/checkpoints/LAST}")
  fi
  echo "== $run: $gpu_steps steps, batch $BATCH, peak lr $gpu_lr" >&2
  run_or_print smd train --config "$config" "data.split=$SPLIT" "${init[@]}" "steps=$gpu_steps" "batch_size=$BATCH" \
    "optim.lr=$gpu_lr" device=cuda "num_workers=$WORKERS" threads=4 ckpt_every=500 "log_dir=$RUNS/$run" "$@"
}

# split_lr key=value...: prints the optim.lr value (5e-4 when the stage sets none), then the other overrides.
split_lr() {
  local lr=5e-4 w rest=()
  for w in "$@"; do case $w in optim.lr=*) lr=${w#optim.lr=} ;; *) rest+=("$w") ;; esac; done
  echo "$lr"
  echo "${rest[*]}"
}

declare -A last_stage
for run in guided_synthetic guided_synthetic_standard; do
  config=${CONFIG[$run]}
  base_lr=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["optim"]["lr"])' "$config")
  base_steps=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["steps"])' "$config")
  stage "$run" "$config" - "$base_steps" "$base_lr"
  stage "${run}_stage2" "$config" "$run" 2000 5e-4 optim.warmup_steps=50 seed=1
  from=${run}_stage2
  if [ "$run" = guided_synthetic ]; then specs=("${BIMODAL_STAGES[@]}"); else specs=("${STANDARD_STAGES[@]}"); fi
  for spec in "${specs[@]}"; do
    read -r -a words <<< "$spec"
    mapfile -t parts < <(split_lr "${words[@]:2}")
    read -r -a overrides <<< "${parts[1]}"
    stage "${run}_${words[0]}" "$config" "$from" "${words[1]}" "${parts[0]}" "${overrides[@]}"
    from=${run}_${words[0]}
  done
  last_stage[$run]=$from
done
ship=()
[ "${SHIP:-1}" = 1 ] || ship=(--no-ship)
run_or_print python scripts/ship_models.py guided --bimodal-run "$RUNS/${last_stage[guided_synthetic]}" \
  --standard-run "$RUNS/${last_stage[guided_synthetic_standard]}" "${ship[@]}"
