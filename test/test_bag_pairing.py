"""Frame selection rules (smd_ros.bags.pairing): pairing by stamp, window, stride, time-block split."""

from __future__ import annotations

from collections import Counter

from smd_ros.bags.pairing import Frame, apply_stride, assign_splits, pair_stamps, select_window

MS = 1_000_000


def test_exact_and_jittered_pairs_within_tolerance():
    left = [0, 100 * MS, 200 * MS, 300 * MS]
    right = [0, 103 * MS, 195 * MS, 330 * MS]  # last one 30 ms late
    paired, dropped = pair_stamps(0, left, right, None, tolerance_ns=10 * MS)
    assert [(f.left_ns, f.right_ns) for f in paired] == [(0, 0), (100 * MS, 103 * MS), (200 * MS, 195 * MS)]
    assert dropped == Counter({"no right image within 10 ms": 1, "right image without a left image": 1})


def test_closest_left_wins_a_shared_right_image():
    # Two left images (the right camera dropped a frame) both nearest to right stamp 100 ms.
    left = [96 * MS, 104 * MS + 1]
    right = [100 * MS]
    paired, dropped = pair_stamps(0, left, right, None, tolerance_ns=10 * MS)
    assert [(f.left_ns, f.right_ns) for f in paired] == [(96 * MS, 100 * MS)]
    assert dropped == Counter({"its right image is paired with a closer left image": 1})


def test_ground_truth_required_and_duplicates_dropped():
    left = [0, 100 * MS, 100 * MS, 200 * MS]  # a republished frame
    right = [0, 100 * MS, 200 * MS]
    gt = [1 * MS, 150 * MS, 201 * MS]  # nothing near 100 ms
    paired, dropped = pair_stamps(3, left, right, gt, tolerance_ns=5 * MS, topics=("/l", "/r", "/depth"))
    assert [(f.bag, f.left_ns, f.gt_ns) for f in paired] == [(3, 0, 1 * MS), (3, 200 * MS, 201 * MS)]
    assert dropped == Counter({"duplicate stamp on /l": 1, "no ground truth (/depth) within 5 ms": 1})


def test_unsorted_input_and_empty_topics():
    paired, dropped = pair_stamps(0, [200, 0, 100], [100, 200, 0], [], tolerance_ns=0)
    assert paired == []
    assert dropped == Counter({"no ground truth (ground truth) within 0 ms": 3})
    paired, dropped = pair_stamps(0, [200, 0, 100], [], None, tolerance_ns=0)
    assert dropped == Counter({"no right image within 0 ms": 3})


def frames(n: int, step_ms: int = 100) -> list[Frame]:
    return [Frame(0, i * step_ms * MS, i * step_ms * MS) for i in range(n)]


def test_window_relative_to_first_frame_and_stride():
    dropped: Counter = Counter()
    seq = [Frame(0, 10_000 * MS + f.left_ns, 0) for f in frames(20)]  # starts at an arbitrary time
    kept = select_window(seq, 0.5, 1.2, dropped)
    assert [round((f.left_ns - seq[0].left_ns) / MS) for f in kept] == [500, 600, 700, 800, 900, 1000, 1100]
    kept = apply_stride(kept, 3, dropped)
    assert [round((f.left_ns - seq[0].left_ns) / MS) for f in kept] == [500, 800, 1100]
    assert dropped == Counter({"outside the time window": 13, "stride 3": 4})
    assert select_window(seq, None, None, dropped) is seq


def test_validation_is_whole_time_blocks_spread_over_the_sequence():
    seq = frames(100)
    assign_splits(seq, 0.2, 10)
    splits = "".join("v" if f.split == "val" else "t" for f in seq)
    # Blocks 2 and 7 of 10, each 10 consecutive frames.
    assert splits == "t" * 20 + "v" * 10 + "t" * 40 + "v" * 10 + "t" * 20
    assign_splits(seq, 0.0, 10)
    assert all(f.split == "train" for f in seq)
    # Tiny sequences: at least one val block and one train block when validation is asked for.
    few = frames(3)
    assign_splits(few, 0.9, 10)
    assert [f.split for f in few].count("train") >= 1 and [f.split for f in few].count("val") >= 1
