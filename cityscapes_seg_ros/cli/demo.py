"""``cityscapes-seg demo``: the real node segmenting a camera stream, in one command.

Starts ``python -m cityscapes_seg_ros.node`` (the package's parameter file, the model options given here),
publishes the bundled street frames (or ``--images DIR``) one at a time as a raw, reliable camera, or listens
to a live ``--camera TOPIC``, collects the labels, colour, overlay and statistics of every frame, and writes
``<out>/overlay/<frame>.png``, ``<out>/contact_sheet.png``, ``<out>/class_shares.csv`` and
``<out>/summary.json`` (frame rate, latency, the class shares), printing the table and the figures. The node
is stopped on every way out (an error, Ctrl-C, SIGTERM); its log is ``<out>/node.log``. A previous run's
outputs in ``<out>`` are removed first (other files are left alone), so none is mistaken for this run's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlparse

import numpy as np

from ..harness.ros import stamp_to_ns
from ..image_io import IMAGE_EXTENSIONS, read_bgr, write_atomic, write_png
from ..segmenter import (
    HUB_CHECKPOINT,
    NO_CHECKPOINT,
    ModelOptions,
    add_model_arguments,
    cached_checkpoint,
    download_command,
    fetch_hint,
    given_options,
    hub_offline_env,
    is_config_file,
    resolve_device,
)
from .common import positive_int
from .demo_sheet import (
    DemoFrame,
    class_shares,
    contact_sheet,
    format_shares,
    format_timing,
    legend_entries,
    shares_csv,
    timing_summary,
)

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEMO_FRAMES = PACKAGE_DIR / "data" / "demo"
PARAMS_FILE_NAME = "cityscapes_seg.yaml"
DEMO_CAMERA = "/cityscapes_seg_demo/camera/image_raw"
OUTPUTS = ("labels", "color", "overlay", "statistics")
PROGRESS_EVERY_SEC = 10.0
CAMERA_FRAMES = 8
# On a CPU the demo's defaults: the bundled frames' own size (no upscaling to 2048x1024) and a frame count that
# T segments, with the node's start, in about a minute on a 2-core machine (docs/benchmarks.md).
CPU_IMG_SCALE = (512, 256)
CPU_FRAMES = 6
GRAPH_SETTLE_SEC = 1.0


def add_demo_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="start the node, segment a short street sequence (or your frames, or a live camera), show the result",
        description=__doc__.split("\n\n")[1],
    )
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default ./demo_out)")
    source = demo.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, metavar="DIR", help="your own frames instead of the bundled ones")
    source.add_argument("--camera", metavar="TOPIC", help="segment this live sensor_msgs/Image topic instead")
    demo.add_argument(
        "--frames",
        type=positive_int,
        default=None,
        help=f"with --camera: stop after N frames ({CAMERA_FRAMES}); with frames from a folder: the "
        f"first N (on a CPU by default {CPU_FRAMES}, to finish in about a minute)",
    )
    demo.add_argument(
        "--require-weights",
        action="store_true",
        help="exit (status 2) when the released weights cannot be had (no hub, not cached) instead "
        "of running the node with random weights",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the node to start (model load) and for each frame (600)",
    )
    add_model_arguments(demo)


# ------------------------------------------------------------------------------------------- the weights


class WeightsUnavailable(RuntimeError):
    """The hub's weights are neither cached nor downloadable (offline, no network); the message says what to do."""

    def __init__(self, problem: str, hint: str, fetch: str) -> None:
        super().__init__(f"{problem}; {hint}")
        self.problem, self.fetch = problem, fetch

    def fallback_note(self) -> str:
        """The one line that says why the demo runs with random weights, and how to get the real ones."""
        return (
            f"{self.problem}: the demo runs the whole node with RANDOM WEIGHTS (every part works, the masks are "
            f"noise); `{self.fetch}` fetches them once; --require-weights exits instead"
        )


