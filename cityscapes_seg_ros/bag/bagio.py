"""rosbag2 reading and writing with ``rosbags`` (pure Python, no ROS install): topics, images, stamps.

Everything here works without rclpy. Messages are CDR bytes as rosbag2 stores them; the helpers turn
the image messages into numpy arrays and back.
"""

from __future__ import annotations

import functools
import importlib
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ..ros_contract.image_codec import BadImageError, decode_image, image_msg_to_bgr
from ..ros_contract.topics import CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, IMAGE_TYPES  # noqa: F401 (re-exported)
from .mcap_scan import McapScan, chunk_checksums, mcap_files

log = logging.getLogger(__name__)

DEFAULT_IMAGE_TOPIC = "/cam/front/image_raw"
DEFAULT_CAMERA_INFO_TOPIC = "/cam/front/camera_info"
DEFAULT_GT_LABEL_TOPIC = "/cam/front/gt/label_ids"
DEFAULT_GT_INSTANCE_TOPIC = "/cam/front/gt/instance_ids"
FRAMES_METADATA_KEY = "cityscapes_seg_ros.frames"  # custom_data: JSON {stamp_ns: source file}

STORAGES = ("mcap", "sqlite3")


class BagError(RuntimeError):
    """A bag that cannot be opened, read or written, with the reason in words."""


def typestore():
    """The message definitions of the ROS 2 release the PyPI wheels are built from (kilted)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> the rclpy message class ``sensor_msgs.msg.Image``."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise BagError(f"unsupported message type name {msgtype!r} (expected package/msg/Name)")
    package, _, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        wheel = "ros-" + package.replace("_", "-")
        raise BagError(
            f"message type {msgtype} is not importable in Python; install its package (pip install {wheel})"
        ) from None


def header_stamp_ns(cdr: bytes) -> int:
    """The header stamp of a serialized message whose first field is a std_msgs/Header.

    Reads only the 8 bytes after the 4-byte CDR encapsulation header, so it costs nothing even for a
    6 MB image; works for Image, CompressedImage, CameraInfo and the node's outputs alike.
    """
    if len(cdr) < 12:
        raise BagError(f"message of {len(cdr)} bytes is too short to hold a header stamp")
    order = "<" if cdr[1] & 1 else ">"  # encapsulation kind: odd = little-endian
    sec, nanosec = struct.unpack_from(order + "iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


def parse_storage(text: str):
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[text]
    except KeyError:
        raise BagError(f"unknown storage {text!r}; expected one of {', '.join(STORAGES)}") from None


@dataclass
class TopicInfo:
    name: str
    msgtype: str
    count: int


@dataclass
class BagSummary:
    path: Path
    topics: Dict[str, TopicInfo]
    start_ns: int
    end_ns: int
    custom: Dict[str, str] = field(default_factory=dict)
    damaged: Optional[str] = None  # why the bag could not be opened normally (then it was scanned)
    notes: List[str] = field(default_factory=list)  # what a reader should know: no metadata.yaml, no checksums

    def require(self, topic: str, msgtypes: Sequence[str], what: str) -> TopicInfo:
        """The topic's info, or a BagError naming the topics the bag does hold."""
        info = self.topics.get(topic)
        if info is None:
            held = ", ".join(f"{t.name} ({t.msgtype})" for t in self.topics.values()) or "none"
            raise BagError(f"{self.path}: no {what} topic {topic!r} in the bag; it holds: {held}")
        return self.require_type(topic, msgtypes, what)

    def require_type(self, topic: str, msgtypes: Sequence[str], what: str) -> Optional[TopicInfo]:
        """The topic's info when the bag has it (None otherwise); a BagError when its type is not one of ``msgtypes``."""
        info = self.topics.get(topic)
        if info is not None and info.msgtype not in msgtypes:
            raise BagError(
                f"{self.path}: {what} topic {topic!r} has type {info.msgtype}, expected {' or '.join(msgtypes)}"
            )
        return info


def open_reader(path: Path):
    """An opened ``rosbags.rosbag2.Reader`` of a bag folder or one storage file, or a BagError saying why not."""
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    path = Path(path)
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(
            f"{path}: metadata.yaml is missing: not a rosbag2 folder, or its recording was killed before closing"
        )
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        raise BagError(f"{path}: cannot open bag: {exc}") from None
    return reader


@dataclass
class BagPart:
    """What one read of a bag goes through: the bag (or one of its files) with rosbags, or MCAP files scanned."""

    target: Path
    scan: bool = False  # rosbags could not open it: read the MCAP records sequentially
    why_scanned: str = ""


