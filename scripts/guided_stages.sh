# Sourced by scripts/train_guided.sh (CPU) and scripts/train_gpu.sh (one CUDA GPU): the configs and the later
# stages of the bundled SGBM-guided models, one definition for both recipes.
# shellcheck disable=SC2034  # read by the scripts that source this file

# synth_set DIR NUM SEED MAX_DISPARITY [smd synth options]: render DIR once (SMD_JOBS processes; DRY_RUN=1 prints).
synth_set() {
  local dir=$1 num=$2 seed=$3 maxd=$4
  shift 4
  [ -f "$dir/train.txt" ] && return 0
  local -a cmd=(smd synth --out "$dir" --num "$num" --height 480 --width 640 --seed "$seed" --max-disparity "$maxd"
                --jobs "${SMD_JOBS:-1}" "$@")
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "${cmd[*]}"; else "${cmd[@]}"; fi
}

# join_lists OUT DIR...: one list file OUT of the DIRs' train.txt, paths relative to OUT's folder (DIRs inside it).
join_lists() {
  local out=$1 dir
  shift
  [ "${DRY_RUN:-0}" = 1 ] && return 0
  for dir in "$@"; do sed "s#\([^ ]*\)#${dir#"$(dirname "$out")"/}/\1#g" "$dir/train.txt"; done > "$out"
}

# render_guided_data DATA: the training scenes, once (seeds 1000 and 2000; the held-out set is seed 9000):
# $DATA/synth_guided/train.txt lists 600 scenes with disparities up to 64 px and 200 up to 120 px.
render_guided_data() {
  local data=$1
  synth_set "$data/synth_guided/d64" 600 1000 64
  synth_set "$data/synth_guided/d128" 200 2000 120
  join_lists "$data/synth_guided/train.txt" "$data/synth_guided/d64" "$data/synth_guided/d128"
}

declare -A CONFIG=([guided_synthetic]=configs/guided_synthetic.yaml
                   [guided_synthetic_standard]=configs/guided_synthetic_standard.yaml)
# The default (bimodal) model then trains on alone: stage 3 bounds its second mode to the alternative
# anchor and adds the selection loss (its head's last layer starts afresh); stage 4 adds the hidden layer of
# the full-resolution branch (new tensors start fresh, init_strict=false) and narrows the second mode to 1 px of
# its anchor (wider offsets measured worse: they moved correct anchors off the surface); stage 5 teaches the
# selection only where exactly one mode is right ("closer" also taught it to pick a third surface's value
# where both were wrong: flying pixels). Stage "costs" adds the full-resolution matching costs at -3..3 px
# around both anchors (model.backbone_options.cost_offsets; the first layers are widened with zeros, so it
# starts exactly where stage 5 ended). Stage "select" weighs the selection loss 3x at a third of the peak lr:
# about half of the flying points left had their other mode on a true surface (a selection error, not an
# anchor error). Stage "edges" puts the edge half of the query points within 2 px of the jumps
# (data.sample.dilation=4, was 10), where the flying points are counted. Counting only jumps over 2 px as edges
# (data.sample.edge_threshold=2, as the flying metric does; 9000 more steps, dilation 4 or 2) measured better
# on the held-out set but worse on its natural-texture variant, so it is not a stage. Stage "settle" runs 5000
# more steps of "edges" at half its peak lr.
BIMODAL_STAGES=(
  "stage3 8000 init_skip=[mlp.conv2] model.anchor_range=4 selection_weight=1.0 optim.lr=5e-4"
  "stage4 5000 init_strict=false model.backbone_options.full_res_width=16 model.anchor_range=1 selection_weight=1.0 optim.lr=5e-4 seed=2"
  "stage5 2500 model.backbone_options.full_res_width=16 model.anchor_range=1 selection_weight=1.0 selection_target=right optim.lr=3e-4 optim.warmup_steps=50 seed=3"
  "costs 10000 init_strict=false model.backbone_options.full_res_width=16 model.backbone_options.cost_offsets=3 model.anchor_range=1 selection_weight=1.0 selection_target=right optim.lr=3e-4 optim.warmup_steps=100 seed=4"
  "select 5000 model.backbone_options.full_res_width=16 model.backbone_options.cost_offsets=3 model.anchor_range=1 selection_weight=3.0 selection_target=right optim.lr=1e-4 optim.warmup_steps=100 seed=11"
  "edges 9000 model.backbone_options.full_res_width=16 model.backbone_options.cost_offsets=3 model.anchor_range=1 selection_weight=3.0 selection_target=right data.sample.dilation=4 optim.lr=1e-4 optim.warmup_steps=100 seed=21"
  "settle 5000 model.backbone_options.full_res_width=16 model.backbone_options.cost_offsets=3 model.anchor_range=1 selection_weight=3.0 selection_target=right data.sample.dilation=4 optim.lr=5e-5 optim.warmup_steps=100 seed=51"
)
# The standard (L1) head gets the same architecture change (the full-resolution branch's hidden layer) and
# 8000 more steps, so that the two heads compare with like budgets (15,500 vs 8,000 steps after stage 2; the
# selection loss and anchor_range have no meaning for one mode).
STANDARD_STAGES=(
  "stage3 8000 init_strict=false model.backbone_options.full_res_width=16 optim.lr=5e-4 seed=2"
)