def ensure_weights(options: ModelOptions) -> ModelOptions:
    """The options with a hub checkpoint resolved to the cached file (downloaded first when online).

    Before any node starts: no weights and no way to get them is ``WeightsUnavailable``, one line saying what to do.
    """
    checkpoint = options.checkpoint.strip()
    if options.random_weights or not (checkpoint == HUB_CHECKPOINT or checkpoint.startswith("hf://")):
        if not options.random_weights and not Path(checkpoint).expanduser().is_file():
            raise ValueError(f"checkpoint {checkpoint} does not exist or is not a file")
        return options
    if is_config_file(options.model) and checkpoint == HUB_CHECKPOINT:
        raise ValueError(
            f"model config {options.model} has no released checkpoint on the hub: pass --checkpoint "
            "FILE, or --checkpoint none to run the pipeline with random weights"
        )
    from ..segmenter import CheckpointError, download_from_hub, get_model_config, parse_hub_source

    default = None if is_config_file(options.model) else get_model_config(options.model).pretrained
    location, parsed_revision = parse_hub_source(checkpoint, default)
    revision = options.revision or parsed_revision
    hint = fetch_hint(location.repo_id, location.filename, location.url)
    fetch = download_command(location.repo_id, location.filename)
    what = f"the weights of {options.model_name} ({location.repo_id}/{location.filename})"
    cached = cached_checkpoint(location.repo_id, location.filename, revision, options.cache_dir)
    if cached is not None:
        log.info("%s: %s", what, cached)
        return replace(options, checkpoint=str(cached))
    offline = options.hub_offline or hub_offline_env()
    unreachable = None if offline else hub_unreachable()
    if offline or unreachable:
        why = "offline mode" if offline else f"the hub is unreachable: {unreachable}"
        raise WeightsUnavailable(f"{what} are not in the Hugging Face cache ({why})", hint, fetch)
    log.info("downloading %s (once, into the Hugging Face cache) ...", what)
    try:
        path = download_from_hub(location, revision, options.cache_dir, offline=False)
    except CheckpointError as exc:
        raise WeightsUnavailable(f"{what} could not be downloaded ({str(exc).splitlines()[0]})", hint, fetch) from None
    return replace(options, checkpoint=str(path))


