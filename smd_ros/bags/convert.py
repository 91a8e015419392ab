"""`smd bag2dataset BAG [BAG...] --out DIR`: rosbag2 stereo recordings -> a training set (README: Fine-tuning).

Output folder:
    left/000000.png right/000000.png   images (8-bit PNG, as recorded or rectified with --rectify)
    disp/000000.npy                    float32 disparity in pixels, 0 = invalid
    conf/000000.png                    pseudo-labels only: 255 where the label was kept
    train.txt val.txt                  `left/000000.png right/000000.png disp/000000.npy`, relative paths
    calib.yaml                         rectified K, baseline, size, source CameraInfos
    manifest.json                      source bags, topics, per-frame stamps, counts, options, tool version
    preview.png                        a few frames: left, right, disparity (, kept pixels)

Every file is written under a temporary name and renamed, and the manifest fixes the frame plan up front, so
rerunning the same command resumes an interrupted conversion without rewriting finished frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from smd_core.files import atomic_write
from smd_ros.bags import manifest
from smd_ros.bags.calib import StereoCalibration, vertical_misalignment
from smd_ros.bags.frames import FrameWriter, load_predictor
from smd_ros.bags.options import Bag2DatasetOptions
from smd_ros.bags.pairing import Frame, apply_stride, assign_splits, pair_stamps, select_window
from smd_ros.bags.reader import BagError, BagSource
from smd_ros.bags.report import ConversionReport
from smd_ros.bags.scan import BagScan, collect, scan_bag

LOG = logging.getLogger("smd_ros.bags")


class DamagedBagError(BagError):
    """Recordings were damaged; the frames before the damage were written (`report` says what was converted)."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


# Largest median vertical offset (px) of feature matches tolerated in a "rectified" pair.
MAX_VERTICAL_OFFSET_PX = 1.0
MANIFEST_EVERY = 25  # frames between manifest updates (resume bookkeeping survives a kill)


def _calibrate(scans: list[BagScan], options: Bag2DatasetOptions, report: ConversionReport) -> StereoCalibration:
    """The calibration of the first bag; every bag must share it (BagError otherwise)."""
    try:
        calib = StereoCalibration.from_models(scans[0].left_info, scans[0].right_info)
    except ValueError as err:
        raise BagError(f"{scans[0].source.path}: {options.left_info} / {options.right_info}: {err}") from err
    report.warnings.extend(calib.warnings)
    if not options.rectify:
        report.warnings.extend(calib.rectification_notes())
    for scan in scans:
        if not (scan.left_info.same_as(calib.left) and scan.right_info.same_as(calib.right)):
            raise BagError(f"{scan.source.path}: its camera_info differs from {scans[0].source.path}'s; bags from "
                           "differently calibrated cameras need separate datasets")
        for role, n in scan.info_changes.items():
            if n:
                report.warnings.append(f"{scan.source.path}: camera_info on {getattr(options, role)} changes {n} "
                                       "times during the recording; the first one is used for every frame")
    return calib


def _bag_summary(scan: BagScan, paired: int, frames: int, dropped: dict[str, int]) -> dict[str, Any]:
    """What the report and the manifest say about one bag."""
    messages = {k: v for k, v in scan.counts.items() if not k.endswith("_info")}
    info = dict(manifest.bag_identity(scan.source), messages=messages, paired=paired, frames=frames, dropped=dropped,
                topics={t: {"type": i.msgtype, "count": i.count} for t, i in scan.source.topics().items()})
    if scan.damage:
        first, last, why, read = (scan.first_log_ns, scan.damage.last_time_ns, scan.damage.reason,
                                  scan.damage.messages_read)
        seconds = (last - first) / 1e9 if (first is not None and last is not None) else 0.0
        info["damaged"] = {"reason": why, "messages_read": read, "last_log_time_ns": last, "seconds_read": seconds,
                           "message": f"recording is damaged ({why}); readable up to {seconds:.2f} s into the "
                                      f"recording ({read} messages on the converted topics)"}
    return info


