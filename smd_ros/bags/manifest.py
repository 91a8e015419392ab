"""The output folder of `smd bag2dataset`: fingerprint, resume / replace / refuse, manifest, lists, preview."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import smd_core
from smd_core.files import atomic_write
from smd_core.viz import colorize_disparity, contact_sheet, label
from smd_ros.bags.calib import StereoCalibration
from smd_ros.bags.frames import png_bytes
from smd_ros.bags.options import Bag2DatasetOptions
from smd_ros.bags.pairing import Frame
from smd_ros.bags.reader import BagError, BagSource
from smd_ros.bags.report import ConversionReport


class DatasetExistsError(BagError):
    """The output folder holds something this run must not overwrite or mix with."""


TOOL_VERSION = "1.0"
MANIFEST_FORMAT = "smd_ros.bag2dataset"
MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
OWN_ENTRIES = ("left", "right", "disp", "conf", "train.txt", "val.txt", "calib.yaml", MANIFEST, "preview.png")
# Options that change nothing in the output, so a resume may change them.
NOT_FINGERPRINTED = ("overwrite", "progress", "allow_truncated", "device", "check_rectification")


def remove_temporaries(out: Path) -> None:
    """Drop temporaries an interrupted run left behind (they are never part of a finished frame)."""
    for folder in ("", "left", "right", "disp", "conf"):
        for tmp in (out / folder).glob(".*.tmp*"):
            tmp.unlink()


def bag_identity(source: BagSource) -> dict[str, Any]:
    """What identifies a recording: its path, storage and files with their sizes."""
    return {"path": str(source.path.resolve()), "storage": source.storage,
            "files": [{"name": f.name, "bytes": f.stat().st_size} for f in source.files]}


def fingerprint_of(options: Bag2DatasetOptions, sources: Sequence[BagSource]) -> tuple[str, dict[str, Any]]:
    """(sha256, what it hashes): the options that shape the output, the bags, the checkpoint, the format."""
    content = {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_FINGERPRINTED}
    if options.pseudo_labels:
        ckpt = Path(options.pseudo_labels)
        content["pseudo_labels"] = {"path": str(ckpt.resolve()), "bytes": ckpt.stat().st_size}
    data = {"options": content, "bags": [bag_identity(s) for s in sources], "manifest_version": MANIFEST_VERSION}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return digest, data


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Human-readable differences between two fingerprint inputs."""
    was, new_opts = old.get("options", {}), new.get("options", {})
    diffs = [f"{k}: {was.get(k)!r} -> {new_opts.get(k)!r}" for k in sorted(set(was) | set(new_opts))
             if was.get(k) != new_opts.get(k)]
    (old_paths, old_files), (new_paths, new_files) = (
        ([b["path"] for b in d.get("bags", [])], [b["files"] for b in d.get("bags", [])]) for d in (old, new))
    if (old_paths, old_files) != (new_paths, new_files):
        same = " (same paths, different file sizes)" if old_paths == new_paths else ""
        diffs.append(f"bags: {old_paths} -> {new_paths}{same}")
    return "; ".join(diffs) or "(format version)"


def inspect_output(out: Path, fingerprint: str, identity: dict[str, Any], overwrite: bool) -> tuple[str, dict | None]:
    """What to do with `out`, without touching it: ("new", None), ("resume", manifest) for the same conversion,
    or ("replace", manifest) for another bag2dataset dataset when `overwrite`. DatasetExistsError when `out`
    holds a different dataset (ours, without `overwrite`) or anything not ours (never deleted, whatever the flags).
    """
    if out.exists() and not out.is_dir():
        raise DatasetExistsError(f"--out {out} is a file, not a folder")
    if not out.exists():
        return "new", None
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetExistsError(f"{manifest_path} is not valid JSON ({err}); refusing to touch {out}") from err
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise DatasetExistsError(f"{out} holds a manifest.json that bag2dataset did not write; choose "
                                     "another --out")
        if manifest.get("fingerprint") == fingerprint:
            return "resume", manifest
        difference = _describe_difference(manifest.get("fingerprint_input", {}), identity)
        if not overwrite:
            raise DatasetExistsError(f"{out} holds another bag2dataset dataset (made from different bags or options: "
                                     f"{difference}). Pass --overwrite to replace it, or choose another --out")
        return "replace", manifest
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:8]) + (f", ... ({len(foreign)} entries)" if len(foreign) > 8 else "")
        raise DatasetExistsError(f"{out} is not empty and is not a bag2dataset output (it holds {shown}); refusing to "
                                 "mix datasets (--overwrite only replaces bag2dataset outputs). Choose an empty or new "
                                 "folder")
    return "new", None


