"""rosbag2 tools, runnable without a ROS install (pure-Python `rosbags`).

`reader` (sqlite3 / mcap recordings, split, cut off or damaged; CDR, header stamps; BagError) and
`smd bag2dataset`: `cli` -> `convert` (the steps) -> `scan` (topic checks, pass 1: stamps and CameraInfos;
pass 2: the planned frames' messages), `calib` (the CameraInfo pair, rectification), `pairing` (`Frame`; by
stamp, window, stride, split), `frames` (decode, rectify, label, range-check, write one frame), `pseudo`
(labels from a model), `manifest` (the output folder: fingerprint, resume, lists, preview), `options`,
`report`. Images and calibration are decoded by `smd_ros.sensors`, the stereo node's decoder.
Bags for tests, benches and the bundled sample are written by test/bag_fixtures.py (not installed).
"""