def _plan(scans: list[BagScan], options: Bag2DatasetOptions, report: ConversionReport) -> list[Frame]:
    """Pairing, time window, stride, frame cap and train/val split; fills `report.bags` and the counts."""
    tol_ns = round(options.tolerance * 1e9)
    gt_role = "depth" if options.depth else "disparity" if options.disparity else None
    planned: list[Frame] = []
    for scan in scans:
        paired, dropped = pair_stamps(scan.index, scan.stamps["left"], scan.stamps["right"],
                                      scan.stamps[gt_role] if gt_role else None, tolerance_ns=tol_ns,
                                      topics=(options.left_image, options.right_image, options.gt_topic))
        frames = apply_stride(select_window(paired, options.start, options.end, dropped), options.stride, dropped)
        if options.max_frames is not None:
            room = max(0, options.max_frames - len(planned))
            if len(frames) > room:
                dropped[f"beyond --max-frames {options.max_frames}"] += len(frames) - room
                frames = frames[:room]
        planned.extend(frames)
        report.bags.append(_bag_summary(scan, len(paired), len(frames), dict(dropped)))
        report.dropped.update(dropped)
    assign_splits(planned, options.val_fraction, options.val_blocks)
    for index, frame in enumerate(planned):
        frame.index = index
    report.frames = len(planned)
    report.train = sum(f.split == "train" for f in planned)
    report.val = report.frames - report.train
    if not planned:
        damage = "".join(f"; {b['path']}: {b['damaged']['message']}" for b in report.bags if b.get("damaged"))
        raise BagError("no frames to convert: " + ("; ".join(f"{n} {r}" for r, n in report.dropped.items())
                                                   or "no stereo pairs at all") + damage)
    if not options.has_labels:
        report.warnings.append("no ground truth (--depth, --disparity or --pseudo-labels): the lists have no "
                               "disparity column and are not usable for supervised training")
    return planned


def _prepare_output(out: Path, action: str, existing: dict[str, Any] | None, frames: list[Frame],
                    options: Bag2DatasetOptions, calib: StereoCalibration) -> str:
    """Resume (same plan, earlier per-frame results kept), replace or create `out`, write calib.yaml; returns
    when the dataset was created."""
    if action == "resume":
        manifest.resume(existing or {}, frames, options, out)
    elif action == "replace":
        LOG.warning("--overwrite: replacing the dataset in %s", out)
        manifest.clear_dataset(out)
        existing = None
    out.mkdir(parents=True, exist_ok=True)
    manifest.remove_temporaries(out)
    for sub in {Path(f).parent.name for f in frames[0].files(options).values()}:
        (out / sub).mkdir(exist_ok=True)
    atomic_write(out / "calib.yaml", yaml.safe_dump(calib.to_yaml_dict(), sort_keys=False).encode())
    return (existing or {}).get("created") or manifest.now()


def _write_frames(out: Path, scans: list[BagScan], frames: list[Frame], writer: FrameWriter, report: ConversionReport,
                  on_frame: Callable[[int], None] | None, save: Callable[[str], None]) -> None:
    """Pass 2: the frames not on disk yet; `save`s the manifest every MANIFEST_EVERY frames and when interrupted,
    so a rerun knows what was written."""
    options = writer.options
    todo = [f for f in frames if not f.done(out, options)]
    bar = tqdm(total=len(frames), initial=report.reused, desc="convert", unit="frame", disable=not options.progress)
    try:
        for scan in scans:
            bag_todo = [f for f in todo if f.bag == scan.index]
            for frame, parts in collect(scan, bag_todo, options, writer.corrupt) if bag_todo else ():
                if parts is None:
                    continue  # cut off by damage; counted as incomplete
                writer.write(frame, parts, f"{scan.source.path} frame {frame.name} (left stamp {frame.left_ns} ns)")
                report.written += 1
                bar.update()
                if on_frame is not None:
                    on_frame(frame.index)
                if report.written % MANIFEST_EVERY == 0:
                    save("in_progress")
    except BaseException:
        if report.written:
            save("in_progress")
        raise
    finally:
        bar.close()