def clear_dataset(out: Path) -> None:
    """Remove a previous bag2dataset dataset's own files (only those) from `out`."""
    for target in (out / name for name in OWN_ENTRIES):
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    remove_temporaries(out)


def resume(existing: dict[str, Any], frames: list[Frame], options: Bag2DatasetOptions, out: Path) -> None:
    """Take over the per-frame results of the interrupted run whose manifest is `existing`; DatasetExistsError
    unless it planned the same frames (stamps and split)."""
    old = {f["id"]: f for f in existing.get("frames", [])}
    for f in frames:
        prev = old.get(f.name)
        if prev is None or prev.get("stamps") != f.to_json(options)["stamps"] or prev.get("split") != f.split:
            raise DatasetExistsError(f"{out}: frame {f.name} was planned differently by the interrupted run (tool "
                                     f"version {existing.get('tool_version')}); pass --overwrite to start over")
        labels = prev.get("labels") or {}
        f.valid_fraction, f.masked, f.rejected = (prev.get("valid_fraction"), labels.get("masked"),
                                                   labels.get("rejected"))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_manifest(out: Path, options: Bag2DatasetOptions, fingerprint: str, identity: dict[str, Any],
                   report: ConversionReport, calib: StereoCalibration, frames: list[Frame], created: str,
                   status: str) -> None:
    """manifest.json: what was converted from what, how, and each frame's stamps, files and label check."""
    labels = ("depth" if options.depth else "disparity" if options.disparity else
              "pseudo" if options.pseudo_labels else None)
    data = {
        "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "tool": "bag2dataset",
        "tool_version": TOOL_VERSION, "smd_core_version": smd_core.__version__, "status": status, "created": created,
        "updated": now(), "fingerprint": fingerprint, "fingerprint_input": identity,
        "options": dataclasses.asdict(options),
        "topics": {"left_image": options.left_image, "right_image": options.right_image,
                   "left_info": options.left_info, "right_info": options.right_info,
                   "ground_truth": options.gt_topic},
        "labels": labels,
        "bags": report.bags,
        "calibration": calib.to_yaml_dict(),
        "counts": {"frames": report.frames, "train": report.train, "val": report.val,
                   "incomplete": report.incomplete, "corrupt": report.corrupt, "dropped": dict(report.dropped),
                   "labels": {"masked": dict(report.masked), "masked_frames": dict(report.masked_frames),
                              "rejected": report.rejected,
                              "checked": {"max_disparity": options.max_disparity,
                                          "max_bad_labels": options.max_bad_labels}}},
        "warnings": report.warnings,
        "frames": [f.to_json(options) for f in frames],
    }

    def plain(obj: Any) -> Any:
        if isinstance(obj, Path | np.generic):
            return str(obj) if isinstance(obj, Path) else obj.item()
        raise TypeError(f"{MANIFEST}: a {type(obj).__name__} is not JSON serializable")

    atomic_write(out / MANIFEST, (json.dumps(data, indent=1, default=plain) + "\n").encode())


def write_lists(out: Path, frames: list[Frame], options: Bag2DatasetOptions) -> None:
    """train.txt and val.txt: a `left right [disp]` line per frame."""
    for split in ("train", "val"):
        lines = [" ".join(v for k, v in f.files(options).items() if k != "conf") + "\n" for f in frames
                 if f.split == split]
        atomic_write(out / f"{split}.txt", "".join(lines).encode())


def write_preview(out: Path, frames: list[Frame], options: Bag2DatasetOptions, count: int = 4) -> None:
    """preview.png: left | right | disparity (| kept pixels) for a few frames spread over the dataset."""
    if not frames:
        return
    tiles = []
    for i in sorted({round(k * (len(frames) - 1) / max(1, count - 1)) for k in range(count)}):
        files = frames[i].files(options)
        tiles += [label(cv2.imread(str(out / files["left"])), f"{frames[i].name} {frames[i].split} left"),
                  label(cv2.imread(str(out / files["right"])), "right")]
        if "disp" in files:
            tiles.append(label(colorize_disparity(np.load(out / files["disp"])), "disparity"))
        if "conf" in files:
            tiles.append(label(cv2.imread(str(out / files["conf"])), "kept"))
    atomic_write(out / "preview.png", png_bytes(contact_sheet(tiles, cols=len(files))))
