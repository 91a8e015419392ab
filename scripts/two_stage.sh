# Sourced by scripts/train_guided.sh and scripts/train_light.sh: the bimodal and standard runs of one model
# family side by side (one core each), then a second cosine stage from their last weights (`--init`: fresh
# Adam state, peak lr 5e-4), then scripts/ship_models.py.
#   train_two_stages FAMILY SPLIT   with CONFIG (run name -> config), RUNS, STEPS, STAGE2_STEPS, extra set,
#                                   and optionally BIMODAL_STAGES / STANDARD_STAGES: further stages of that
#                                   run alone, each "NAME STEPS key=value ...", from the previous stage's
#                                   last weights (one run on both cores); the last ones are shipped.
# Finished stages are skipped; an interrupted stage-1 run resumes exactly from its last checkpoint.
# Sourcing it also sets what both recipes take: the venv, DATA and RUNS (SMD_DATA, SMD_RUNS), STEPS (the
# recipe's first argument) and `extra` (steps=STEPS when given).
. .venv/bin/activate
DATA=${SMD_DATA:-data}
RUNS=${SMD_RUNS:-runs}
STEPS=${1:-}
extra=()
[ -n "$STEPS" ] && extra+=("steps=$STEPS")

# finished RUN STEPS: RUN already holds its step-STEPS checkpoint.
finished() { [ -f "$(printf '%s/checkpoints/step_%08d.pth' "$1" "$2")" ]; }

train_two_stages() {
  local family=$1 split=$2 run steps last
  local -a resume
  export OMP_NUM_THREADS=1   # two runs on two cores: one thread each avoids oversubscription
  for run in "${!CONFIG[@]}"; do
    steps=${STEPS:-$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["steps"])' "${CONFIG[$run]}")}
    finished "$RUNS/$run" "$steps" && continue
    resume=()
    ls "$RUNS/$run/checkpoints"/step_*.pth > /dev/null 2>&1 && resume=(--resume "$RUNS/$run/checkpoints")
    smd train --config "${CONFIG[$run]}" "data.split=$split" "log_dir=$RUNS/$run" "${extra[@]}" "${resume[@]}" \
      > "runs_${run}.log" 2>&1 &
  done
  wait
  local suffix=""
  if [ "$STAGE2_STEPS" != 0 ]; then
    for run in "${!CONFIG[@]}"; do
      finished "$RUNS/${run}_stage2" "$STAGE2_STEPS" && continue
      last=$(ls "$RUNS/$run/checkpoints"/step_*.pth | sort | tail -n 1)
      smd train --config "${CONFIG[$run]}" "data.split=$split" --init "$last" \
        "steps=$STAGE2_STEPS" optim.lr=5.0e-4 optim.warmup_steps=50 seed=1 "log_dir=$RUNS/${run}_stage2" \
        > "runs_${run}_stage2.log" 2>&1 &
    done
    wait
    suffix=_stage2
  fi
  local bimodal standard
  bimodal=$(later_stages "${family}_synthetic" "$RUNS/${family}_synthetic$suffix" "$split" BIMODAL_STAGES)
  standard=$(later_stages "${family}_synthetic_standard" "$RUNS/${family}_synthetic_standard$suffix" "$split" \
    STANDARD_STAGES)
  python scripts/ship_models.py "$family" --bimodal-run "$bimodal" --standard-run "$standard"
}

# later_stages RUN FROM SPLIT ARRAY: the stages "NAME STEPS key=value ..." of the array named ARRAY, one after
# the other from FROM's last weights (one run on both cores); prints the last stage's run folder (FROM if none).
later_stages() {
  local run=$1 from=$2 split=$3 spec name stage_steps last
  local -n specs=$4
  local -a words overrides
  for spec in "${specs[@]}"; do
    read -r -a words <<< "$spec"
    name=${words[0]} stage_steps=${words[1]} overrides=("${words[@]:2}")
    if ! finished "$RUNS/${run}_$name" "$stage_steps"; then
      last=$(ls "$from/checkpoints"/step_*.pth | sort | tail -n 1)
      OMP_NUM_THREADS=2 smd train --config "${CONFIG[$run]}" "data.split=$split" --init "$last" \
        "steps=$stage_steps" threads=2 "${overrides[@]}" "log_dir=$RUNS/${run}_$name" > "runs_${run}_$name.log" 2>&1
    fi
    from="$RUNS/${run}_$name"
  done
  echo "$from"
}
