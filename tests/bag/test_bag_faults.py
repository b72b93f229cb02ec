"""``cityscapes-seg-bag evaluate --offline`` on damaged bags: a frame that cannot be decoded and a corrupt MCAP
chunk cost their own frames only; the report names them and scores the rest."""

import json
from pathlib import Path

import cv2
import pytest
from support.bag_support import flip_byte, make_bag, make_split, offline_args, tiny_model_files

from cityscapes_seg_ros.bag.bagio import FRAMES_METADATA_KEY, header_stamp_ns, read_messages, summarize, typestore
from cityscapes_seg_ros.bag.writing import new_writer
from cityscapes_seg_ros.cli.bag_main import main as bag_main

IMAGE_TOPIC = "/cam/front/image_raw"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, tiny_t_fixture):
    return tiny_model_files(tiny_t_fixture, tmp_path_factory.mktemp("model"))


def offline(bag: Path, out: Path, model_files) -> dict:
    code = bag_main(offline_args(bag, out, model_files))
    report = json.loads((out / "report.json").read_text())
    return {"code": code, **report}


def five_frame_bag(tmp_path: Path, size) -> Path:
    root = tmp_path / "cs"
    make_split(root, frames_per_city=5, cities=("aachen",), size=size)
    return make_bag(root, tmp_path / "bag")


def image_stamps(bag: Path):
    return [header_stamp_ns(data) for _, _, _, data in read_messages(bag, [IMAGE_TOPIC])]


def with_encoding(source: Path, out: Path, index: int, encoding: str) -> Path:
    """A copy of ``source`` whose ``index``-th camera image claims ``encoding``."""
    summary, store = summarize(source), typestore()
    writer = new_writer(out)
    writer.set_custom_data(FRAMES_METADATA_KEY, summary.custom[FRAMES_METADATA_KEY])
    with writer:
        connections = {
            name: writer.add_connection(name, info.msgtype, typestore=store) for name, info in summary.topics.items()
        }
        images = 0
        for topic, msgtype, log_time, data in read_messages(source, list(summary.topics)):
            if topic == IMAGE_TOPIC:
                if images == index:
                    message = store.deserialize_cdr(data, msgtype)
                    message.encoding = encoding
                    data = store.serialize_cdr(message, msgtype)
                images += 1
            writer.write(connections[topic], log_time, data)
    return out


def test_a_frame_with_an_unknown_encoding_is_a_named_bad_frame_and_the_rest_are_scored(tmp_path, model_files):
    source = five_frame_bag(tmp_path, (64, 128))
    stamps = image_stamps(source)
    bag = with_encoding(source, tmp_path / "foo", 1, "foo")

    report = offline(bag, tmp_path / "eval", model_files)
    assert report["code"] == 1
    frames = report["frames"]
    assert (frames["in_bag"], frames["images"], frames["bad"], frames["scored"], frames["dropped"]) == (5, 5, 1, 4, 0)
    assert [(bad["stamp_ns"], "foo" in bad["reason"]) for bad in report["bad_frames"]] == [(stamps[1], True)]
    assert any(str(stamps[1]) in problem and "bad frame" in problem for problem in report["problems"])
    assert report["scores"] is not None
    assert report["model"]["revision"] is None  # JSON null, not the string "None"


def corrupt_frame(bag: Path, index: int) -> None:
    """One flipped byte in the pixels of the ``index``-th frame (in bag order) of the bag's storage file."""
    image = sorted(Path(bag).parent.glob("cs/leftImg8bit/val/*/*.png"))[index]
    storage = bag / "bag.mcap"
    offset = storage.read_bytes().find(cv2.imread(str(image)).tobytes()[:4096])
    assert offset > 0
    flip_byte(storage, offset + 1000)


def test_a_corrupt_chunk_costs_its_own_frames_and_the_rest_of_the_bag_is_read(tmp_path, model_files):
    bag = five_frame_bag(tmp_path, (384, 768))  # about 2 MB a frame: a chunk (1 MiB) closes after each image
    stamps = image_stamps(bag)
    corrupt_frame(bag, 1)

    report = offline(bag, tmp_path / "eval", model_files)
    assert report["code"] == 1
    frames = report["frames"]
    read = [frame["stamp_ns"] for frame in report["per_frame"]]
    assert stamps[1] not in read and set(read) == set(stamps) - {stamps[1]}
    assert (frames["in_bag"], frames["images"], frames["lost"]) == (5, 4, 1)
    assert report["lost_stamps"] == [stamps[1]]
    assert 3 <= frames["scored"] <= 4  # the corrupt chunk may hold a neighbour's ground truth too
    assert sum("corrupt MCAP chunk" in problem for problem in report["problems"]) == 1, report["problems"]
    assert any("1 of the 5 frames" in problem and str(stamps[1]) in problem for problem in report["problems"])


def test_a_single_chunk_bag_with_a_corrupt_chunk_is_reported_once_with_every_frame_lost(tmp_path, model_files):
    bag = five_frame_bag(tmp_path, (64, 128))  # about 25 kB a frame: the whole bag is one chunk
    stamps = image_stamps(bag)
    corrupt_frame(bag, 1)

    report = offline(bag, tmp_path / "eval", model_files)
    assert report["code"] == 1
    frames = report["frames"]
    assert (frames["in_bag"], frames["images"], frames["lost"], frames["scored"]) == (5, 0, 5, 0)
    assert report["lost_stamps"] == stamps
    assert sum("corrupt MCAP chunk" in problem for problem in report["problems"]) == 1, report["problems"]
