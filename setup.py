"""One ament_python package: `colcon build` and `pip install` both accept it."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "smd_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["smd_core", "smd_core.*", "smd_ros", "smd_ros.*"]),
    package_data={
        "smd_core": ["weights/*.pt", "weights/*.md"],
        "smd_ros": ["data/*.npz", "data/sample_stereo/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "torch",
        "opencv-python-headless",
        "pyyaml",
        "tqdm",
        "scikit-image",
        "rosbags",
        # Imported by smd_ros/bags/reader.py itself (damaged-recording reader), not only through rosbags.
        "apsw",
        "lz4",
        'backports.zstd; python_version < "3.14"',
    ],
    extras_require={"test": ["pytest", "ruff"], "train": ["tensorboard", "matplotlib"]},
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
