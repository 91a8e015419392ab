"""Deterministic, resumable data order: the batches of a run are a pure function of (seed, step).

`ResumableSampler` draws each epoch's permutation from `seed + epoch` (DistributedSampler's shards) and can
start mid-epoch; `SeededDataset` seeds Python/NumPy/torch around each sample from (seed, epoch, index), so
neither the worker that loads a sample nor the main process's RNG state changes it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from smd_core.train.checkpoints import seed_everything


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """32-bit seed for one sample's augmentation; independent of workers, ranks and RNG state."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """DistributedSampler that yields (index, sample seed); `set_epoch(epoch, skip=k)` drops the first k indices
    of this rank's shard (the batches a resumed run has already trained on)."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.skip :]
        epoch = self.epoch
        return ((i, sample_seed(self.seed, epoch, i)) for i in indices)

    def __len__(self) -> int:
        return max(super().__len__() - self.skip, 0)


class SeededDataset(Dataset):
    """Item (index, seed) of a dataset drawn with Python/NumPy/torch seeded by `seed`; the global RNG states are
    restored afterwards (with `num_workers=0` loading never disturbs the training process's own streams)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        index, seed = key if isinstance(key, tuple) else (int(key), sample_seed(0, 0, int(key)))
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        try:
            seed_everything(seed)
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def collate(samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples; "points" (2, N_i) and "labels" (N_i,) are padded to the largest N with label 0, which the
    loss ignores."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    n = max(int(np.asarray(s["points"]).shape[-1]) for s in samples) if "points" in samples[0] else 0
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in ("points", "labels"):
            tensors = [torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in values]
            out[key] = torch.stack([torch.nn.functional.pad(t, (0, n - t.shape[-1])) if n > t.shape[-1] else t
                                    for t in tensors])
        elif isinstance(values[0], (Tensor, np.ndarray)):
            out[key] = torch.stack([torch.as_tensor(v) for v in values])
        else:
            out[key] = torch.tensor(values) if isinstance(values[0], (int, float)) else values
    return out


def make_loader(dataset: Dataset, sampler: Any, batch_size: int, num_workers: int, pin: bool) -> DataLoader:
    """DataLoader over `SeededDataset(dataset)` in `sampler`'s order, full batches only."""
    # An explicit generator keeps the DataLoader from drawing its base seed from the global torch RNG,
    # which would differ between an uninterrupted and a resumed run.
    return DataLoader(SeededDataset(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate, drop_last=True, pin_memory=pin, generator=torch.Generator().manual_seed(0))