def hub_unreachable(timeout_sec: float = 3.0) -> Optional[str]:
    """None when the hub's host answers a TCP connection (or a proxy is configured), else why not."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_sec).close()
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    return None


# -------------------------------------------------------------------------------------------- the frames


def demo_frames(images: Optional[Path]) -> List[Tuple[str, np.ndarray]]:
    """(name, BGR image) of the bundled frames or of the images in ``images`` (sorted by name)."""
    folder = images if images is not None else DEMO_FRAMES
    if not folder.is_dir():
        raise ValueError(f"--images {folder}: no such folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {folder}")
    frames = []
    for path in paths:
        try:
            frames.append((path.stem, read_bgr(path)))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return frames


def params_file(package_dir: Path = PACKAGE_DIR) -> Optional[Path]:
    """The package's parameter file: ``config/`` beside the package in a source checkout (editable install), else
    ``<prefix>/share/cityscapes_seg_ros/config/`` of the install that holds the package (``pip install .``, ``--user``,
    ``--prefix``, colcon: the package lies in ``<prefix>/lib/pythonX.Y/site-packages``) or of this interpreter."""
    share = Path("share") / "cityscapes_seg_ros" / "config"
    folders = [package_dir.parent / "config", *(ancestor / share for ancestor in package_dir.parents)]
    folders.append(Path(sys.prefix) / share)
    for folder in folders:
        if (folder / PARAMS_FILE_NAME).is_file():
            return folder / PARAMS_FILE_NAME
    return None


def node_command(options: ModelOptions, given: List[str], camera: str, input_reliability: str) -> List[str]:
    from ..harness.node_process import ros_node_command

    found = params_file()
    if found is None:
        log.info("the package's %s was not found; the node starts with its built-in defaults", PARAMS_FILE_NAME)
    parameters = [
        f"image_topics:=['{camera}']",
        f"outputs:=[{', '.join(OUTPUTS)}]",
        f"input_reliability:={input_reliability}",
        "skip_unsubscribed:=false",
    ]
    parameters += options.node_parameters(sorted(set(given) | {"checkpoint"}))
    return ros_node_command("cityscapes_seg_ros.node", found, parameters)


# ------------------------------------------------------------------------------------------ the session


@dataclass
class Received:
    """Everything that arrived for one frame (by header stamp)."""

    sent_ns: Optional[int] = None  # when the input went out (or, for --camera, arrived here)
    input_bgr: Optional[np.ndarray] = None
    outputs: Dict[str, object] = field(default_factory=dict)
    done_ns: Optional[int] = None  # when the last of the outputs arrived

    def complete(self) -> bool:
        return self.done_ns is not None and self.input_bgr is not None


class DemoSession:
    """The demo's own ROS node: the output subscriptions, the camera (publisher or subscription)."""

    def __init__(self, node, camera: str, publish: bool) -> None:
        from sensor_msgs.msg import Image

        from cityscapes_seg_ros.msg import ClassStatistics

        from ..harness.ros import reliable_qos
        from ..ros_contract.topics import output_topic

        self.node, self.camera = node, camera
        self.frames: Dict[int, Received] = {}
        self.lock = threading.Lock()
        self.subscriptions = [
            node.create_subscription(
                ClassStatistics if kind == "statistics" else Image,
                output_topic(camera, kind),
                lambda msg, kind=kind: self.on_output(kind, msg),
                reliable_qos(10),
            )
            for kind in OUTPUTS
        ]
        self.publisher = node.create_publisher(Image, camera, reliable_qos(10)) if publish else None
        if not publish:
            from rclpy.qos import qos_profile_sensor_data  # best effort: matches reliable and best-effort cameras

            node.create_subscription(Image, camera, self.on_camera, qos_profile_sensor_data)

    def on_camera(self, msg) -> None:
        from ..ros_contract.image_codec import image_msg_to_bgr

        received = time.monotonic_ns()
        try:
            image = image_msg_to_bgr(msg).copy()
        except ValueError as exc:
            log.warning("camera frame not shown: %s", exc)
            return
        with self.lock:
            frame = self.frames.setdefault(stamp_to_ns(msg.header.stamp), Received())
            frame.sent_ns, frame.input_bgr = received, image

    def on_output(self, kind: str, msg) -> None:
        received = time.monotonic_ns()
        with self.lock:
            frame = self.frames.setdefault(stamp_to_ns(msg.header.stamp), Received())
            frame.outputs[kind] = msg
            if len(frame.outputs) == len(OUTPUTS):
                frame.done_ns = received

    def publish(self, image: np.ndarray, index: int) -> int:
        from ..ros_contract.image_codec import to_image_msg

        msg = to_image_msg(image, "bgr8")
        msg.header.frame_id = "cityscapes_seg_demo_camera"
        msg.header.stamp.sec = index + 1
        stamp = stamp_to_ns(msg.header.stamp)
        with self.lock:
            self.frames[stamp] = Received(sent_ns=time.monotonic_ns(), input_bgr=image)
        self.publisher.publish(msg)
        return stamp

    def ready(self) -> bool:
        connected = all(self.matched_publishers(s) > 0 for s in self.subscriptions)
        return connected and (self.publisher is None or self.publisher.get_subscription_count() > 0)

    def matched_publishers(self, subscription) -> int:
        """Publishers matched to ``subscription``; Humble's Subscription cannot tell, the graph can (a little
        earlier than the match: ``GRAPH_SETTLE_SEC`` more are waited then)."""
        if hasattr(subscription, "get_publisher_count"):
            return subscription.get_publisher_count()
        return self.node.count_publishers(subscription.topic_name)

    def completed(self) -> List[int]:
        with self.lock:
            return sorted(stamp for stamp, frame in self.frames.items() if frame.complete())


def device_label(device: str) -> str:
    """The device the node runs on, as it resolves ``device`` on this machine ("auto" -> cuda or cpu)."""
    try:
        return str(resolve_device(device))
    except RuntimeError:  # the node reports it and exits; the label stays what was asked for
        return device


def wait_with_progress(condition, process, timeout_sec: float, what: str) -> None:
    """Until ``condition()``; the node dying or the timeout is an error; a log line every 10 s meanwhile."""
    started = last_note = time.monotonic()
    while not condition():
        code = process.process.poll()
        if code is not None:
            raise RuntimeError(
                f"the node exited with status {code} while waiting for {what}: "
                f"{node_failure(process.log_tail(40))} (its log: {process.log_path})"
            )
        now = time.monotonic()
        if now - started > timeout_sec:
            raise RuntimeError(
                f"timed out after {timeout_sec:.0f} s waiting for {what}; the node's log "
                f"{process.log_path} ends with:\n{process.log_tail()}"
            )
        if now - last_note >= PROGRESS_EVERY_SEC:
            last_note = now
            log.info("still waiting for %s (%.0f s; node log: %s)", what, now - started, process.log_path)
        time.sleep(0.05)


