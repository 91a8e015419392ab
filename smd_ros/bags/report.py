"""What `smd bag2dataset` did: `ConversionReport` (counts, drops, damage, label check, warnings) and its summary."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from smd_ros.bags.pairing import Frame


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did; `summary()` is what the command prints."""

    out: Path
    frames: int = 0
    train: int = 0
    val: int = 0
    written: int = 0
    reused: int = 0
    incomplete: int = 0
    corrupt: dict[str, str] = dataclasses.field(default_factory=dict)  # frame id -> why it was skipped
    dropped: Counter = dataclasses.field(default_factory=Counter)
    bags: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    status: str = "complete"
    # Label check: masked pixels and frames per kind ("impossible", "beyond_range"); frames left out (id -> why).
    masked: Counter = dataclasses.field(default_factory=Counter)
    masked_frames: Counter = dataclasses.field(default_factory=Counter)
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)

    def count_labels(self, frames: list[Frame]) -> None:
        """Totals of the label check over the written `frames`; rejected frames leave the split counts."""
        self.masked, self.masked_frames, self.rejected = Counter(), Counter(), {}
        for f in frames:
            for kind, n in (f.masked or {}).items():
                self.masked[kind] += n
                self.masked_frames[kind] += n > 0
            if f.rejected:
                self.rejected[f.name] = f.rejected
                self.train -= f.split == "train"
                self.val -= f.split == "val"

    def summary(self) -> str:
        """What the command prints: per bag what was read, paired and dropped; the dataset; the label check."""
        lines = []
        for bag in self.bags:
            counts = ", ".join(f"{k} {v}" for k, v in bag["messages"].items())
            lines.append(f"{bag['path']} ({bag['storage']}, {len(bag['files'])} file(s)): {counts} "
                         f"-> {bag['paired']} pairs, {bag['frames']} frames")
            lines.extend(f"    dropped {n:>6}  {reason}" for reason, n in sorted(bag["dropped"].items(),
                                                                                 key=lambda kv: -kv[1]))
            if bag.get("damaged"):
                lines.append(f"    DAMAGED: {bag['damaged']['message']}")
        lines.append(f"dataset {self.out}: {self.frames} frames (train {self.train}, val {self.val}); "
                     f"written now {self.written}, already there {self.reused}"
                     + (f", incomplete {self.incomplete}" if self.incomplete else "")
                     + (f", skipped as corrupt {len(self.corrupt)}" if self.corrupt else "")
                     + (f", dropped for implausible labels {len(self.rejected)}" if self.rejected else ""))
        if self.masked["impossible"]:
            lines.append(f"labels: masked {self.masked['impossible']} impossible (non-finite or >= the image width) "
                         f"in {self.masked_frames['impossible']} frame(s)")
        if self.masked["beyond_range"]:
            lines.append(f"labels: masked {self.masked['beyond_range']} beyond --max-disparity in "
                         f"{self.masked_frames['beyond_range']} frame(s)")
        lines.extend(f"dropped frame {name} from the lists: {why}" for name, why in sorted(self.rejected.items()))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)
