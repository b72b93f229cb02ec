"""``cityscapes-seg-bag from-cityscapes``: a Cityscapes split (or a folder of images) as a rosbag2 bag.

Camera frames go out as ``sensor_msgs/Image`` bgr8 (or ``CompressedImage`` png/jpeg) with a
``CameraInfo`` beside each; the ground truth as mono8 label ids and mono16 instance ids, all four with
the same header stamp. Frames are ordered by city, then sequence and frame number, one every
``1 / rate`` seconds. The bag's custom metadata maps each stamp to its source file.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..evaluation.dataset import find_images
from ..image_io import IMAGE_EXTENSIONS, read_bgr
from ..ros_contract.image_codec import image_fields
from ..ros_contract.topics import CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, compressed_topic
from .bagio import (
    DEFAULT_CAMERA_INFO_TOPIC,
    DEFAULT_GT_INSTANCE_TOPIC,
    DEFAULT_GT_LABEL_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    FRAMES_METADATA_KEY,
    BagError,
    typestore,
)
from .writing import new_writer, staged_bag

log = logging.getLogger(__name__)

COMPRESSIONS = ("png", "jpeg")
DEFAULT_START_SEC = 1_600_000_000  # 2020-09-13: fixed, so the same data always gives the same stamps
MAX_STAMP_NS = (2**31 - 1) * 1_000_000_000 + 999_999_999  # builtin_interfaces/Time: sec is an int32


@dataclass(frozen=True)
class SourceFrame:
    image: Path
    name: str  # shown in messages and stored in the bag's metadata
    label_ids: Optional[Path] = None
    instance_ids: Optional[Path] = None
    camera: Optional[Path] = None  # Cityscapes camera/<split>/<city>/<base>_camera.json


def cityscapes_frames(root: Path, split: str) -> Tuple[List[SourceFrame], List[str]]:
    """The split's frames in city, sequence, frame order, with their ground truth; and what is missing."""
    frames, missing_gt = [], []
    for sample in find_images(root, split):
        camera = Path(root) / "camera" / split / sample.relative.parent / f"{sample.key}_camera.json"
        has_labels = sample.gt_label_ids.is_file()
        if not has_labels:
            missing_gt.append(f"{sample.relative.as_posix()}: no ground truth {sample.gt_label_ids}")
        frames.append(
            SourceFrame(
                sample.image,
                sample.relative.as_posix(),
                sample.gt_label_ids if has_labels else None,
                sample.gt_instance_ids if sample.gt_instance_ids.is_file() else None,
                camera if camera.is_file() else None,
            )
        )
    return frames, missing_gt


