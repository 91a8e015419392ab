"""Training (`smd train --config CONFIG.yaml [key=value ...] [--init CKPT] [--resume CKPT_OR_DIR]`).

SMD-Nets is trained by sampling continuous query points in ground-truth crops and minimising the
negative log-likelihood of the predicted mixture (`smd_core.model.mixture.loss`). This module is the loop
around that: a typed `TrainConfig` (saved inside every checkpoint), Adam with the SMD-Nets step schedule
or cosine decay, AMP on CUDA, validation, TensorBoard, checkpoints and multi-process training.

Exact resume. A run of N steps equals a run of k steps + `--resume` for N - k steps, bit for bit on
the CPU. Three things make that hold:
- the data order is a pure function of (seed, epoch): `ResumableSampler` draws each epoch's permutation
  from `seed + epoch` and can start mid-epoch, so a resumed run skips exactly the batches already seen;
- every sample's augmentation randomness is a pure function of (seed, epoch, index): `SeededDataset`
  seeds Python/NumPy/torch around each `__getitem__`, so neither the worker that loads it nor the RNG
  state of the main process matters;
- the checkpoint holds model, optimizer, scheduler, AMP scaler, step and the torch/NumPy/Python RNG
  states (as tensors and lists, so `torch.load(weights_only=True)` reads it).

Distributed: launched by `torchrun`, each process trains on its shard (`DistributedSampler` order) with
DistributedDataParallel (gloo on CPU, nccl on CUDA); only rank 0 writes checkpoints, logs and images.

Modules: `config` (TrainConfig, OptimConfig), `schedule` (Adam + lr schedule), `data` (resumable order,
seeded samples, collate), `checkpoints` (RNG state, step files, resume, --init), `runtime` (torchrun / DDP),
`logger` (TensorBoard + metrics.jsonl), `validation`, `loop` (`train`), `cli` (`smd train`).
"""
