"""rosbag2 tools on the ROS side, runnable without a ROS install (pure-Python `rosbags`).

Modules: `reader` (sqlite3/mcap recordings, damaged ones too), `messages` (CDR (de)serialization, header
stamps, message builders), `calib` (CameraInfo pair -> calibration, rectification), `pairing` (frames by
stamp, window, stride, split), `pseudo` (labels from a model), `convert` (`smd bag2dataset`), `writer`
(recordings for tests, scripts and the bundled sample). Camera images and calibration are decoded by
`smd_ros.sensors`, the decoder the stereo node uses too.
"""
