"""The demo's contact sheet stays a sheet for frames of any aspect ratio (a 20000x20 frame once made it 1.3 GB)."""

import numpy as np
import pytest

from cityscapes_seg_ros.cli.demo_sheet import MAX_TILE_HEIGHT, TILE_WIDTH, DemoFrame, contact_sheet, sheet_size


@pytest.mark.parametrize("shape", [(20000, 20), (20000, 1), (1, 20000), (20, 20000), (1, 1)])
def test_extreme_aspect_frames_give_a_bounded_sheet(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    frames = [DemoFrame("tall", image, image, image), DemoFrame("usual", *[np.zeros((1024, 2048, 3), np.uint8)] * 3)]
    width, height = sheet_size([frame.input_bgr.shape for frame in frames])
    assert height <= 200 + 2 * MAX_TILE_HEIGHT and width < 4 * TILE_WIDTH
    sheet = contact_sheet(frames, "model", random_weights=False)
    assert sheet.shape == (height, width, 3)


def test_usual_frames_keep_their_aspect_ratio():
    width, height = sheet_size([(1024, 2048, 3)])
    assert sheet_size([(1024, 2048, 3), (1024, 2048, 3)])[1] - height == TILE_WIDTH // 2 + 4
    assert width == sheet_size([(512, 512, 3)])[0]
