"""Training (`smd train --config CONFIG.yaml [key=value ...] [--init CKPT] [--resume CKPT_OR_DIR]`).

SMD-Nets is trained by sampling continuous query points in ground-truth crops and minimising the negative
log-likelihood of the predicted mixture (`smd_core.model.mixture.loss`). This package is the loop around that:
`config` (TrainConfig, stored in every checkpoint), `schedule` (Adam, step or cosine lr), `data`, `checkpoints`,
`runtime` (torchrun: DistributedDataParallel, only rank 0 writes), `logger` (TensorBoard + metrics.jsonl),
`validation`, `loop` (`train`), `cli`.

Exact resume: a run of N steps equals a run of k steps + `--resume` for N - k steps, bit for bit on the CPU,
because the data order and every sample's augmentation are pure functions of (seed, epoch, index) (`data`)
and the checkpoint holds everything else that changes: model, optimizer, scheduler, AMP scaler, step and the
RNG states (`checkpoints`).
"""
