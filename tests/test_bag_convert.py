"""``cityscapes-seg-bag from-cityscapes``: a split (or a folder) written into a bag and read back."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bag_support import IMAGE_SIZE, make_bag, make_split
from cityscapes_seg_ros.bag.bagio import (
    BagError,
    iter_ground_truth,
    iter_images,
    read_messages,
    summarize,
    typestore,
)
from cityscapes_seg_ros.bag.convert import FRAMES_METADATA_KEY
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
    return [(img, gt / img.parent.name / img.name.replace("leftImg8bit", "gtFine_labelIds"),
             gt / img.parent.name / img.name.replace("leftImg8bit", "gtFine_instanceIds")) for img in images]  # fmt: skip


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
    for (stamp, image), (image_file, _, _) in zip(images, files):
        np.testing.assert_array_equal(image, cv2.imread(str(image_file)))
    truth = list(iter_ground_truth(bag, "/cam/front/gt/label_ids", "/cam/front/gt/instance_ids"))
    assert [frame.stamp_ns for frame in truth] == stamps
    for frame, (_, label_file, instance_file) in zip(truth, files):
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
    for (_, image), original in zip(iter_images(png, "/cam/front/image_raw/compressed"), expected):
        np.testing.assert_array_equal(image, original)
    jpeg = make_bag(root, tmp_path / "jpeg", "--compressed", "jpeg", "--jpeg-quality", "100")
    decoded = [image for _, image in iter_images(jpeg, "/cam/front/image_raw/compressed")]
    assert len(decoded) == 4
    for image, original in zip(decoded, expected):  # lossy: what the JPEG encoder makes of the original
        _, encoded = cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 100])
        np.testing.assert_array_equal(image, cv2.imdecode(encoded, cv2.IMREAD_COLOR))


def test_folder_of_images_without_ground_truth(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    cv2.imwrite(str(folder / "b.jpg"), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "sub" / "a.png"), rng.integers(0, 256, (10, 12), dtype=np.uint8))  # grey -> bgr8
    (folder / "notes.txt").write_text("not an image")
    assert bag_main(["from-cityscapes", "--images", str(folder), "--out", str(tmp_path / "bag"),
                     "--image-topic", "/front/image"]) == 0  # fmt: skip
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
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b2")]) == 2
    assert "leftImg8bit" in capsys.readouterr().err
    with pytest.raises(BagError, match="no such bag"):
        summarize(tmp_path / "missing_bag")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "cityscapes-seg-bag"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "from-cityscapes" in result.stdout and "replay" in result.stdout and "evaluate" in result.stdout