def folder_frames(images: Path) -> List[SourceFrame]:
    """Every image below a folder (recursively, in path order), without ground truth."""
    folder = Path(images)
    if not folder.is_dir():
        raise BagError(f"{folder}: no such folder")
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
        raise BagError(f"{folder}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return [SourceFrame(p, str(p.relative_to(folder))) for p in found]


@dataclass
class ConvertOptions:
    out: Path
    storage: str = "mcap"
    rate: float = 1.0  # frames per second of bag time
    compressed: Optional[str] = None  # None (raw bgr8), "png" or "jpeg"
    jpeg_quality: int = 95
    image_topic: str = DEFAULT_IMAGE_TOPIC  # "/compressed" is appended for compressed images
    camera_info_topic: str = DEFAULT_CAMERA_INFO_TOPIC
    label_topic: str = DEFAULT_GT_LABEL_TOPIC
    instance_topic: str = DEFAULT_GT_INSTANCE_TOPIC
    frame_id: str = "cam_front"
    start_sec: float = DEFAULT_START_SEC
    overwrite: bool = False


@dataclass
class ConvertResult:
    written: int = 0
    with_ground_truth: int = 0
    skipped: List[str] = field(default_factory=list)  # source problems: the frame is not in the bag
    warnings: List[str] = field(default_factory=list)  # the frame is in the bag, without something


class MessageFactory:
    """Serialized sensor_msgs messages stamped alike, built with the rosbags typestore."""

    def __init__(self, frame_id: str) -> None:
        self.store = typestore()
        self.types = self.store.types
        self.frame_id = frame_id

    def header(self, stamp_ns: int):
        Time = self.types["builtin_interfaces/msg/Time"]
        Header = self.types["std_msgs/msg/Header"]
        return Header(
            stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=self.frame_id
        )

    def image(self, stamp_ns: int, array: np.ndarray, encoding: str) -> bytes:
        msg = self.types[IMAGE_TYPE](header=self.header(stamp_ns), **image_fields(array, encoding))
        return bytes(self.store.serialize_cdr(msg, IMAGE_TYPE))

    def compressed_image(self, stamp_ns: int, encoded: bytes, fmt: str) -> bytes:
        msg = self.types[COMPRESSED_IMAGE_TYPE](
            header=self.header(stamp_ns),
            format=f"bgr8; {fmt} compressed bgr8",
            data=np.frombuffer(encoded, dtype=np.uint8),
        )
        return bytes(self.store.serialize_cdr(msg, COMPRESSED_IMAGE_TYPE))

    def camera_info(self, stamp_ns: int, width: int, height: int, intrinsics: Optional[Dict[str, float]]) -> bytes:
        """Rectified pinhole intrinsics when known; all-zero K (uncalibrated, by convention) otherwise."""
        k, p = np.zeros(9), np.zeros(12)
        if intrinsics:
            fx, fy, cx, cy = (float(intrinsics[key]) for key in ("fx", "fy", "u0", "v0"))
            k[:] = (fx, 0, cx, 0, fy, cy, 0, 0, 1)
            p[:] = (fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0)
        roi = self.types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        msg = self.types[CAMERA_INFO_TYPE](
            header=self.header(stamp_ns),
            height=height,
            width=width,
            distortion_model="plumb_bob" if intrinsics else "",
            d=np.zeros(5 if intrinsics else 0),
            k=k,
            r=np.eye(3).reshape(-1),
            p=p,
            binning_x=0,
            binning_y=0,
            roi=roi,
        )
        return bytes(self.store.serialize_cdr(msg, CAMERA_INFO_TYPE))


def read_intrinsics(camera_json: Optional[Path]) -> Optional[Dict[str, float]]:
    if camera_json is None:
        return None
    try:
        intrinsic = json.loads(camera_json.read_text(encoding="utf-8"))["intrinsic"]
        return {key: float(intrinsic[key]) for key in ("fx", "fy", "u0", "v0")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable camera intrinsics (%s); camera_info left uncalibrated", camera_json, exc)
        return None


def read_label_png(path: Path, dtype: type, what: str) -> np.ndarray:
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.ndim != 2:
        raise ValueError(f"{path}: not a readable single-channel {what} PNG")
    return image.astype(dtype)


def encode_camera_image(frame: SourceFrame, image: np.ndarray, options: ConvertOptions) -> bytes:
    """The compressed payload: the source PNG's own bytes when they already are one, else re-encoded."""
    if options.compressed == "png":
        if (
            frame.image.suffix.lower() == ".png"
            and cv2.imread(str(frame.image), cv2.IMREAD_UNCHANGED).shape == image.shape
        ):
            return frame.image.read_bytes()
        ok, encoded = cv2.imencode(".png", image)
    else:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
    if not ok:
        raise ValueError(f"{frame.image}: cannot encode as {options.compressed}")
    return encoded.tobytes()


def frame_timing(options: ConvertOptions, frame_count: int) -> Tuple[int, int]:
    """(first stamp, period) in ns; a BagError for a rate or start that cannot give every frame its own valid stamp."""
    rate, start_sec = options.rate, options.start_sec
    if not rate > 0:  # also NaN
        raise BagError(f"--rate must be a positive number of frames per second, got {rate}")
    if not (math.isfinite(start_sec) and 0 <= start_sec * 1e9 <= MAX_STAMP_NS):
        raise BagError(
            f"--start-time must be seconds since the epoch between 0 and {MAX_STAMP_NS // 10**9}, got {start_sec}"
        )
    period = 1e9 / rate
    if round(period) < 1:
        raise BagError(
            f"--rate {rate} gives several frames one stamp (1 ns apart at the finest): "
            "at most 1e9 frames per second, finite"
        )
    start_ns = round(start_sec * 1e9)
    if period > MAX_STAMP_NS or start_ns + period * max(frame_count - 1, 0) > MAX_STAMP_NS:
        raise BagError(
            f"--rate {rate}: the last of {frame_count} frames would be stamped after "
            f"{MAX_STAMP_NS // 10**9} s since the epoch (2038), beyond a ROS time; use a higher --rate"
        )
    return start_ns, round(period)


def check_options(options: ConvertOptions, frame_count: int) -> Tuple[int, int]:
    """Everything about the options that can be refused before anything is written; returns ``frame_timing``."""
    if options.compressed not in (None,) + COMPRESSIONS:
        raise BagError(f"unknown compression {options.compressed!r}; expected one of {', '.join(COMPRESSIONS)}")
    if not 0 <= options.jpeg_quality <= 100:
        raise BagError(f"--jpeg-quality must be 0..100, got {options.jpeg_quality}")
    topics = [
        compressed_topic(options.image_topic) if options.compressed else options.image_topic,
        options.camera_info_topic,
        options.label_topic,
        options.instance_topic,
    ]
    if len(set(topics)) != len(topics):
        raise BagError(f"the image, camera_info, label and instance topics must differ, got {', '.join(topics)}")
    return frame_timing(options, frame_count)


def write_bag(frames: List[SourceFrame], options: ConvertOptions) -> ConvertResult:
    """Write the frames into a new bag at ``options.out``, which appears only once the bag is complete.

    Arguments are checked before anything is created; an error or an interruption leaves nothing behind (and
    an existing bag that ``overwrite`` would replace untouched). Frames whose files cannot be read are skipped
    and listed in the result.
    """
    start_ns, period_ns = check_options(options, len(frames))
    factory = MessageFactory(options.frame_id)
    result, names = ConvertResult(), {}
    with staged_bag(Path(options.out), options.overwrite) as path, new_writer(path, options.storage) as writer:
        image_conn = (
            writer.add_connection(compressed_topic(options.image_topic), COMPRESSED_IMAGE_TYPE, typestore=factory.store)
            if options.compressed
            else writer.add_connection(options.image_topic, IMAGE_TYPE, typestore=factory.store)
        )
        info_conn = writer.add_connection(options.camera_info_topic, CAMERA_INFO_TYPE, typestore=factory.store)
        label_conn = instance_conn = None
        if any(f.label_ids for f in frames):
            label_conn = writer.add_connection(options.label_topic, IMAGE_TYPE, typestore=factory.store)
        if any(f.instance_ids for f in frames):
            instance_conn = writer.add_connection(options.instance_topic, IMAGE_TYPE, typestore=factory.store)
        for frame in tqdm(frames, desc="writing bag", unit="frame"):
            stamp = start_ns + result.written * period_ns
            try:
                messages = frame_messages(
                    frame, stamp, factory, options, (image_conn, info_conn, label_conn, instance_conn), result
                )
            except (ValueError, OSError) as exc:
                result.skipped.append(f"{frame.name}: {exc}")
                tqdm.write(f"skipped {frame.name}: {exc}")
                continue
            for connection, data in messages:
                writer.write(connection, stamp, data)
            names[str(stamp)] = frame.name
            result.written += 1
        writer.set_custom_data(FRAMES_METADATA_KEY, json.dumps(names))
    return result


def frame_messages(
    frame: SourceFrame, stamp: int, factory: MessageFactory, options: ConvertOptions, connections, result: ConvertResult
) -> list:
    """(connection, CDR bytes) of one frame: camera_info, the image, its ground truth."""
    image_conn, info_conn, label_conn, instance_conn = connections
    image = read_bgr(frame.image)
    height, width = image.shape[:2]
    messages = [(info_conn, factory.camera_info(stamp, width, height, read_intrinsics(frame.camera)))]
    if options.compressed:
        encoded = encode_camera_image(frame, image, options)
        messages.append((image_conn, factory.compressed_image(stamp, encoded, options.compressed)))
    else:
        messages.append((image_conn, factory.image(stamp, image, "bgr8")))
    return messages + ground_truth_messages(frame, image.shape[:2], stamp, factory, label_conn, instance_conn, result)


def ground_truth_messages(frame, image_size, stamp, factory, label_conn, instance_conn, result) -> list:
    """The frame's label (and instance) messages; GT of the wrong size is left out with a warning."""
    messages = []
    for path, connection, dtype, encoding, what in (
        (frame.label_ids, label_conn, np.uint8, "mono8", "label-id"),
        (frame.instance_ids, instance_conn, np.uint16, "mono16", "instance-id"),
    ):
        if path is None:
            continue
        array = read_label_png(path, dtype, what)
        if array.shape != tuple(image_size):
            result.warnings.append(
                f"{frame.name}: {what} image {array.shape} differs from the image {tuple(image_size)}; left out"
            )
            continue
        messages.append((connection, factory.image(stamp, array, encoding)))
        if what == "label-id":
            result.with_ground_truth += 1
    return messages