def node_failure(log_tail: str) -> str:
    """The node's own one-line reason (its FATAL "cannot start: ..." line), else its last log line."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if "cannot start:" in line:
            return line.split("cannot start:", 1)[1].strip()
    return lines[-1] if lines else "no output"


def run_session(
    options: ModelOptions, given: List[str], args: argparse.Namespace, frames: List[Tuple[str, np.ndarray]]
) -> List[Tuple[str, Received]]:
    """Start the node, feed it (or let the camera feed it), collect every frame; the node is always stopped."""
    from ..harness.interrupts import interrupts_deferred, terminate_as_interrupt
    from ..harness.node_process import NodeProcess
    from ..harness.ros import publisher_is_reliable, ros_node, wait_until

    camera = args.camera or DEMO_CAMERA
    process = None
    with terminate_as_interrupt(), ros_node("cityscapes_seg_demo", spin=True) as (node, _):
        session = DemoSession(node, camera, publish=args.camera is None)
        try:
            reliability = "reliable"
            if args.camera:
                log.info("waiting for a publisher on %s ...", camera)
                if not wait_until(lambda: node.count_publishers(camera) > 0, args.timeout, poll_sec=0.2):
                    raise RuntimeError(f"no publisher on {camera} within {args.timeout:.0f} s")
                reliability = "reliable" if publisher_is_reliable(node, camera) else "best_effort"
            with interrupts_deferred():  # bound to ``process`` before a Ctrl-C can land: then it is stopped
                process = NodeProcess(node_command(options, given, camera, reliability), args.out / "node.log")
            log.info("waiting for the node to load %s on %s ...", options.model_name, device_label(options.device))
            wait_with_progress(session.ready, process, args.timeout, "the node to load the model and subscribe")
            if not hasattr(session.subscriptions[0], "get_publisher_count"):
                time.sleep(GRAPH_SETTLE_SEC)  # Humble: seen in the graph, the match follows shortly
            if args.camera:
                count = args.frames or CAMERA_FRAMES
                log.info("segmenting %d frames of %s", count, camera)
                wait_with_progress(
                    lambda: len(session.completed()) >= count,
                    process,
                    args.timeout,
                    f"{count} segmented frames of {camera}",
                )
                stamps = session.completed()[:count]
                names = [f"frame_{i:03d}" for i in range(len(stamps))]
            else:
                stamps, names = [], []
                for index, (name, image) in enumerate(frames):  # one at a time: none is dropped as stale
                    stamp = session.publish(image, index)
                    wait_with_progress(
                        lambda stamp=stamp: stamp in session.completed(),
                        process,
                        args.timeout,
                        f"the outputs of frame {name}",
                    )
                    log.info("frame %d/%d (%s) segmented", index + 1, len(frames), name)
                    stamps.append(stamp)
                    names.append(name)
        finally:
            if process is not None:
                process.stop()
        with session.lock:
            return [(name, session.frames[stamp]) for name, stamp in zip(names, stamps)]


# ------------------------------------------------------------------------------------------ the results


def write_results(
    options: ModelOptions,
    collected: List[Tuple[str, Received]],
    out: Path,
    lockstep: bool,
    weights_note: Optional[str] = None,
) -> Dict[str, object]:
    """The contact sheet, overlays, class-share table and summary; ``weights_note``: why the weights are random."""
    from ..ros_contract.image_codec import decode_image

    demo_frames_: List[DemoFrame] = []
    counts = np.zeros(19, np.int64)
    ignored = 0
    latencies_ms, done_sec, inference_ms = [], [], []
    for name, frame in collected:
        color, overlay_bgr = (decode_image(frame.outputs[kind]) for kind in ("color", "overlay"))  # BGR order
        demo_frames_.append(DemoFrame(name, frame.input_bgr, color, overlay_bgr))
        write_png(out / "overlay" / f"{name}.png", overlay_bgr)
        stats = frame.outputs["statistics"]
        for item in stats.classes:
            counts[int(item.train_id)] += int(item.pixel_count)
        ignored += int(stats.ignored_pixel_count)
        inference_ms.append(float(stats.inference_ms))
        latencies_ms.append((frame.done_ns - frame.sent_ns) / 1e6)
        done_sec.append(frame.done_ns / 1e9)
    rows = class_shares(counts.tolist(), ignored)
    timing = timing_summary(latencies_ms, done_sec, inference_ms)
    size = f"inference size {options.img_scale[0]}x{options.img_scale[1]}"
    rate = f" | {timing['fps']:.2f} frames/s" if timing["fps"] else ""
    note = f"device {device_label(options.device)} | {size} | {len(collected)} frames{rate}"
    sheet = contact_sheet(demo_frames_, options.model_name, options.random_weights, note, legend_entries(rows))
    write_png(out / "contact_sheet.png", sheet)
    write_atomic(out / "class_shares.csv", shares_csv(rows).encode())
    summary = {
        "model": options.describe(),
        "random_weights": options.random_weights,
        "random_weights_reason": weights_note or ("--checkpoint none" if options.random_weights else None),
        "device": device_label(options.device),
        "frames": [name for name, _ in collected],
        "timing": timing,
        "timing_mode": "one frame at a time (each sent when the previous one's outputs arrived)"
        if lockstep
        else "live camera (latency from the frame's arrival here)",
        "class_shares": [{"class": n, "pixels": p, "percent": s} for n, p, s in rows],
        "contact_sheet": str(out / "contact_sheet.png"),
    }
    write_atomic(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    print(format_shares(rows))
    print(format_timing(timing, "one frame at a time" if lockstep else "live camera"))
    if options.random_weights:
        why = "the released weights could not be had" if weights_note else "--checkpoint none"
        print(f"RANDOM WEIGHTS ({why}): the pipeline ran, the segmentation is meaningless")
    print(
        f"contact sheet: {out / 'contact_sheet.png'}; overlays: {out / 'overlay'}; table: "
        f"{out / 'class_shares.csv'}; figures: {out / 'summary.json'}"
    )
    return summary


DEMO_OUTPUTS = ("contact_sheet.png", "class_shares.csv", "summary.json", "node.log")


def clear_previous_outputs(out: Path) -> None:
    """Remove what an earlier demo wrote to ``out`` (its files and ``overlay/*.png``), nothing else."""
    for name in DEMO_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    overlays = out / "overlay"
    if overlays.is_dir():
        for overlay in overlays.glob("*.png"):
            overlay.unlink()
        if not any(overlays.iterdir()):
            overlays.rmdir()


def run_demo(args: argparse.Namespace) -> int:
    options = ModelOptions.from_args(args)
    given = given_options(args)
    frames = [] if args.camera else demo_frames(args.images)
    if args.camera:
        from ..node.params import PARAMETERS

        why = next(p for p in PARAMETERS if p.name == "image_topics").problem([args.camera])
        if why:
            raise ValueError(f"--camera {args.camera}: {why}")
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout}")
    weights_note = None
    try:
        options = ensure_weights(options)
    except WeightsUnavailable as exc:
        if args.require_weights:
            raise
        weights_note = exc.fallback_note()
        log.warning("%s", weights_note)
        options = replace(options, checkpoint=NO_CHECKPOINT)
    options, given, frames = fit_to_device(options, given, frames, args)
    from ..harness.ros import require_rclpy

    require_rclpy()
    try:
        import cityscapes_seg_ros.msg  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "the node's messages (cityscapes_seg_ros.msg) are not built: run "
            "`bash scripts/setup.sh --ros` (or scripts/build_msgs.sh)"
        ) from None
    args.out.mkdir(parents=True, exist_ok=True)
    clear_previous_outputs(args.out)
    collected = run_session(options, given, args, frames)
    write_results(options, collected, args.out, lockstep=args.camera is None, weights_note=weights_note)
    return 0


Frames = List[Tuple[str, np.ndarray]]


def fit_to_device(
    options: ModelOptions, given: List[str], frames: Frames, args: argparse.Namespace
) -> Tuple[ModelOptions, List[str], Frames]:
    """The inference size and frames the demo runs: on a CPU, unless given, ``CPU_IMG_SCALE`` and the first
    ``CPU_FRAMES`` frames (a minute rather than ten); says what it chose."""
    if args.frames and not args.camera:
        frames = frames[: args.frames]
    if device_label(options.device) != "cpu":
        return options, given, frames
    chosen = []
    if "img_scale" not in given:
        options, given = replace(options, img_scale=CPU_IMG_SCALE), [*given, "img_scale"]
        chosen.append(f"inference size {CPU_IMG_SCALE[0]}x{CPU_IMG_SCALE[1]} (--img-scale)")
    if not args.camera and not args.frames and len(frames) > CPU_FRAMES:
        chosen.append(f"the first {CPU_FRAMES} of {len(frames)} frames (--frames)")
        frames = frames[:CPU_FRAMES]
    if chosen:
        log.info(
            "on the CPU the demo runs with %s (T: about a minute on two cores; the larger models take longer)",
            " and ".join(chosen),
        )
    return options, given, frames