def bag_parts(path: Path) -> List[BagPart]:
    """The bag folder (metadata.yaml present) or storage file; without metadata.yaml its MCAP files one by one.

    A part rosbags cannot open (an MCAP file that lost its end) is scanned record by record.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag (expected a rosbag2 folder with metadata.yaml, or an .mcap file)")
    if path.is_file() or (path / "metadata.yaml").is_file():
        targets = [path]
    else:
        targets = mcap_files(path)
        if not targets:
            raise BagError(f"{path}: metadata.yaml is missing and there is no .mcap file: not a rosbag2 folder")
        log.info("%s: no metadata.yaml; reading %s directly", path, ", ".join(t.name for t in targets))
    parts = []
    for target in targets:
        try:
            open_reader(target).close()
            parts.append(BagPart(target))
        except BagError as exc:
            files = mcap_files(target)
            if not files:
                raise
            parts += [BagPart(file, scan=True, why_scanned=str(exc)) for file in files]
    return parts


def read_custom_data(path: Path) -> Dict[str, str]:
    """The bag's custom_data (metadata.yaml, rosbag2 version >= 6); empty when there is none."""
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        return {str(k): str(v) for k, v in (info.get("custom_data") or {}).items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


def summarize(path: Path) -> BagSummary:
    """Topics, counts and times; a damaged MCAP file is scanned as far as it goes (``damaged`` says why)."""
    path = Path(path)
    summary = BagSummary(path, {}, 2**63 - 1, 0, read_custom_data(path) if path.is_dir() else {})
    damage, unchecked = [], 0
    for part in bag_parts(path):
        if part.scan:
            scan = McapScan(part.target, skip_corrupt_chunks=True)
            for topic, msgtype, log_time, _ in scan.messages():
                summary.topics.setdefault(topic, TopicInfo(topic, msgtype, 0)).count += 1
                summary.start_ns, summary.end_ns = min(summary.start_ns, log_time), max(summary.end_ns, log_time + 1)
            unchecked += scan.unchecked_chunks
            if scan.reason:
                damage.append(f"{part.why_scanned}; {part.target.name}: {scan.reason}")
            continue
        reader = open_reader(part.target)
        try:
            for name, info in reader.topics.items():
                summary.topics.setdefault(name, TopicInfo(name, info.msgtype, 0)).count += info.msgcount
            if reader.message_count:
                summary.start_ns = min(summary.start_ns, reader.start_time)
                summary.end_ns = max(summary.end_ns, reader.end_time)
        finally:
            reader.close()
        unchecked += sum((chunk_checksums(file) or (0, 0))[1] for file in mcap_files(part.target))
    if damage:
        summary.damaged = "; ".join(damage)
        if not summary.topics:
            raise BagError(f"{summary.damaged}; no complete message could be read from it")
        log.warning("%s; reading the MCAP records sequentially", summary.damaged)
    if unchecked:
        summary.notes.append(f"{unchecked} MCAP chunks carry no checksum: corruption in them cannot be detected")
    summary.start_ns = min(summary.start_ns, summary.end_ns)
    return summary


@dataclass
class ReadProblem:
    """Set when reading stopped early (a truncated or corrupt bag): what was read before is kept."""

    message: Optional[str] = None
    messages_read: int = 0


def read_messages(
    path: Path, topics: Sequence[str], problem: Optional[ReadProblem] = None, start_ns: Optional[int] = None
) -> Iterator[Tuple[str, str, int, bytes]]:
    """(topic, msgtype, bag time ns, CDR bytes) of the given topics in bag-time order (file order when scanned).

    With ``problem``, reading goes past an MCAP chunk that fails its checksum (read record by record from there
    on, the chunk skipped) and stops where the bag breaks off (a truncated file, an MCAP file without its end);
    what went wrong is said once in ``problem`` and what could be read is kept. Without ``problem`` the first
    fault raises BagError.
    """
    wanted, count, reasons = set(topics), 0, []
    for part in bag_parts(path):
        if part.scan:
            scan = McapScan(part.target, skip_corrupt_chunks=problem is not None)
            for topic, msgtype, log_time, data in scan.messages():
                if topic in wanted and (start_ns is None or log_time >= start_ns):
                    count += 1
                    yield topic, msgtype, log_time, data
            reasons += skipped_chunks(part.target, scan)
            if scan.reason:
                reasons.append(
                    f"{path}: bag is truncated or corrupt ({part.why_scanned}; {part.target.name}: "
                    f"{scan.reason}); {count} messages read up to the break"
                )
                report_problem(reasons, problem)
                break
            continue
        reader, yielded, failure = open_reader(part.target), set(), None
        try:
            connections = [c for c in reader.connections if c.topic in wanted]
            try:
                for connection, timestamp, data in reader.messages(connections=connections, start=start_ns):
                    count += 1
                    yielded.add((connection.topic, timestamp))
                    yield connection.topic, connection.msgtype, timestamp, bytes(data)
            except Exception as exc:  # noqa: BLE001 - any storage error means "the bag is damaged here"
                failure = exc
        finally:
            reader.close()
        if failure is None:
            continue
        files = mcap_files(part.target)
        if problem is None or not files or "checksum" not in str(failure).lower():
            why = (
                "a chunk fails its checksum (the data is corrupt)"
                if "checksum" in str(failure).lower()
                else (f"{type(failure).__name__}: {failure}")
            )
            reasons.append(f"{path}: bag is truncated or corrupt after {count} messages: {why}")
            report_problem(reasons, problem)
            break
        before = len(reasons)
        for file in files:  # on past the corrupt chunks, record by record; what rosbags gave is not repeated
            scan = McapScan(file, skip_corrupt_chunks=True)
            for topic, msgtype, log_time, data in scan.messages():
                if topic in wanted and (topic, log_time) not in yielded and (start_ns is None or log_time >= start_ns):
                    count += 1
                    yield topic, msgtype, log_time, data
            reasons += skipped_chunks(file, scan)
            if scan.reason:
                reasons.append(f"{path}: {file.name} is corrupt from {scan.reason}; {count} messages read")
        if len(reasons) == before:
            reasons.append(f"{path}: a chunk fails its checksum ({failure}); read on record by record")
    if problem is not None:
        problem.messages_read = count
    if reasons:
        report_problem(reasons, problem)


def skipped_chunks(file: Path, scan: McapScan) -> List[str]:
    """One line for the chunks a scan skipped (their messages are lost), none when it skipped none."""
    if not scan.skipped:
        return []
    return [
        f"{file}: {len(scan.skipped)} corrupt MCAP chunk(s) skipped, their messages lost, the rest read: "
        + "; ".join(scan.skipped)
    ]


def report_problem(reasons: List[str], problem: Optional[ReadProblem]) -> None:
    """Say what went wrong: in ``problem`` (each reason once; the report states it), else as a BagError."""
    if problem is None:
        raise BagError("; ".join(reasons))
    problem.message = "; ".join(dict.fromkeys(reasons))


def deserialize(store, data: bytes, msgtype: str):
    return store.deserialize_cdr(data, msgtype)


class UniqueStamps:
    """The header stamps seen on one topic; a repeated one is an error, since frames are matched by stamp."""

    def __init__(self, bag: Path, topic: str) -> None:
        self.bag, self.topic, self.seen = bag, topic, set()

    def add(self, stamp_ns: int) -> None:
        if stamp_ns in self.seen:
            raise BagError(
                f"{self.bag}: two messages on {self.topic} carry the header stamp {stamp_ns} ns; frames are "
                "matched to predictions and ground truth by stamp, so stamps must be unique (was the bag "
                "written at a --rate too high for its stamps?)"
            )
        self.seen.add(stamp_ns)


def iter_images(path: Path, topic: str, problem: Optional[ReadProblem] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """(header stamp ns, BGR image) of an Image or CompressedImage topic."""
    for stamp, decode in iter_image_messages(path, topic, problem):
        yield stamp, decode()


def iter_image_messages(
    path: Path, topic: str, problem: Optional[ReadProblem] = None
) -> Iterator[Tuple[int, Callable[[], np.ndarray]]]:
    """(header stamp ns, a function that returns the BGR image): a frame that cannot be decoded raises
    BadImageError (a ValueError) from its function only, so the caller can name it and go on."""
    store = typestore()
    for _, msgtype, _, data in read_messages(path, [topic], problem):
        yield header_stamp_ns(data), functools.partial(decode_bgr, store, data, msgtype)


def decode_bgr(store, data: bytes, msgtype: str) -> np.ndarray:
    try:
        message = deserialize(store, data, msgtype)
    except Exception as exc:  # noqa: BLE001 - malformed CDR raises whatever the deserializer trips over
        raise BadImageError("corrupt", f"cannot deserialize the {msgtype} message ({exc})") from None
    return image_msg_to_bgr(message)


@dataclass
class GroundTruth:
    stamp_ns: int
    label_ids: Optional[np.ndarray]
    instance_ids: Optional[np.ndarray] = None


def iter_ground_truth(
    path: Path, label_topic: str, instance_topic: Optional[str], problem: Optional[ReadProblem] = None
) -> Iterator[GroundTruth]:
    """Ground-truth frames by header stamp: label ids, with instance ids when the bag has them.

    A label and its instance image share a stamp; each frame is yielded once both arrived, or at the
    end with what there is (a frame without labels has ``label_ids=None``). A stamp repeated on either
    topic raises BagError.
    """
    store = typestore()
    topics = [label_topic] + ([instance_topic] if instance_topic else [])
    stamps = {topic: UniqueStamps(path, topic) for topic in topics}
    pending: Dict[int, GroundTruth] = {}
    for topic, msgtype, _, data in read_messages(path, topics, problem):
        stamp = header_stamp_ns(data)
        stamps[topic].add(stamp)
        frame = pending.setdefault(stamp, GroundTruth(stamp, None))
        image = decode_image(deserialize(store, data, msgtype))
        if topic == label_topic:
            frame.label_ids = image
        else:
            frame.instance_ids = image
        if frame.label_ids is not None and (instance_topic is None or frame.instance_ids is not None):
            yield pending.pop(stamp)
    yield from (pending[s] for s in sorted(pending))