def _finish(out: Path, frames: list[Frame], writer: FrameWriter, report: ConversionReport,
            save: Callable[[str], None]) -> ConversionReport:
    """Warnings, lists, preview, the final manifest; DamagedBagError for damage unless --allow-truncated."""
    options = writer.options
    report.warnings.extend(writer.warnings)
    if writer.matches:
        offset, inliers = vertical_misalignment(np.concatenate(writer.matches), writer.calib.size)
        if offset > MAX_VERTICAL_OFFSET_PX:
            report.warnings.append(
                f"the images do not look rectified: matched points differ by {offset:.1f} px vertically "
                f"(median of a fit to {inliers} matches in {len(writer.matches)} pairs). Pass --rectify if the "
                "topics carry raw images, or check that left and right are a rectified pair")
    for index, why in sorted(writer.corrupt.items()):
        report.corrupt[frames[index].name] = why
        report.warnings.append(f"skipped frame {frames[index].name}: {why}")
    done = [f for f in frames if f.done(out, options)]
    report.incomplete = len(frames) - len(done) - len(writer.corrupt)
    report.count_labels(done)
    usable = [f for f in done if f.rejected is None]
    manifest.write_lists(out, usable, options)
    manifest.write_preview(out, usable, options)
    damaged = [b for b in report.bags if b.get("damaged")]
    report.status = "partial" if (damaged and not options.allow_truncated) or report.incomplete else "complete"
    save(report.status)
    if damaged and not options.allow_truncated:
        details = "; ".join(f"{b['path']}: {b['damaged']['message']}" for b in damaged)
        raise DamagedBagError(
            f"{details}. Kept the {len(done)} frames converted from the readable part in {out} (lists and "
            "manifest written, status 'partial'). Rerun with --allow-truncated to accept them as the dataset, "
            "or repair the recording (ros2 bag reindex) first", report)
    report.warnings.extend(f"{b['path']}: {b['damaged']['message']}; converted the readable part" for b in damaged)
    return report


def convert(bags: Sequence[str | Path], out: str | Path, options: Bag2DatasetOptions | None = None, *,
            predictor: Any = None, on_frame: Callable[[int], None] | None = None) -> ConversionReport:
    """Convert the recordings `bags` into the dataset folder `out`: check the output folder (before the long scan),
    pass 1, calibration, frame plan, output folder and manifest, pass 2, lists and summary.

    predictor: for pseudo-labels, anything with `predict(left, right)` returning (H, W) `disparity` and
        `uncertainty` maps and `model.deployment` (default: the torch Predictor of `options.pseudo_labels`).
    on_frame: called with the frame index after each frame is written (progress hooks, tests).
    Raises BagError, sensors.InputError (encodings, calibration), FileNotFoundError, and DamagedBagError after
    writing everything readable of a damaged recording (unless options.allow_truncated).
    """
    options = options or Bag2DatasetOptions()
    if not bags:
        raise ValueError("no bags given")
    out = Path(out)
    sources = [BagSource(b) for b in bags]
    if len({s.path.resolve() for s in sources}) != len(sources):
        raise ValueError(f"the same bag is given twice: {[str(s.path) for s in sources]}")
    if options.pseudo_labels and not Path(options.pseudo_labels).is_file():
        raise FileNotFoundError(f"--pseudo-labels checkpoint not found: {options.pseudo_labels}")
    fingerprint, identity = manifest.fingerprint_of(options, sources)
    action, existing = manifest.inspect_output(out, fingerprint, identity, options.overwrite)
    report = ConversionReport(out=out)
    scans = [scan_bag(i, s, options) for i, s in enumerate(sources)]
    calib = _calibrate(scans, options, report)
    frames = _plan(scans, options, report)
    created = _prepare_output(out, action, existing, frames, options, calib)

    def save(status: str) -> None:
        manifest.write_manifest(out, options, fingerprint, identity, report, calib, frames, created, status)

    save("in_progress")
    report.reused = sum(f.done(out, options) for f in frames)
    for f in frames:  # frames of an earlier run without a recorded labelled fraction
        if f.valid_fraction is None and options.has_labels and f.done(out, options):
            f.measure(np.load(out / f.files(options)["disp"], mmap_mode="r"))
    if report.reused < len(frames) and options.pseudo_labels and predictor is None:
        predictor = load_predictor(options)
    writer = FrameWriter(out, options, calib, predictor)
    _write_frames(out, scans, frames, writer, report, on_frame, save)
    return _finish(out, frames, writer, report, save)
