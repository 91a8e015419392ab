"""Which messages become training frames (`Frame`): stamp pairing, time window, stride, validation split, as
functions of integer nanosecond stamps. Every message that does not become a frame is counted under a reason,
so the tool can say exactly where data went."""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smd_ros.bags.options import Bag2DatasetOptions


@dataclasses.dataclass
class Frame:
    """One frame: header stamps (ns) of its left, right and ground-truth (None without) messages in bag number
    `bag`, its split and place in the plan (`index`, set once the plan is final); once written, its labelled
    fraction, what the label check masked and why it was left out of the lists (None: it was not)."""

    bag: int
    left_ns: int
    right_ns: int
    gt_ns: int | None = None
    split: str = "train"
    index: int = -1
    valid_fraction: float | None = None
    masked: dict[str, int] | None = None
    rejected: str | None = None

    @property
    def name(self) -> str:
        return f"{self.index:06d}"

    def files(self, options: Bag2DatasetOptions) -> dict[str, str]:
        """role ("left", "right", "disp", "conf") -> path relative to the output folder."""
        files = {"left": f"left/{self.name}.png", "right": f"right/{self.name}.png"}
        if options.has_labels:
            files["disp"] = f"disp/{self.name}.npy"
        if options.pseudo_labels:
            files["conf"] = f"conf/{self.name}.png"
        return files

    def done(self, out: Path, options: Bag2DatasetOptions) -> bool:
        return all((out / f).is_file() for f in self.files(options).values())

    def measure(self, disparity: np.ndarray) -> None:
        self.valid_fraction = float(np.count_nonzero(disparity > 0) / disparity.size)

    def to_json(self, options: Bag2DatasetOptions) -> dict[str, Any]:
        return {
            "id": self.name, "bag": self.bag, "split": self.split,
            "stamps": {"left": self.left_ns, "right": self.right_ns, "gt": self.gt_ns},
            "files": self.files(options), "valid_fraction": self.valid_fraction,
            "labels": {"masked": self.masked, "rejected": self.rejected},
        }


def _dedupe(stamps: Sequence[int], topic: str, dropped: Counter) -> list[int]:
    """Sorted unique stamps; repeats of a stamp on one topic are dropped (a driver republishing a frame)."""
    unique = sorted(set(stamps))
    if len(unique) != len(stamps):
        dropped[f"duplicate stamp on {topic}"] += len(stamps) - len(unique)
    return unique


def _nearest(sorted_stamps: Sequence[int], stamp: int) -> tuple[int, int] | None:
    """(index, |difference|) of the stamp nearest `stamp`, None if there are none."""
    if not sorted_stamps:
        return None
    i = bisect.bisect_left(sorted_stamps, stamp)
    candidates = [j for j in (i - 1, i) if 0 <= j < len(sorted_stamps)]
    j = min(candidates, key=lambda k: abs(sorted_stamps[k] - stamp))
    return j, abs(sorted_stamps[j] - stamp)


def pair_stamps(bag: int, left: Sequence[int], right: Sequence[int], gt: Sequence[int] | None, *, tolerance_ns: int,
                topics: tuple[str, str, str | None] = ("left", "right", "ground truth")) -> tuple[list[Frame], Counter]:
    """Pair each left stamp with the nearest right stamp within `tolerance_ns`, one-to-one.

    Closest pairs win: candidate (left, nearest right) pairs are accepted in order of increasing time
    difference, so when two left images want the same right image the better-synchronized one gets it.
    Ground truth (if `gt` is given) is the nearest gt stamp within tolerance, and a pair without one is
    dropped, since a training frame needs its label. Returns the frames sorted by left stamp, and how many
    left images (right ones for "right image without a left image") were dropped, by reason.
    """
    left_topic, right_topic, gt_topic = topics
    dropped: Counter = Counter()
    lefts, rights = _dedupe(left, left_topic, dropped), _dedupe(right, right_topic, dropped)
    gts = None if gt is None else _dedupe(gt, gt_topic or "ground truth", dropped)
    tol_ms = tolerance_ns / 1e6
    candidates = []
    for li, stamp in enumerate(lefts):
        near = _nearest(rights, stamp)
        if near is None or near[1] > tolerance_ns:
            dropped[f"no right image within {tol_ms:g} ms"] += 1
        else:
            candidates.append((near[1], li, near[0]))
    candidates.sort()
    used_right: set[int] = set()
    pairs = []
    for _, li, ri in candidates:
        if ri in used_right:
            dropped["its right image is paired with a closer left image"] += 1
            continue
        used_right.add(ri)
        pairs.append((li, ri))
    unpaired_right = len(rights) - len(used_right)
    if unpaired_right:
        dropped["right image without a left image"] += unpaired_right
    frames = []
    for li, ri in sorted(pairs):
        gt_ns = None
        if gts is not None:
            near = _nearest(gts, lefts[li])
            if near is None or near[1] > tolerance_ns:
                dropped[f"no ground truth ({gt_topic}) within {tol_ms:g} ms"] += 1
                continue
            gt_ns = gts[near[0]]
        frames.append(Frame(bag, lefts[li], rights[ri], gt_ns))
    return frames, dropped


def select_window(frames: list[Frame], start_s: float | None, end_s: float | None, dropped: Counter) -> list[Frame]:
    """Keep frames whose left stamp lies in [first + start_s, first + end_s), `first` being the bag's
    first paired frame; seconds relative to the recording are what people read off a bag player."""
    if not frames or (start_s is None and end_s is None):
        return frames
    first = frames[0].left_ns
    low = first + round((start_s or 0.0) * 1e9)
    high = None if end_s is None else first + round(end_s * 1e9)
    kept = [f for f in frames if f.left_ns >= low and (high is None or f.left_ns < high)]
    if len(kept) != len(frames):
        dropped["outside the time window"] += len(frames) - len(kept)
    return kept


def apply_stride(frames: list[Frame], stride: int, dropped: Counter) -> list[Frame]:
    """Every `stride`-th frame, starting with the first."""
    kept = frames[::stride]
    if len(kept) != len(frames):
        dropped[f"stride {stride}"] += len(frames) - len(kept)
    return kept


def assign_splits(frames: list[Frame], val_fraction: float, blocks: int) -> None:
    """Mark whole time blocks as validation, in place.

    The frame sequence (bags in order, time order within) is cut into `blocks` contiguous blocks of
    near-equal length and round(val_fraction * blocks) of them, spread evenly, become validation. Random
    frame-level splits would put near-duplicate neighbouring frames on both sides and flatter validation.
    `val_fraction` in [0, 1) and `blocks` >= 2, as Bag2DatasetOptions checks them.
    """
    for f in frames:
        f.split = "train"
    n = len(frames)
    if val_fraction == 0.0 or n < 2:
        return
    blocks = min(blocks, n)
    n_val = min(blocks - 1, max(1, round(val_fraction * blocks)))
    # Evenly spread block indices, e.g. 10 blocks, 2 val -> blocks 2 and 7.
    val_blocks = {int((k + 0.5) * blocks / n_val) for k in range(n_val)}
    for i, frame in enumerate(frames):
        if i * blocks // n in val_blocks:
            frame.split = "val"
