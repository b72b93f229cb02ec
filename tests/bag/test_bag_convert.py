"""``cityscapes-seg-bag from-cityscapes``: a split (or a folder) written into a bag and read back."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.bag_support import IMAGE_SIZE, flip_byte, make_bag, make_split

from cityscapes_seg_ros.bag.bagio import (
    FRAMES_METADATA_KEY,
    BagError,
    ReadProblem,
    iter_ground_truth,
    iter_images,
    read_messages,
    summarize,
    typestore,
)
from cityscapes_seg_ros.bag.mcap_scan import chunk_checksums
from cityscapes_seg_ros.cli.bag_main import main as bag_main

TOPICS = ("/cam/front/image_raw", "/cam/front/camera_info", "/cam/front/gt/label_ids", "/cam/front/gt/instance_ids")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    frames = make_split(root)
    return root, frames


def source_files(root: Path):
    """(image, label, instance) paths in city, sequence, frame order."""
    images = sorted((root / "leftImg8bit/val").glob("*/*_leftImg8bit.png"), key=lambda p: (p.parent.name, p.name))
    gt = root / "gtFine/val"
    return [
        (
            img,
            gt / img.parent.name / img.name.replace("leftImg8bit", "gtFine_labelIds"),
            gt / img.parent.name / img.name.replace("leftImg8bit", "gtFine_instanceIds"),
        )
        for img in images
    ]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_keeps_images_ground_truth_and_stamps(split, tmp_path, storage):
    root, _ = split
    bag = make_bag(root, tmp_path / "bag", "--storage", storage, "--rate", "4", "--start-time", "100")
    summary = summarize(bag)
    assert {t: summary.topics[t].count for t in TOPICS} == {t: 4 for t in TOPICS}

    files = source_files(root)
    images = list(iter_images(bag, "/cam/front/image_raw"))
    stamps = [stamp for stamp, _ in images]
    assert stamps == [100_000_000_000 + i * 250_000_000 for i in range(4)]  # 4 Hz, in city/frame order
    for (_, image), (image_file, _, _) in zip(images, files, strict=True):
        np.testing.assert_array_equal(image, cv2.imread(str(image_file)))
    truth = list(iter_ground_truth(bag, "/cam/front/gt/label_ids", "/cam/front/gt/instance_ids"))
    assert [frame.stamp_ns for frame in truth] == stamps
    for frame, (_, label_file, instance_file) in zip(truth, files, strict=True):
        np.testing.assert_array_equal(frame.label_ids, cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED))
        np.testing.assert_array_equal(frame.instance_ids, cv2.imread(str(instance_file), cv2.IMREAD_UNCHANGED))
        assert frame.instance_ids.dtype == np.uint16
    names = json.loads(summary.custom[FRAMES_METADATA_KEY])
    assert [names[str(s)] for s in stamps] == [f"{f[0].parent.name}/{f[0].name}" for f in files]

    store = typestore()
    infos = [store.deserialize_cdr(data, t) for _, t, _, data in read_messages(bag, ["/cam/front/camera_info"])]
    assert [(i.height, i.width) for i in infos] == [IMAGE_SIZE] * 4
    assert [i.header.stamp.sec * 10**9 + i.header.stamp.nanosec for i in infos] == stamps
    assert all(i.header.frame_id == "cam_front" for i in infos)


def test_compressed_png_is_lossless_and_jpeg_close(split, tmp_path):
    root, _ = split
    expected = [cv2.imread(str(f[0])) for f in source_files(root)]
    png = make_bag(root, tmp_path / "png", "--compressed")
    assert summarize(png).topics["/cam/front/image_raw/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
    for (_, image), original in zip(iter_images(png, "/cam/front/image_raw/compressed"), expected, strict=True):
        np.testing.assert_array_equal(image, original)
    jpeg = make_bag(root, tmp_path / "jpeg", "--compressed", "jpeg", "--jpeg-quality", "100")
    decoded = [image for _, image in iter_images(jpeg, "/cam/front/image_raw/compressed")]
    assert len(decoded) == 4
    for image, original in zip(decoded, expected, strict=True):  # lossy: what the JPEG encoder makes of the original
        _, encoded = cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 100])
        np.testing.assert_array_equal(image, cv2.imdecode(encoded, cv2.IMREAD_COLOR))


def test_folder_of_images_without_ground_truth(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    cv2.imwrite(str(folder / "b.jpg"), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "sub" / "a.png"), rng.integers(0, 256, (10, 12), dtype=np.uint8))  # grey -> bgr8
    (folder / "notes.txt").write_text("not an image")
    assert (
        bag_main(
            [
                "from-cityscapes",
                "--images",
                str(folder),
                "--out",
                str(tmp_path / "bag"),
                "--image-topic",
                "/front/image",
            ]
        )
        == 0
    )
    summary = summarize(tmp_path / "bag")
    assert set(summary.topics) == {"/front/image", "/cam/front/camera_info"}
    shapes = [image.shape for _, image in iter_images(tmp_path / "bag", "/front/image")]
    assert shapes == [(20, 30, 3), (10, 12, 3)]  # path order: b.jpg, sub/a.png


def test_missing_ground_truth_and_broken_images_are_reported_and_the_rest_written(tmp_path, caplog):
    root = tmp_path / "cs"
    make_split(root)
    files = source_files(root)
    files[1][1].unlink()  # one frame without labels
    files[2][0].write_bytes(b"broken")  # one unreadable image
    code = bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(tmp_path / "bag")])
    assert code == 1
    assert files[1][0].name in caplog.text and "no ground truth" in caplog.text
    assert files[2][0].name in caplog.text
    summary = summarize(tmp_path / "bag")
    assert summary.topics["/cam/front/image_raw"].count == 3
    assert summary.topics["/cam/front/gt/label_ids"].count == 2


def test_existing_output_and_wrong_root_fail_clearly(split, tmp_path, capsys):
    root, _ = split
    make_bag(root, tmp_path / "bag")
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(tmp_path / "bag")]) == 2
    assert "already exists" in capsys.readouterr().err
    make_bag(root, tmp_path / "bag", "--overwrite")
    assert (
        bag_main(["from-cityscapes", "--cityscapes-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b2")])
        == 2
    )
    assert "leftImg8bit" in capsys.readouterr().err
    with pytest.raises(BagError, match="no such bag"):
        summarize(tmp_path / "missing_bag")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "cityscapes-seg-bag"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "from-cityscapes" in result.stdout and "replay" in result.stdout and "evaluate" in result.stdout


def leftovers(folder: Path, name: str):
    """What a conversion to ``folder/name`` left behind: the bag itself or a staging folder beside it."""
    return sorted(p.name for p in folder.iterdir() if p.name == name or p.name.startswith(f".{name}."))


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--rate", "inf", "one stamp"),  # every frame at the start time: 8 ground truths, 1 prediction
        ("--rate", "3e9", "one stamp"),  # frames less than 1 ns apart round to the same stamp
        ("--rate", "nan", "positive"),
        ("--rate", "0", "positive"),
        ("--rate", "1e-12", "2038"),  # the second frame's stamp does not fit a ROS time (was a struct.error)
        ("--start-time", "nan", "--start-time"),
        ("--start-time", "-1", "--start-time"),
    ],
)
def test_rates_and_starts_without_a_valid_stamp_per_frame_are_refused_before_writing(
    split, tmp_path, capsys, option, value, words
):
    root, _ = split
    code = bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(tmp_path / "bag"), option, value])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and option in err and "Traceback" not in err
    assert leftovers(tmp_path, "bag") == []


def test_an_interrupted_conversion_leaves_nothing_and_keeps_the_bag_it_would_replace(split, tmp_path, monkeypatch):
    root, _ = split
    bag = make_bag(root, tmp_path / "bag", "--rate", "4")
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    from cityscapes_seg_ros.bag import convert

    reads = []

    def read_then_interrupt(path):
        reads.append(path)
        if len(reads) == 3:
            raise KeyboardInterrupt
        return cv2.imread(str(path))

    monkeypatch.setattr(convert, "read_bgr", read_then_interrupt)
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(bag), "--overwrite"]) == 130
    assert leftovers(tmp_path, "bag") == ["bag"]
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == before
    reads.clear()
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(tmp_path / "new")]) == 130
    assert leftovers(tmp_path, "new") == []


def test_written_chunks_carry_checksums_and_a_flipped_byte_costs_its_chunk_only(tmp_path):
    root = tmp_path / "cs"
    make_split(root, size=(384, 768))  # about 2 MB a frame: several chunks
    bag = make_bag(root, tmp_path / "bag")
    storage = bag / "bag.mcap"
    chunks, unchecked = chunk_checksums(storage)
    assert chunks >= 4 and unchecked == 0
    assert summarize(bag).notes == []
    stamps = [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw")]  # rosbags checks every CRC: all pass
    assert len(stamps) == 4

    third_image = cv2.imread(str(source_files(root)[2][0]))
    offset = storage.read_bytes().find(third_image.tobytes()[:4096])
    assert offset > 0
    flip_byte(storage, offset + 1000)  # one bit of the third frame's pixels
    problem = ReadProblem()
    read = [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw", problem)]
    # Every frame but the corrupt one: reading goes on past the chunk that fails its checksum.
    assert read == stamps[:2] + stamps[3:]
    assert "checksum" in problem.message and "1 corrupt MCAP chunk(s) skipped" in problem.message
    with pytest.raises(BagError, match="checksum"):  # a caller without a ReadProblem: the first fault raises
        list(iter_images(bag, "/cam/front/image_raw"))

    # The same file without its end (no summary, read record by record): the scan checks the CRCs too.
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) - 100])
    problem = ReadProblem()
    assert [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw", problem)] == stamps[:2] + stamps[3:]
    assert "checksum" in problem.message


def test_a_complete_mcap_bag_without_metadata_is_read_whole(split, tmp_path):
    root, _ = split
    bag = make_bag(root, tmp_path / "bag")
    expected = list(read_messages(bag, TOPICS))
    (bag / "metadata.yaml").unlink()
    summary = summarize(bag)
    assert summary.damaged is None
    assert {t: summary.topics[t].count for t in TOPICS} == {t: 4 for t in TOPICS}
    problem = ReadProblem()
    assert list(read_messages(bag, TOPICS, problem)) == expected
    assert problem.message is None
