"""rosbag2 tools on the ROS side, runnable without a ROS install (pure-Python `rosbags`).

Reading: `reader` (sqlite3/mcap recordings, split, cut off or damaged), `messages` (CDR (de)serialization,
header stamps from the raw bytes, message builders), `errors`.
`smd bag2dataset` (one bag -> a training set): `cli` (arguments, exit codes) -> `convert` (the steps) ->
`scan` (topic checks, pass 1: stamps and CameraInfos; pass 2: the planned frames' messages), `calib`
(the CameraInfo pair, rectification), `pairing` (frames by stamp, window, stride, split), `frames`
(decode, rectify, label, range-check, write one frame), `pseudo` (labels from a model), `manifest`
(the output folder: fingerprint, resume, manifest, lists, preview), `options` (settings and report).
Recording: `writer` (bags for tests, scripts and the bundled sample).
Camera images and calibration are decoded by `smd_ros.sensors`, the decoder the stereo node uses too.
"""
