"""The stereo node's own cost per frame, beside the model's, at 640x480 and 1280x720.

    python bench/bench_node.py [--checkpoint PATH] [--repeats 20] [--model-runs 1] [--no-model]

Stages, each timed separately as the node's worker runs them (medians over --repeats):
- convert:   two sensor_msgs/Image (bgr8) + two CameraInfo -> BGR arrays + StereoCamera (validation included);
- images:    DisparityImage + uncertainty Image (32FC1);
- cloud:     the organized, coloured PointCloud2 (one structured array) -- and, for reference, the dense list;
- publish:   publishing disparity, uncertainty and cloud over DDS (loopback profile) to a matched subscriber;
- model:     `smd_core.Predictor.predict` at the same size (default: the bundled model, else the parity
             PSMNet checkpoint from $SMD_SHARED_DIR, default ../shared), for scale.
"node" = convert + images + cloud + publish: what the node adds to the model. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))
from smd_ros.ros_session import dds_profile_env, ros_session  # noqa: E402 (after the path set-up above)

# Loopback-only DDS on a private domain, as in the tests; set before rclpy loads.
for _key, _value in dds_profile_env(REPO / "config" / "loopback_fastdds.xml",
                                   random.Random(os.getpid()).randint(30, 200)).items():
    os.environ.setdefault(_key, _value)

SIZES = ((480, 640), (720, 1280))


def median_ms(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), out


def default_checkpoint(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    try:
        from smd_core.weights import default_checkpoint as bundled

        return bundled()
    except (ImportError, FileNotFoundError):
        shared = Path(os.environ.get("SMD_SHARED_DIR", REPO.parent / "shared"))
        parity = shared / "parity" / "psm_bimodal_s1" / "checkpoint.pth"
        return parity if parity.is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="model for the 'model' column (default: bundled, else parity)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model-runs", type=int, default=1)
    parser.add_argument("--no-model", action="store_true", help="skip the model column")
    args = parser.parse_args()
    with ros_session():
        rows, received, checkpoint = measure(args)
    from smd_ros.ros_libs import message_filters

    print(f"\nnode overhead per frame, CPU, {os.cpu_count()} cores; median of {args.repeats} "
          f"(model: {args.model_runs} run{'s' if args.model_runs > 1 else ''}, {checkpoint or 'skipped'}); "
          f"synchronizer {message_filters.__name__}")
    header_row = ("size", "convert ms", "disp+unc msgs ms", "cloud ms", "(dense cloud ms)", "publish ms",
                  "node total ms", "model ms")
    print("| " + " | ".join(header_row) + " |")
    print("|" + "|".join("---" for _ in header_row) + "|")
    for size, *vals in rows:
        print(f"| {size} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    print("node total = convert + all output messages (stereo_outputs) + publish; the dense cloud replaces the "
          f"organized one when organized_cloud is false. Subscriber received {received} messages.")
    return 0


def measure(args: argparse.Namespace) -> tuple[list[tuple], int, Path | None]:
    """The table's rows, the messages the subscriber received, the model's checkpoint (rclpy initialized)."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_system_default
    from ros_helpers import camera_infos, header, image_msg
    from sensor_msgs.msg import Image, PointCloud2
    from stereo_msgs.msg import DisparityImage

    from smd_ros import messages, sensors

    pub_node, sub_node = Node("bench_publisher"), Node("bench_subscriber")
    received = {"n": 0}

    def count(_msg: object) -> None:
        received["n"] += 1

    pubs = {"disparity": pub_node.create_publisher(DisparityImage, "disparity", qos_profile_system_default),
            "uncertainty": pub_node.create_publisher(Image, "uncertainty", qos_profile_system_default),
            "points2": pub_node.create_publisher(PointCloud2, "points2", qos_profile_system_default)}
    types = {"disparity": DisparityImage, "uncertainty": Image, "points2": PointCloud2}
    for name, tp in types.items():
        sub_node.create_subscription(tp, name, count, qos_profile_system_default)
    executor = SingleThreadedExecutor()
    executor.add_node(sub_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    end = time.monotonic() + 10
    while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < end:
        time.sleep(0.05)

    predictor = None
    checkpoint = None if args.no_model else default_checkpoint(args.checkpoint)
    if checkpoint is not None:
        import smd_core

        predictor = smd_core.Predictor(smd_core.load_model(checkpoint, device="cpu"), device="cpu")

    rng = np.random.default_rng(0)
    rows = []
    steps = tqdm(total=len(SIZES) * (6 + (args.model_runs if predictor else 0)), desc="bench", unit="stage")
    for h, w in SIZES:
        left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        right = np.roll(left, -20, axis=1)
        lmsg, rmsg = image_msg(left, "bgr8", 1.0), image_msg(right, "bgr8", 1.0)
        li, ri = camera_infos(w, h, 1.0, fx=0.8 * w, baseline=0.12)
        hdr = header(1.0)

        def convert(lmsg=lmsg, rmsg=rmsg, li=li, ri=ri, w=w, h=h):
            lb, rb = sensors.stereo_images(lmsg, rmsg)
            return lb, rb, sensors.stereo_camera(li, ri, w, h)

        t_convert, (lb, _, camera) = median_ms(convert, args.repeats)
        steps.update()
        # A disparity map with a foreground block, 5 % invalid pixels and an uncertainty map.
        disp = rng.uniform(10, 60, (h, w)).astype(np.float32)
        disp[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] += 40
        disp[rng.random((h, w)) < 0.05] = -1.0
        unc = rng.uniform(0, 3, (h, w)).astype(np.float32)
        valid = disp > 0

        t_images, (dmsg, umsg) = median_ms(lambda disp=disp, unc=unc, valid=valid, camera=camera, hdr=hdr: (
            messages.disparity_msg(hdr, disp, valid, camera, max_disparity=256.0),
            messages.image_msg(hdr, unc)), args.repeats)
        steps.update()
        t_cloud, cloud = median_ms(lambda disp=disp, valid=valid, camera=camera, lb=lb, hdr=hdr: messages.cloud_msg(
            hdr, disp, valid, camera, colors_bgr=lb, organized=True), args.repeats)
        steps.update()
        t_dense, _ = median_ms(lambda disp=disp, valid=valid, camera=camera, lb=lb, hdr=hdr: messages.cloud_msg(
            hdr, disp, valid, camera, colors_bgr=lb, organized=False), args.repeats)
        steps.update()
        t_all, _ = median_ms(lambda disp=disp, unc=unc, camera=camera, lb=lb, hdr=hdr: messages.stereo_outputs(
            hdr, disp, unc, camera, max_disparity=256.0, left_bgr=lb), args.repeats)
        steps.update()

        def publish(dmsg=dmsg, umsg=umsg, cloud=cloud):
            pubs["disparity"].publish(dmsg)
            pubs["uncertainty"].publish(umsg)
            pubs["points2"].publish(cloud)

        t_publish, _ = median_ms(publish, args.repeats)
        steps.update()
        t_model = float("nan")
        if predictor is not None:
            times = []
            for _ in range(args.model_runs):
                t0 = time.perf_counter()
                predictor.predict(left, right)
                times.append(time.perf_counter() - t0)
                steps.update()
            t_model = 1e3 * statistics.median(times)
        rows.append((f"{w}x{h}", t_convert, t_images, t_cloud, t_dense, t_publish,
                     t_convert + t_all + t_publish, t_model))
    steps.close()
    time.sleep(0.5)
    executor.shutdown()
    spinner.join(timeout=5.0)
    pub_node.destroy_node()
    sub_node.destroy_node()
    return rows, received["n"], checkpoint


if __name__ == "__main__":
    sys.exit(main())
