"""smd_ros.params: NodeConfig validation, ROS descriptors, run-time changes, config/stereo.yaml, devices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")

from smd_ros import params  # noqa: E402
from smd_ros.params import NodeConfig  # noqa: E402
from smd_ros.ros_session import ros_session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_every_field_is_documented():
    cfg = NodeConfig()
    assert cfg.depth_range == (0.0, float("inf"))
    for f in dataclasses.fields(NodeConfig):
        assert f.metadata["description"], f.name
        assert f.metadata["apply"] in ("live", "reload", "restart"), f.name


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"device": "gpu"}, "device='gpu'"),
        ({"device": "cuda:x"}, "device="),
        ({"backbone": "resnet"}, "backbone='resnet' is not one of"),
        ({"output": "trimodal"}, "output="),
        ({"max_disparity": 100}, "multiple of 16"),
        ({"max_disparity": -16}, "outside"),
        ({"input_scale": 0.0}, "input_scale=0.0 is outside"),
        ({"output_scale": 0.5}, "output_scale=0.5 is outside"),
        ({"output_scale": float("nan")}, "finite"),
        ({"chunk_points": 10}, "chunk_points"),
        ({"max_uncertainty": -1.5}, "max_uncertainty"),
        ({"min_depth": 5.0, "max_depth": 2.0}, "greater than min_depth"),
        ({"queue_size": 0}, "queue_size"),
        ({"use_color": 1}, "use_color must be bool"),
        ({"chunk_points": True}, "chunk_points must be int"),
        ({"checkpoint": 3}, "checkpoint must be str"),
    ],
)
def test_invalid_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NodeConfig(**kwargs)


def test_config_from_mapping_coerces_integers_for_floats():
    cfg = params.config_from_mapping({"output_scale": 2, "max_depth": 10})
    assert cfg.output_scale == 2.0 and isinstance(cfg.output_scale, float)
    with pytest.raises(ValueError, match="unknown node parameters"):
        params.config_from_mapping({"outptu_scale": 2.0})


def test_runtime_changes():
    cfg = NodeConfig()
    new, reason = params.updated_config(cfg, [("max_uncertainty", 2.5), ("organized_cloud", False)])
    assert reason == "" and new.max_uncertainty == 2.5 and not new.organized_cloud
    # Model parameters need a reload, subscription parameters a restart: refused, saying so.
    new, reason = params.updated_config(cfg, [("checkpoint", "/tmp/other.pth")])
    assert new is None and "needs a model reload" in reason and "/tmp/other.pth" in reason
    new, reason = params.updated_config(cfg, [("queue_size", 9)])
    assert new is None and "restart the node" in reason
    # Setting the current value again is harmless.
    new, reason = params.updated_config(cfg, [("device", "auto"), ("min_depth", 1.0)])
    assert reason == "" and new.min_depth == 1.0
    new, reason = params.updated_config(cfg, [("output_scale", 0.2)])
    assert new is None and "output_scale=0.2 is outside" in reason
    new, reason = params.updated_config(cfg, [("nope", 1)])
    assert new is None and "unknown parameter" in reason


def test_descriptors_carry_description_ranges_and_constraints():
    from rcl_interfaces.msg import ParameterType

    desc = params.parameter_descriptors()
    assert set(desc) == set(params.FIELDS)
    out = desc["output_scale"]
    assert out.type == ParameterType.PARAMETER_DOUBLE and out.description
    assert (out.floating_point_range[0].from_value, out.floating_point_range[0].to_value) == (1.0, 8.0)
    assert "run time" in out.additional_constraints
    q = desc["queue_size"]
    assert q.type == ParameterType.PARAMETER_INTEGER and q.integer_range[0].to_value == 100
    assert "restart" in q.additional_constraints
    assert "model reload" in desc["checkpoint"].additional_constraints
    assert "'psmnet'" in desc["backbone"].additional_constraints
    assert desc["use_color"].type == ParameterType.PARAMETER_BOOL


def test_declare_parameters_on_a_node(ros_env):
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    with ros_session(context=rclpy.Context()) as context:
        node = Node("params_test", context=context, parameter_overrides=[
            Parameter("output_scale", value=2),  # an integer for a float parameter is accepted
            Parameter("max_uncertainty", value=1.5),
            Parameter("device", value="cpu"),
        ])
        cfg = params.declare_parameters(node)
        assert (cfg.output_scale, cfg.max_uncertainty, cfg.device) == (2.0, 1.5, "cpu")
        assert node.describe_parameter("sync_slop").description
        node.destroy_node()
        for bad, match in (([Parameter("queue_size", value=1000)], "queue_size"),
                           ([Parameter("device", value="tpu")], "device"),
                           ([Parameter("use_color", value="yes")], "use_color")):
            node = Node("params_test_bad", context=context, parameter_overrides=bad)
            with pytest.raises(ValueError, match=match):
                params.declare_parameters(node)
            node.destroy_node()


def test_stereo_yaml_lists_every_parameter_with_its_default_and_a_comment():
    path = REPO / "config" / "stereo.yaml"
    data = yaml.safe_load(path.read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == set(params.FIELDS)
    for name, f in params.FIELDS.items():
        assert values[name] == f.default, name
    lines = path.read_text().splitlines()
    for name in params.FIELDS:
        idx = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}:"))
        assert lines[idx - 1].strip().startswith("#"), f"{name} has no comment above it"
    # And the file is a valid configuration.
    params.config_from_mapping(values)


def test_device_parameter_resolution():
    """The node's `device` and `device_fallback` (smd_core.resolve, whose default hint names the parameter)."""
    from smd_core.resolve import resolve_device

    assert resolve_device("cpu", fallback=False, cuda_available=True) == ("cpu", "")
    assert resolve_device("auto", fallback=False, cuda_available=False) == ("cpu", "")
    assert resolve_device("auto", fallback=False, cuda_available=True) == ("cuda", "")
    assert resolve_device("cuda:1", fallback=False, cuda_available=True) == ("cuda:1", "")
    device, warning = resolve_device("cuda", fallback=True, cuda_available=False)
    assert device == "cpu" and "CUDA is not available" in warning
    with pytest.raises(RuntimeError, match="device_fallback is false"):
        resolve_device("cuda", fallback=False, cuda_available=False)
    with pytest.raises(ValueError, match="auto, cpu"):
        resolve_device("tpu", fallback=True, cuda_available=False)
    # Without an override it asks torch, which this machine answers either way.
    device, _ = resolve_device("auto", fallback=True)
    assert device in ("cpu", "cuda")
