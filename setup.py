"""One ament_python package: `colcon build` and `pip install` both accept it."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "smd_ros"
TORCH = ["torch", "scikit-image"]
# ROS 2 (Kilted) from PyPI, for pip-only machines; on a ROS install colcon uses the system's.
ROS_WHEELS = ["ros-rclpy", "ros-sensor-msgs", "ros-stereo-msgs", "ros-std-msgs", "ros-diagnostic-msgs",
              "ros-rmw-fastrtps-cpp"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["smd_core", "smd_core.*", "smd_ros", "smd_ros.*"]),
    package_data={
        "smd_core": ["weights/*.pt", "weights/*.onnx", "weights/*.md"],
        "smd_ros": ["data/*.npz", "data/sample_stereo/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    python_requires=">=3.10",
    # The base install runs nothing by itself: `.[runtime]` adds onnxruntime and the ROS wheels (the node, `smd
    # predict` and `smd demo` with no torch), `.[torch]` PyTorch (checkpoints, evaluation), `.[train]` and
    # `.[export]` what training and `smd export` need on top of it.
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "pyyaml",
        "tqdm",
        # The demo and the bag tools read rosbag2 recordings.
        "rosbags",
        # Imported by smd_ros/bags/reader.py itself (damaged-recording reader), not only through rosbags.
        "apsw",
        "lz4",
        'backports.zstd; python_version < "3.14"',
    ],
    extras_require={
        "runtime": ["onnxruntime", "onnx", *ROS_WHEELS],
        "torch": TORCH,
        "train": [*TORCH, "tensorboard", "matplotlib"],
        "export": [*TORCH, "onnx", "onnxruntime", "onnxscript"],  # onnxscript: the dynamo exporter (published layouts)
        "test": ["pytest", "ruff"],
    },
    zip_safe=True,
    maintainer="smd_ros maintainers",
    maintainer_email="smd-ros@example.com",
    description="SMD-Nets stereo for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "smd = smd_ros.cli:main",
            "stereo_node = smd_ros.stereo_node:main",
            "bag2dataset = smd_ros.bags.cli:main",
        ],
    },
)
