"""``cityscapes-seg-bag``: rosbag2 tools for the segmenter, without a ROS install.

cityscapes-seg-bag from-cityscapes --cityscapes-root DIR --split val --out BAG   (or --images DIR)
cityscapes-seg-bag replay BAG [--rate X] [--loop] [--start S] [--topics T ...] [--remap A:=B] [--clock]
cityscapes-seg-bag evaluate BAG [--params-file F] [--record OUT_BAG] [--use-running-node]
cityscapes-seg-bag evaluate BAG --offline --model NAME [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ..bag.bagio import (
    DEFAULT_CAMERA_INFO_TOPIC,
    DEFAULT_GT_INSTANCE_TOPIC,
    DEFAULT_GT_LABEL_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    STORAGES,
)
from ..segmenter import add_model_arguments
from .common import configure_logging, run_command, survives_closed_stdout

log = logging.getLogger(__name__)


def add_convert_parser(sub) -> None:
    convert = sub.add_parser(
        "from-cityscapes",
        help="write a Cityscapes split (or a folder of images) into a bag",
        description="Camera images as sensor_msgs/Image bgr8 (or CompressedImage) with camera_info, and the "
        "ground truth as mono8 label ids (mono16 instance ids) with the same stamps, one frame every 1/rate s, "
        "per city in sequence order.",
    )
    source = convert.add_mutually_exclusive_group(required=True)
    source.add_argument("--cityscapes-root", type=Path, metavar="DIR", help="folder holding leftImg8bit/ and gtFine/")
    source.add_argument(
        "--images", type=Path, metavar="DIR", help="any folder of images (searched recursively), no ground truth"
    )
    convert.add_argument("--split", default="val", help="Cityscapes split (default val)")
    convert.add_argument("--out", type=Path, required=True, metavar="BAG", help="bag folder to create")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    convert.add_argument("--storage", choices=STORAGES, default="mcap", help="storage plugin (default mcap)")
    convert.add_argument(
        "--rate", type=float, default=1.0, metavar="HZ", help="frames per second of bag time (default 1)"
    )
    convert.add_argument(
        "--compressed",
        nargs="?",
        const="png",
        choices=("png", "jpeg"),
        default=None,
        help="camera images as CompressedImage on <image-topic>/compressed (png unless jpeg is given)",
    )
    convert.add_argument("--jpeg-quality", type=int, default=95)
    convert.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC)
    convert.add_argument("--camera-info-topic", default=DEFAULT_CAMERA_INFO_TOPIC)
    convert.add_argument("--label-topic", default=DEFAULT_GT_LABEL_TOPIC)
    convert.add_argument("--instance-topic", default=DEFAULT_GT_INSTANCE_TOPIC)
    convert.add_argument("--frame-id", default="cam_front", help="header frame_id of every message")
    convert.add_argument(
        "--start-time",
        type=float,
        default=None,
        metavar="SEC",
        help="stamp of the first frame in seconds since the epoch (default 1600000000)",
    )


def add_replay_parser(sub) -> None:
    replay = sub.add_parser("replay", help="publish a bag into the ROS graph, like `ros2 bag play`")
    replay.add_argument("bag", type=Path)
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    replay.add_argument("--loop", action="store_true", help="play again from the start until interrupted")
    replay.add_argument("--start", type=float, default=0.0, metavar="S", help="skip the first S seconds of the bag")
    replay.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default all)")
    replay.add_argument(
        "--remap", action="append", default=[], metavar="FROM:=TO", help="publish a topic under another name"
    )
    replay.add_argument(
        "--clock",
        nargs="?",
        type=float,
        const=40.0,
        default=None,
        metavar="HZ",
        help="publish /clock from bag time (default 40 Hz when given) for use_sim_time",
    )
    replay.add_argument(
        "--qos",
        choices=("reliable", "best-effort"),
        default="reliable",
        help="publisher reliability (default reliable: best-effort loses large images between processes)",
    )
    replay.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for a subscriber on every topic before playing",
    )


def add_evaluate_parser(sub) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="score the node (or the model, --offline) on a bag with ground truth",
        description="Live: starts the node (or uses a running one, --use-running-node), replays the bag, "
        "matches the node's segmentation/labels to the ground truth by header stamp, and reports scores, "
        "end-to-end latency, throughput and dropped frames. Offline: runs the model on the bag directly.",
    )
    evaluate.add_argument("bag", type=Path)
    evaluate.add_argument("--out", type=Path, default=None, help="report folder (default <bag>_eval[_offline])")
    evaluate.add_argument(
        "--image-topic",
        default=None,
        help=f"camera topic in the bag (default {DEFAULT_IMAGE_TOPIC} or its /compressed)",
    )
    evaluate.add_argument("--label-topic", default=DEFAULT_GT_LABEL_TOPIC)
    evaluate.add_argument("--instance-topic", default=DEFAULT_GT_INSTANCE_TOPIC)
    evaluate.add_argument(
        "--save-predictions",
        type=Path,
        default=None,
        metavar="DIR",
        help="write each predicted train-id mask as DIR/<stamp_ns>.png",
    )
    evaluate.add_argument("--offline", action="store_true", help="run the model on the bag directly, no ROS")
    evaluate.add_argument("--params-file", type=Path, default=None, help="the node's ROS parameter file (live)")
    evaluate.add_argument(
        "--node-arg",
        dest="node_args",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter (live), e.g. --node-arg precision:=fp16",
    )
    evaluate.add_argument("--use-running-node", action="store_true", help="do not start the node; use the one running")
    evaluate.add_argument(
        "--node-module",
        default=None,
        metavar="MODULE",
        help="start `python -m MODULE` instead of cityscapes_seg_ros.node (same parameters and topics)",
    )
    evaluate.add_argument(
        "--record", type=Path, default=None, metavar="OUT_BAG", help="record the node's outputs into a bag (live)"
    )
    pacing = evaluate.add_mutually_exclusive_group()
    pacing.add_argument("--rate", type=float, default=1.0, help="replay speed factor (live, default 1)")
    pacing.add_argument(
        "--lockstep",
        action="store_true",
        help="publish each frame once the node's labels for the previous one arrived: no frame can be dropped "
        "(live; for scoring, while --rate gives the latency and drops of a node kept busy)",
    )
    evaluate.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for the node to come up")
    evaluate.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="after the replay, seconds to wait for outstanding outputs (live)",
    )
    # Offline: the model to run. Live: the node's parameters of the same names (only those given are passed,
    # so a --params-file keeps the rest).
    add_model_arguments(evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-seg-bag", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_convert_parser(sub)
    add_replay_parser(sub)
    add_evaluate_parser(sub)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    from ..bag.convert import DEFAULT_START_SEC, ConvertOptions, cityscapes_frames, folder_frames, write_bag

    if args.cityscapes_root is not None:
        frames, missing = cityscapes_frames(args.cityscapes_root, args.split)
        for line in missing:
            log.warning(line)
    else:
        frames, missing = folder_frames(args.images), []
    options = ConvertOptions(
        out=args.out,
        storage=args.storage,
        rate=args.rate,
        compressed=args.compressed,
        jpeg_quality=args.jpeg_quality,
        image_topic=args.image_topic,
        camera_info_topic=args.camera_info_topic,
        label_topic=args.label_topic,
        instance_topic=args.instance_topic,
        frame_id=args.frame_id,
        start_sec=DEFAULT_START_SEC if args.start_time is None else args.start_time,
        overwrite=args.overwrite,
    )
    result = write_bag(frames, options)
    for line in result.warnings:
        log.warning(line)
    for line in result.skipped:
        log.error("skipped %s", line)
    log.info(
        "%s: %d frames written (%d with ground truth), %d skipped, %d without ground truth",
        args.out,
        result.written,
        result.with_ground_truth,
        len(result.skipped),
        len(missing),
    )
    return 1 if result.skipped or not result.written else 0


def run_replay(args: argparse.Namespace) -> int:
    from ..bag.replay import ReplayOptions, parse_remaps, replay_bag

    options = ReplayOptions(
        rate=args.rate,
        loop=args.loop,
        start_sec=args.start,
        topics=args.topics,
        remaps=parse_remaps(args.remap),
        clock_hz=args.clock,
        reliable=args.qos == "reliable",
        wait_for_subscribers_sec=args.wait_for_subscribers,
    )
    stats = replay_bag(args.bag, options)
    log.info("published %d messages in %.1f s", stats.published, stats.wall_sec)
    return 1 if stats.problem else 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..bag.evaluate import evaluate_bag
    from ..bag.evaluate_options import EvaluateOptions

    options = EvaluateOptions.from_args(args)
    report = evaluate_bag(args.bag, options)
    return 1 if report.problems else 0


@survives_closed_stdout
def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    runners = {"from-cityscapes": run_convert, "replay": run_replay, "evaluate": run_evaluate}
    try:
        import rosbags  # noqa: F401
    except ImportError:
        print(
            "cityscapes-seg-bag: error: the bag tools need rosbags: pip install 'cityscapes_seg_ros[bag]'",
            file=sys.stderr,
        )
        return 2
    from ..harness.interrupts import terminate_as_interrupt

    with terminate_as_interrupt():  # a SIGTERM cleans up as Ctrl-C does: no half-written bag, no node left running
        return run_command("cityscapes-seg-bag", lambda: runners[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
