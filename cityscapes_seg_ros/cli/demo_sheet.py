"""What ``cityscapes-seg demo`` makes of the node's outputs: the contact sheet, the class-share table, timings.

No ROS here: the frames come in as numpy images. The contact sheet has a title band (the model; "RANDOM
WEIGHTS" in red when the weights are random), one row per frame: input | colour | overlay, each tile
``TILE_WIDTH`` pixels wide with the frame's aspect ratio, separated by ``GAP`` pixels, and under them a legend:
the classes that appear, largest share first, each a swatch of its palette colour, its name and share (then
the ignored pixels, black).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES, TRAIN_CLASS_NAMES, TRAIN_ID_PALETTE

TILE_WIDTH = 384
MAX_TILE_HEIGHT = 4 * TILE_WIDTH  # a frame taller than 4:1 is squeezed to it: a 20000x20 one would be 384000 tall
GAP = 4
TITLE_HEIGHT = 68  # model name, the note, then the column titles on their own line
COLUMN_TITLES = ("input", "colour (black: ignore)", "overlay")
BACKGROUND = (32, 32, 32)  # BGR
IGNORE_ROW = "ignore (255)"
LEGEND_ITEM_WIDTH = 3 * TILE_WIDTH // 8 + GAP // 2  # eight classes to a legend line
LEGEND_LINE_HEIGHT = 22
SWATCH = 14


@dataclass(frozen=True)
class DemoFrame:
    """One segmented frame: the input and the node's colour and overlay, all BGR (OpenCV's order)."""

    name: str
    input_bgr: np.ndarray
    color_bgr: np.ndarray
    overlay_bgr: np.ndarray


def tile_height(frame_shape: Tuple[int, ...]) -> int:
    """The height of a frame's tiles on the sheet (``TILE_WIDTH`` wide, the frame's aspect ratio up to 4:1)."""
    height, width = frame_shape[:2]
    return min(MAX_TILE_HEIGHT, max(1, round(TILE_WIDTH * height / width)))


def sheet_size(frame_shapes: Sequence[Tuple[int, ...]]) -> Tuple[int, int]:
    """(width, height) of the contact sheet of frames of these shapes."""
    width = 3 * TILE_WIDTH + 4 * GAP
    height = TITLE_HEIGHT + sum(tile_height(shape) + GAP for shape in frame_shapes) + GAP
    return width, height


def tile_origin(frame_shapes: Sequence[Tuple[int, ...]], row: int, column: int) -> Tuple[int, int]:
    """(x, y) of the top-left pixel of a tile: ``column`` 0 input, 1 colour, 2 overlay."""
    y = TITLE_HEIGHT + GAP + sum(tile_height(shape) + GAP for shape in frame_shapes[:row])
    return GAP + column * (TILE_WIDTH + GAP), y


def contact_sheet(
    frames: Sequence[DemoFrame],
    model: str,
    random_weights: bool,
    note: str = "",
    legend: Sequence[Tuple[int, float]] = (),
) -> np.ndarray:
    """The BGR contact sheet: a title band, input | colour | overlay per frame, then the ``legend`` band (train id,
    percent) when one is given."""
    if not frames:
        raise ValueError("no frames to put on the contact sheet")
    shapes = [frame.input_bgr.shape for frame in frames]
    width, height = sheet_size(shapes)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    _title(sheet, model, random_weights, note)
    for row, frame in enumerate(frames):
        tiles = (frame.input_bgr, frame.color_bgr, frame.overlay_bgr)
        size = (TILE_WIDTH, tile_height(frame.input_bgr.shape))
        for column, tile in enumerate(tiles):
            x, y = tile_origin(shapes, row, column)
            # Nearest for the label colours (no blended colours that are no class), area for the photos.
            interpolation = cv2.INTER_NEAREST if column == 1 else cv2.INTER_AREA
            sheet[y : y + size[1], x : x + size[0]] = cv2.resize(tile, size, interpolation=interpolation)
        _text(sheet, frame.name, tile_origin(shapes, row, 0), 0.45, (255, 255, 255))
    return np.vstack([sheet, legend_band(width, legend)]) if legend else sheet


def legend_band(width: int, entries: Sequence[Tuple[int, float]]) -> np.ndarray:
    """A band ``width`` wide: per (train id, percent) a swatch of the class's palette colour, its name and share."""
    per_line = max(1, (width - GAP) // LEGEND_ITEM_WIDTH)
    lines = (len(entries) + per_line - 1) // per_line
    band = np.full((lines * LEGEND_LINE_HEIGHT + GAP, width, 3), BACKGROUND, np.uint8)
    for index, (train_id, percent) in enumerate(entries):
        x = GAP + (index % per_line) * LEGEND_ITEM_WIDTH
        y = GAP + (index // per_line) * LEGEND_LINE_HEIGHT
        ignore = train_id == IGNORE_TRAIN_ID
        colour = (0, 0, 0) if ignore else tuple(int(v) for v in TRAIN_ID_PALETTE[train_id][::-1])  # RGB palette
        band[y : y + SWATCH, x : x + SWATCH] = colour
        cv2.rectangle(band, (x, y), (x + SWATCH - 1, y + SWATCH - 1), (200, 200, 200), 1)
        name = "ignore" if ignore else TRAIN_CLASS_NAMES[train_id]
        label = f"{name} {percent:.1f}%" if percent >= 0.1 else name
        origin = (x + SWATCH + 5, y + SWATCH - 2)
        cv2.putText(band, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1, cv2.LINE_AA)
    return band


def legend_entries(rows: Sequence[Tuple[str, int, float]]) -> List[Tuple[int, float]]:
    """(train id, percent) of the classes with pixels in ``class_shares`` rows, largest share first, then
    (255, percent) of the ignored pixels when there are any."""
    present = [(train_id, row[2]) for train_id, row in enumerate(rows[:NUM_TRAIN_CLASSES]) if row[1] > 0]
    ignored = [(IGNORE_TRAIN_ID, row[2]) for row in rows[NUM_TRAIN_CLASSES:] if row[1] > 0]
    return sorted(present, key=lambda entry: -entry[1]) + ignored


def _title(sheet: np.ndarray, model: str, random_weights: bool, note: str) -> None:
    cv2.putText(sheet, model, (GAP + 4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    if random_weights:
        cv2.putText(
            sheet,
            "RANDOM WEIGHTS",
            (sheet.shape[1] - 250, 22),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.75,
            (40, 40, 255),
            2,
            cv2.LINE_AA,
        )
        origin = (sheet.shape[1] - 250, 40)
        cv2.putText(
            sheet, "the masks mean nothing", origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 40, 255), 1, cv2.LINE_AA
        )
    if note:
        cv2.putText(sheet, note, (GAP + 4, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    for column, title in enumerate(COLUMN_TITLES):
        (text_width, _), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        x = GAP + column * (TILE_WIDTH + GAP) + (TILE_WIDTH - text_width) // 2
        cv2.putText(sheet, title, (x, TITLE_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)


def _text(sheet: np.ndarray, text: str, origin: Tuple[int, int], scale: float, color) -> None:
    """Text with a dark outline, readable on any tile."""
    position = (origin[0] + 4, origin[1] + 16)
    cv2.putText(sheet, text, position, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(sheet, text, position, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def class_shares(pixel_counts: Sequence[int], ignored_pixels: int) -> List[Tuple[str, int, float]]:
    """(class, pixels, percent) per train class, then the ignored pixels; the percentages sum to 100."""
    counts = [int(c) for c in pixel_counts]
    if len(counts) != NUM_TRAIN_CLASSES:
        raise ValueError(f"expected {NUM_TRAIN_CLASSES} class pixel counts, got {len(counts)}")
    total = sum(counts) + int(ignored_pixels)
    if total <= 0:
        raise ValueError("no pixels were counted")
    rows = [(name, count, 100.0 * count / total) for name, count in zip(TRAIN_CLASS_NAMES, counts)]
    return rows + [(IGNORE_ROW, int(ignored_pixels), 100.0 * int(ignored_pixels) / total)]


def format_shares(rows: Sequence[Tuple[str, int, float]]) -> str:
    """The class-share table as text, largest share first (classes with no pixel left out)."""
    shown = sorted((row for row in rows if row[1] > 0), key=lambda row: -row[1])
    lines = [f"{'class':<16} {'pixels':>12} {'share':>8}"]
    lines += [f"{name:<16} {pixels:>12d} {percent:>7.2f}%" for name, pixels, percent in shown]
    lines.append(f"{'total':<16} {sum(r[1] for r in rows):>12d} {sum(r[2] for r in rows):>7.2f}%")
    return "\n".join(lines)


def shares_csv(rows: Sequence[Tuple[str, int, float]]) -> str:
    return "class,pixels,percent\n" + "".join(f"{name},{pixels},{percent:.4f}\n" for name, pixels, percent in rows)


def timing_summary(
    latencies_ms: Sequence[float], done_sec: Sequence[float], inference_ms: Sequence[float] = ()
) -> Dict[str, Optional[float]]:
    """Frame rate and latency figures; the first frame (the node's warm-up) is reported on its own.

    ``done_sec``: when each frame's outputs had all arrived (one clock); the frame rate is that of the outputs
    after the first.
    """
    steady = list(latencies_ms[1:]) if len(latencies_ms) > 1 else list(latencies_ms)
    ordered = sorted(steady)
    done = sorted(done_sec)

    def percentile(q: float) -> Optional[float]:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else None

    return {
        "frames": len(latencies_ms),
        "fps": (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else None,
        "first_frame_latency_ms": latencies_ms[0] if latencies_ms else None,
        "latency_p50_ms": percentile(0.5),
        "latency_p95_ms": percentile(0.95),
        "latency_max_ms": max(ordered) if ordered else None,
        "node_inference_median_ms": statistics.median(inference_ms) if inference_ms else None,
    }


def format_timing(summary: Dict[str, Optional[float]], what: str) -> str:
    def ms(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value:.0f} ms"

    fps = summary.get("fps")
    return (
        f"{summary['frames']} frames, {'n/a' if fps is None else f'{fps:.2f}'} frames/s ({what}); latency "
        f"p50 {ms(summary['latency_p50_ms'])}, p95 {ms(summary['latency_p95_ms'])}, max "
        f"{ms(summary['latency_max_ms'])} (first frame {ms(summary['first_frame_latency_ms'])}); node "
        f"inference median {ms(summary['node_inference_median_ms'])}"
    )
