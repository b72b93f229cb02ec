"""What ``cityscapes-seg-bag evaluate`` is asked to do, checked before anything starts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import List, Optional

from ..segmenter import ModelOptions, given_options
from .bagio import DEFAULT_GT_INSTANCE_TOPIC, DEFAULT_GT_LABEL_TOPIC, BagError
from .replay import check_number

LIVE_ONLY = {
    "params_file": "--params-file",
    "node_args": "--node-arg",
    "use_running_node": "--use-running-node",
    "node_module": "--node-module",
    "record": "--record",
    "lockstep": "--lockstep",
}


@dataclass
class EvaluateOptions:
    out: Optional[Path] = None
    image_topic: Optional[str] = None  # None: the default camera topic, raw or compressed
    label_topic: str = DEFAULT_GT_LABEL_TOPIC
    instance_topic: str = DEFAULT_GT_INSTANCE_TOPIC
    save_predictions: Optional[Path] = None
    offline: bool = False
    model: ModelOptions = field(default_factory=ModelOptions)
    model_given: List[str] = field(default_factory=list)  # the model options set by the user (live: passed to the node)
    params_file: Optional[Path] = None
    node_args: List[str] = field(default_factory=list)
    use_running_node: bool = False
    node_module: Optional[str] = None  # python -m MODULE; None: cityscapes_seg_ros.node
    record: Optional[Path] = None
    rate: float = 1.0
    lockstep: bool = False  # publish each frame once the previous one's outputs arrived (``rate`` unused)
    ready_timeout: float = 300.0
    drain_timeout: float = 30.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluateOptions:
        names = {f.name for f in fields(cls)} - {"model", "model_given"}
        return cls(
            **{k: v for k, v in vars(args).items() if k in names},
            model=ModelOptions.from_args(args),
            model_given=given_options(args),
        )

    def check(self) -> None:
        """A BagError for what cannot work, before a bag is read, a model loaded or a node started."""
        if self.label_topic == self.instance_topic:
            raise BagError(f"--label-topic and --instance-topic are both {self.label_topic}")
        if self.offline:
            given = [flag for name, flag in LIVE_ONLY.items() if getattr(self, name)]
            if given:
                raise BagError(f"{', '.join(given)}: only for live evaluation, not with --offline")
            return
        check_number("--rate", self.rate, 0)
        check_number("--ready-timeout", self.ready_timeout, 0)
        check_number("--drain-timeout", self.drain_timeout, 0, inclusive=True)
        if self.params_file is not None and not Path(self.params_file).is_file():
            raise BagError(f"--params-file {self.params_file}: no such file")
        if self.record is not None and Path(self.record).exists():
            raise BagError(f"--record {self.record} already exists: choose another bag name")
        for text in self.node_args:
            name, sep, value = text.partition(":=")
            if not sep or not name or not value:
                raise BagError(f"--node-arg expects NAME:=VALUE, got {text!r}")
