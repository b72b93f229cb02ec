"""Every parameter of cityscapes_seg_node, declared in this one place, and their validation.

``PARAMETERS`` lists them with default, description, range or choices and whether they can change at
runtime. ``declare_parameters`` declares them on the node (with ``ParameterDescriptor``) and returns the
checked ``NodeSettings``, or raises ``ParameterError`` naming every bad value; ``problem`` is the check
that the node's on-set-parameters callback runs on runtime changes. ``config/cityscapes_seg.yaml`` holds
the same defaults with comments (a test keeps the two in step).
"""

from __future__ import annotations

import array
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..labels import TRAIN_CLASS_NAMES
from ..ros_contract.topics import CONFIDENCE_ENCODINGS, INPUT_TRANSPORTS, OUTPUT_KINDS
from ..segmenter import (
    DCNV3_BACKENDS,
    DEFAULT_INFERENCE_SIZE,
    DEFAULT_MODEL,
    HUB_CHECKPOINT,
    MODES,
    PRECISIONS,
    TTA_CHOICES,
    ModelOptions,
    device_problem,
    model_problem,
)

ALL_CLASSES = "all"
_TOPIC_NAME = re.compile(r"^[~/]?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


class ParameterError(ValueError):
    """One or more parameter values are invalid; the message names each."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    choices: Tuple[str, ...] = ()  # for strings (each element, for string arrays)
    value_range: Optional[Tuple[float, float]] = None  # inclusive, for numbers (each element, for arrays)
    runtime: bool = False  # may change while the node runs; otherwise read-only after start-up
    check: Optional[Callable[[Any], Optional[str]]] = None  # further validation: None or what is wrong

    def problem(self, value: Any) -> Optional[str]:
        """None when ``value`` is acceptable, else a sentence saying why not."""
        kind = type(self.default)
        # rclpy hands array values set at runtime (``ros2 param set``) as array.array('q'/'d'), not lists.
        is_list = isinstance(value, (list, tuple, array.array))
        items = list(value) if is_list else [value]
        if kind in (list, tuple):
            if not is_list:
                return f"expected a list like {list(self.default)}, got {value!r}"
            item_kind = type(self.default[0])
        else:
            item_kind = kind
        for item in items:
            if item_kind is float and isinstance(item, int) and not isinstance(item, bool):
                item = float(item)
            if not isinstance(item, item_kind) or (item_kind is int and isinstance(item, bool)):
                return f"expected {item_kind.__name__} values, got {item!r}"
            if self.choices and item not in self.choices:
                return f"{item!r} is not one of {', '.join(self.choices)}"
            if self.value_range is not None and not self.value_range[0] <= item <= self.value_range[1]:
                return f"{item!r} is outside [{self.value_range[0]}, {self.value_range[1]}]"
        return self.check(value) if self.check is not None else None


def _check_checkpoint(value: str) -> Optional[str]:
    return None if value.strip() else "empty: expected 'hub', a .pth file, hf://owner/repo/file[@rev] or 'none'"


def _check_topics(value: Sequence[str]) -> Optional[str]:
    if not value:
        return "at least one image topic is needed"
    bad = [t for t in value if not _TOPIC_NAME.match(t)]
    if bad:
        return f"invalid topic name(s): {', '.join(map(repr, bad))}"
    if len(set(value)) != len(value):
        return f"topics listed twice: {list(value)}"
    return None


def _check_size(value: Sequence[int]) -> Optional[str]:
    return None if len(value) == 2 else f"expected [long edge, short edge], got {list(value)}"


def _check_classes(value: Sequence[str]) -> Optional[str]:
    if list(value) == [ALL_CLASSES]:
        return None
    unknown = [c for c in value if c not in TRAIN_CLASS_NAMES]
    if unknown or not value:
        return f"unknown class(es) {unknown or list(value)}: expected '{ALL_CLASSES}' or names of {', '.join(TRAIN_CLASS_NAMES)}"
    return None


def _check_outputs(value: Sequence[str]) -> Optional[str]:
    return f"outputs listed twice: {list(value)}" if len(set(value)) != len(value) else None


PARAMETERS: Tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "model",
        DEFAULT_MODEL,
        "model name (cityscapes-seg models) or a YAML/JSON file holding an mmseg model dict",
        check=model_problem,
    ),
    ParameterSpec(
        "checkpoint",
        HUB_CHECKPOINT,
        "'hub' (the model's released file, Hugging Face cache), hf://owner/repo/file[@rev], a local .pth, "
        "or 'none' for random weights (testing only)",
        check=_check_checkpoint,
    ),
    ParameterSpec("hub_offline", False, "only look in the local Hugging Face cache for hub checkpoints"),
    ParameterSpec("device", "auto", "auto (cuda when available), cpu, cuda or cuda:<index>", check=device_problem),
    ParameterSpec("precision", "fp32", "inference precision (autocast)", choices=PRECISIONS),
    ParameterSpec(
        "dcnv3_backend", "auto", "DCNv3 core: auto (compiled op when available) or torch", choices=DCNV3_BACKENDS
    ),
    ParameterSpec(
        "inference_size",
        list(DEFAULT_INFERENCE_SIZE),
        "[long edge, short edge] bound of the keep-ratio resize before the network (the official 2048x1024)",
        value_range=(32, 8192),
        runtime=True,
        check=_check_size,
    ),
    ParameterSpec(
        "resize",
        "keep_ratio",
        "keep_ratio: fit the image into inference_size keeping its aspect ratio (official test pipeline); "
        "none: run the network at the input resolution",
        choices=("keep_ratio", "none"),
        runtime=True,
    ),
    ParameterSpec("mode", "whole", "whole image or sliding 512x1024 windows", choices=MODES, runtime=True),
    ParameterSpec("tta", "none", "test-time augmentation", choices=TTA_CHOICES, runtime=True),
    ParameterSpec(
        "max_batch_size",
        1,
        "most frames (one per camera, the newest each) that go through the network as one batch; only "
        "frames of one size, without TTA, in whole mode are batched; 1: one frame at a time",
        value_range=(1, 16),
        runtime=True,
    ),
    ParameterSpec(
        "cuda_graphs",
        True,
        "on a GPU, replay the network's forward as a CUDA graph per input size and batch size (captured "
        "on the first frame of each; whole mode, no multi-scale TTA); ignored on the CPU",
        runtime=True,
    ),
    ParameterSpec(
        "image_topics",
        ["/camera/image_raw"],
        "input image topics, one camera each; outputs go to <topic's namespace>/segmentation/",
        check=_check_topics,
    ),
    ParameterSpec(
        "input_transport",
        "raw",
        "raw: sensor_msgs/Image on each topic; compressed: sensor_msgs/CompressedImage on <topic>/compressed",
        choices=INPUT_TRANSPORTS,
    ),
    ParameterSpec(
        "input_reliability",
        "reliable",
        "QoS reliability of the image subscriptions (sensor-data profile otherwise). reliable: only "
        "reliable publishers connect, large images arrive between processes; best_effort: every publisher "
        "connects, but Fast DDS drops most images above ~512 KB between processes",
        choices=("reliable", "best_effort"),
    ),
    ParameterSpec(
        "output_reliability",
        "reliable",
        "QoS reliability of the outputs; reliable publishers serve reliable and best-effort subscribers",
        choices=("reliable", "best_effort"),
    ),
    ParameterSpec(
        "outputs",
        ["labels", "color", "overlay", "statistics", "camera_info"],
        f"what to publish per camera: any of {', '.join(OUTPUT_KINDS)}",
        choices=OUTPUT_KINDS,
        runtime=True,
        check=_check_outputs,
    ),
    ParameterSpec(
        "skip_unsubscribed",
        True,
        "make and publish each output only while someone subscribes to it; a camera whose outputs "
        "(statistics and camera_info included) have no subscriber is not segmented at all",
        runtime=True,
    ),
    ParameterSpec(
        "overlay_alpha", 0.5, "weight of the colour mask in the overlay", value_range=(0.0, 1.0), runtime=True
    ),
    ParameterSpec(
        "confidence_encoding",
        "mono8",
        "confidence image: mono8 (probability * 255) or 32FC1 (probability)",
        choices=CONFIDENCE_ENCODINGS,
        runtime=True,
    ),
    ParameterSpec(
        "statistics_rate",
        0.0,
        "most ClassStatistics messages per second and camera; 0: one per segmented frame",
        value_range=(0.0, 1000.0),
        runtime=True,
    ),
    ParameterSpec(
        "classes",
        [ALL_CLASSES],
        "class subset: 'all', or class names; other classes are published as ignore (255) and left out "
        "of the statistics",
        runtime=True,
        check=_check_classes,
    ),
    ParameterSpec(
        "max_pixels",
        16_777_216,
        "larger input images are refused (bad input)",
        value_range=(1, 2**31 - 1),
        runtime=True,
    ),
    ParameterSpec(
        "diagnostics_rate", 1.0, "DiagnosticArray messages per second on /diagnostics", value_range=(0.1, 100.0)
    ),
    ParameterSpec(
        "log_throttle_s",
        5.0,
        "at most one error log per problem kind and camera in this many seconds",
        value_range=(0.0, 3600.0),
        runtime=True,
    ),
    ParameterSpec(
        "frame_timeout_s",
        3.0,
        "a camera without a frame for this long is WARN on /diagnostics, for twice as long STALE",
        value_range=(0.1, 3600.0),
        runtime=True,
    ),
    ParameterSpec(
        "health_window_s",
        10.0,
        "the window of the recent_* figures on /diagnostics: a camera is WARN while it holds bad inputs "
        "or failures, and OK again after this long of good frames",
        value_range=(1.0, 3600.0),
        runtime=True,
    ),
    ParameterSpec(
        "jpeg_quality",
        90,
        "JPEG quality (1-100) of the color and overlay <topic>/compressed outputs",
        value_range=(1, 100),
        runtime=True,
    ),
)

SPECS: Dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeSettings:
    """The checked parameter values, one immutable snapshot (replaced whole on runtime changes)."""

    model: str
    checkpoint: str
    hub_offline: bool
    device: str
    precision: str
    dcnv3_backend: str
    inference_size: Tuple[int, int]
    resize: str
    mode: str
    tta: str
    max_batch_size: int
    cuda_graphs: bool
    image_topics: Tuple[str, ...]
    input_transport: str
    input_reliability: str
    output_reliability: str
    outputs: Tuple[str, ...]
    skip_unsubscribed: bool
    overlay_alpha: float
    confidence_encoding: str
    statistics_rate: float
    classes: Tuple[str, ...]
    max_pixels: int
    diagnostics_rate: float
    log_throttle_s: float
    frame_timeout_s: float
    health_window_s: float
    jpeg_quality: int

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeSettings:
        """Check every value (raising one ``ParameterError`` that lists all problems) and build the snapshot."""
        problems = [f"{name}: {why}" for name, why in ((n, problem(n, v)) for n, v in values.items()) if why]
        missing = [name for name in SPECS if name not in values]
        if missing:
            problems.append(f"missing parameters: {', '.join(missing)}")
        if problems:
            raise ParameterError("invalid parameter(s): " + "; ".join(problems))
        fields = {}
        for name, value in values.items():
            default = SPECS[name].default
            if isinstance(default, list):
                value = tuple(value)
            elif isinstance(default, float):
                value = float(value)
            fields[name] = value
        return cls(**fields)

    def model_options(self) -> ModelOptions:
        """The model part of the parameters, for ``segmenter.build_predictor``."""
        return ModelOptions(
            model=self.model,
            checkpoint=self.checkpoint,
            hub_offline=self.hub_offline,
            device=self.device,
            precision=self.precision,
            mode=self.mode,
            tta=self.tta,
            img_scale=self.inference_size,
            dcnv3_backend=self.dcnv3_backend,
        )

    @property
    def class_subset(self) -> Optional[Tuple[int, ...]]:
        """Train ids of the chosen classes, or None for all."""
        if self.classes == (ALL_CLASSES,):
            return None
        return tuple(sorted(TRAIN_CLASS_NAMES.index(name) for name in self.classes))


def problem(name: str, value: Any) -> Optional[str]:
    """None when ``value`` is acceptable for parameter ``name``, else why not."""
    spec = SPECS.get(name)
    if spec is None:
        return "unknown parameter"
    return spec.problem(value)


def descriptor(spec: ParameterSpec) -> Any:
    """The rcl_interfaces ParameterDescriptor for a spec (type, description, range, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    constraints = f"one of: {', '.join(spec.choices)}" if spec.choices else ""
    desc = ParameterDescriptor(
        name=spec.name, description=spec.description, additional_constraints=constraints, read_only=not spec.runtime
    )
    if spec.value_range is not None:
        item = spec.default[0] if isinstance(spec.default, list) else spec.default
        low, high = spec.value_range
        if isinstance(item, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    return desc


def declare_parameters(node: Any) -> NodeSettings:
    """Declare every parameter on ``node`` (overrides from --ros-args apply) and return the checked settings.

    Raises ``ParameterError`` naming every bad value (wrong type, out of range, unknown choice).
    """
    from rclpy.exceptions import ParameterException

    values: Dict[str, Any] = {}
    problems: List[str] = []
    for spec in PARAMETERS:
        try:
            parameter = node.declare_parameter(spec.name, spec.default, descriptor(spec))
            values[spec.name] = parameter.value
        except (ParameterException, TypeError, ValueError) as exc:
            # rclpy refuses out-of-range or wrongly typed overrides here; say which parameter and why.
            problems.append(f"{spec.name}: {str(exc).strip().splitlines()[0]}")
    problems += [f"{name}: {why}" for name, why in ((n, problem(n, v)) for n, v in values.items()) if why]
    if problems:
        raise ParameterError("invalid parameter(s): " + "; ".join(problems))
    return NodeSettings.from_values(values)
