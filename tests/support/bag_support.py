"""Helpers of the bag tests: synthetic Cityscapes-layout data, a tiny model that predicts many classes."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import List, Tuple

import torch
import yaml

from cityscapes_seg_ros.cli.bag_main import main as bag_main
from support.synthetic_cityscapes import write_split

IMAGE_SIZE = (64, 128)  # (h, w)
TINY_SCALE = "128x64"  # keep the test pipeline at the images' own size


def make_split(root: Path, frames_per_city: int = 2, cities=("aachen", "bochum"), size=IMAGE_SIZE) -> List:
    """leftImg8bit/val and gtFine/val (labels and instances) of random images and plausible GT."""
    return write_split(
        root, root / "unused_predictions", cities=cities, frames_per_city=frames_per_city, size=size, with_images=True
    )


def make_bag(root: Path, out: Path, *extra: str) -> Path:
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(out), *extra]) == 0
    return out


def tiny_model_args(model_files) -> List[str]:
    """``--model``, ``--checkpoint``, ``--device`` and ``--img-scale``: the tiny model on the CPU."""
    config, checkpoint = model_files
    return ["--model", str(config), "--checkpoint", str(checkpoint), "--device", "cpu", "--img-scale", TINY_SCALE]


def offline_args(bag: Path, out: Path, model_files, *extra: str) -> List[str]:
    """`cityscapes-seg-bag evaluate --offline` of ``bag`` with the tiny model on the CPU, into ``out``."""
    return ["evaluate", str(bag), "--offline", *tiny_model_args(model_files), "--out", str(out), *extra]


def tiny_model_files(fixture: dict, folder: Path) -> Tuple[Path, Path]:
    """The tiny official-like config with a 19-class head and a checkpoint of spread-out random weights.

    (With their default initialisation the heads predict one class everywhere, which would make score
    comparisons trivially equal.)
    """
    config = copy.deepcopy(json.loads(json.dumps(fixture["config"])))
    config["decode_head"]["num_classes"] = 19
    config["auxiliary_head"]["num_classes"] = 19
    from cityscapes_seg_ros import build_segmentor

    torch.manual_seed(0)
    model = build_segmentor(config, None, "cpu")
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    config_path, checkpoint_path = folder / "tiny19.yaml", folder / "tiny19.pth"
    config_path.write_text(yaml.safe_dump({"model": config}))
    torch.save({"meta": {}, "state_dict": model.state_dict()}, checkpoint_path)
    return config_path, checkpoint_path


def restamp_bag(source: Path, out: Path, topics=None) -> Path:
    """A copy of ``source`` in which every message on ``topics`` (default: all) carries the first frame's header
    stamp, as a bag written at a rate too high for its stamps would."""
    from rosbags.rosbag2 import Writer

    from cityscapes_seg_ros.bag.bagio import header_stamp_ns, read_messages, summarize, typestore

    summary = summarize(source)
    messages = list(read_messages(source, list(summary.topics)))
    first = header_stamp_ns(messages[0][3])
    sec, nanosec = divmod(first, 10**9)
    store = typestore()
    with Writer(out, version=9) as writer:
        connections = {
            name: writer.add_connection(name, info.msgtype, typestore=store) for name, info in summary.topics.items()
        }
        for topic, _, log_time, data in messages:
            if topics is None or topic in topics:
                assert data[1] == 1, "expected little-endian CDR"
                data = data[:4] + struct.pack("<iI", sec, nanosec) + data[12:]  # CDR little-endian header stamp
            writer.write(connections[topic], log_time, data)
    return out


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))
