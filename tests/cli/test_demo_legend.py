"""The contact sheet's legend: the classes that appear, in their palette colours, largest share first."""

import numpy as np

from cityscapes_seg_ros.cli.demo_sheet import (
    GAP,
    LEGEND_ITEM_WIDTH,
    LEGEND_LINE_HEIGHT,
    SWATCH,
    DemoFrame,
    class_shares,
    contact_sheet,
    legend_entries,
    sheet_size,
)
from cityscapes_seg_ros.labels import NUM_TRAIN_CLASSES, TRAIN_ID_PALETTE


def test_legend_lists_the_present_classes_by_share():
    rng = np.random.default_rng(5)
    counts = np.zeros(NUM_TRAIN_CLASSES, np.int64)
    present = rng.choice(NUM_TRAIN_CLASSES, size=11, replace=False)
    counts[present] = rng.permutation(np.arange(1, 12)) * 1000
    entries = legend_entries(class_shares(counts.tolist(), 500))
    assert [train_id for train_id, _ in entries] == sorted(present.tolist(), key=lambda t: -counts[t]) + [255]
    assert abs(entries[0][1] - 100.0 * counts.max() / (counts.sum() + 500)) < 1e-9
    assert abs(entries[-1][1] - 100.0 * 500 / (counts.sum() + 500)) < 1e-9
    assert legend_entries(class_shares(counts.tolist(), 0))[-1][0] != 255


def test_every_legend_swatch_shows_its_class_colour_under_the_frames():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    frames = [DemoFrame("a", image, image, image)]
    entries = [(train_id, 100.0 / NUM_TRAIN_CLASSES) for train_id in rng.permutation(NUM_TRAIN_CLASSES).tolist()]
    entries.append((255, 1.0))
    plain = contact_sheet(frames, "model", False)
    sheet = contact_sheet(frames, "model", False, legend=entries)
    width, height = sheet_size([image.shape])
    assert plain.shape == (height, width, 3) and np.array_equal(sheet[:height], plain)
    band = sheet[height:]
    per_line = (width - GAP) // LEGEND_ITEM_WIDTH
    assert band.shape[0] == -(-len(entries) // per_line) * LEGEND_LINE_HEIGHT + GAP
    for index, (train_id, _) in enumerate(entries):
        x = GAP + (index % per_line) * LEGEND_ITEM_WIDTH
        y = GAP + (index // per_line) * LEGEND_LINE_HEIGHT
        inside = band[y + 1 : y + SWATCH - 1, x + 1 : x + SWATCH - 1].reshape(-1, 3)
        colour = TRAIN_ID_PALETTE[train_id][::-1] if train_id < NUM_TRAIN_CLASSES else (0, 0, 0)  # ignore: black
        assert (inside == colour).all(), train_id


def test_no_legend_without_classes():
    image = np.zeros((32, 64, 3), np.uint8)
    sheet = contact_sheet([DemoFrame("a", image, image, image)], "model", False, legend=[])
    assert sheet.shape[:2] == sheet_size([image.shape])[::-1]
