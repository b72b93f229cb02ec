"""Draw the demo's bundled camera frames: synthetic street scenes, no dataset images.

    .venv/bin/python scripts/make_demo_frames.py [--out cityscapes_seg_ros/data/demo] [--frames 6]

A short drive down a street (512x256, BGR PNG): sky, buildings on both sides, sidewalks, the road with its
markings, poles, trees, parked and oncoming cars and a pedestrian, seen from a camera that moves forward a
little each frame. Deterministic (fixed seed), so rerunning it gives the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 512, 256
HORIZON = 110  # image row of the vanishing point
VANISH_X = WIDTH // 2
OUT = Path(__file__).resolve().parents[1] / "cityscapes_seg_ros" / "data" / "demo"


def ground_x(lateral_m: float, row: float) -> float:
    """Image column of a point on the ground ``lateral_m`` metres right of the camera, at image ``row``."""
    return VANISH_X + lateral_m * (row - HORIZON) * 1.6


def row_of_distance(distance_m: float) -> float:
    """Image row of the ground ``distance_m`` metres ahead (camera 1.5 m high, focal length ~ 180 px)."""
    return HORIZON + 1.5 * 180.0 / max(distance_m, 0.5)


def scale_at(distance_m: float) -> float:
    """Pixels per metre at ``distance_m``."""
    return 180.0 / max(distance_m, 0.5)


def shade(color, rng: np.random.Generator, spread: int = 12):
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in color)


def draw_sky(image: np.ndarray) -> None:
    for row in range(HORIZON + 1):
        t = row / HORIZON
        image[row, :] = (235 - 40 * t, 190 - 20 * t, 130 + 40 * t)  # BGR: blue fading to pale at the horizon


def draw_buildings(image: np.ndarray, rng: np.random.Generator, offset_m: float) -> None:
    for side in (-1, 1):
        start = -(offset_m % 14.0)
        for index in range(12):
            near, far = start + index * 14.0 + 4.0, start + index * 14.0 + 16.0
            if far <= 2.0:
                continue
            near = max(near, 2.0)
            facade_m = 7.5 * side
            height_m = 9.0 + 9.0 * ((index * 7 + (side > 0) * 3) % 5) / 4
            base_near, base_far = row_of_distance(near), row_of_distance(far)
            x_near, x_far = ground_x(facade_m, base_near), ground_x(facade_m, base_far)
            top_near = base_near - height_m * scale_at(near)
            top_far = base_far - height_m * scale_at(far)
            color = shade((120 + 20 * (index % 3), 125 + 10 * (index % 2), 140), rng, 18)
            polygon = np.array([[x_near, base_near], [x_far, base_far], [x_far, top_far], [x_near, top_near]])
            cv2.fillPoly(image, [polygon.astype(np.int32)], color)
            for floor in np.arange(2.0, height_m - 1.0, 3.0):  # windows: rows of dark quads along the facade
                for along in np.arange(0.15, 0.9, 0.2):
                    d0, d1 = near + (far - near) * along, near + (far - near) * (along + 0.08)
                    corners = []
                    for d, h in ((d0, floor), (d1, floor), (d1, floor + 1.3), (d0, floor + 1.3)):
                        corners.append([ground_x(facade_m, row_of_distance(d)), row_of_distance(d) - h * scale_at(d)])
                    cv2.fillPoly(image, [np.array(corners, np.int32)], (70, 60, 55))


def draw_ground(image: np.ndarray, offset_m: float) -> None:
    bottom = HEIGHT - 1
    for lateral, color in ((-7.5, (165, 170, 175)), (7.5, (165, 170, 175))):  # sidewalks to the facades
        curb = -3.5 if lateral < 0 else 3.5
        polygon = [
            [ground_x(lateral, HORIZON + 1), HORIZON + 1],
            [ground_x(curb, HORIZON + 1), HORIZON + 1],
            [ground_x(curb, bottom), bottom],
            [ground_x(lateral, bottom), bottom],
        ]
        cv2.fillPoly(image, [np.array(polygon, np.int32)], color)
    road = [
        [ground_x(-3.5, HORIZON + 1), HORIZON + 1],
        [ground_x(3.5, HORIZON + 1), HORIZON + 1],
        [ground_x(3.5, bottom), bottom],
        [ground_x(-3.5, bottom), bottom],
    ]
    cv2.fillPoly(image, [np.array(road, np.int32)], (88, 80, 84))
    for curb in (-3.5, 3.5):
        cv2.line(
            image,
            (int(ground_x(curb, HORIZON + 1)), HORIZON + 1),
            (int(ground_x(curb, bottom)), bottom),
            (200, 200, 200),
            2,
        )
    phase = offset_m % 6.0
    for start in np.arange(2.0 - phase, 80.0, 6.0):  # dashed centre line
        if start + 3.0 <= 1.0:
            continue
        d0, d1 = max(start, 1.0), start + 3.0
        r0, r1 = row_of_distance(d0), row_of_distance(d1)
        quad = [
            [ground_x(-0.08, r0), r0],
            [ground_x(0.08, r0), r0],
            [ground_x(0.08, r1), r1],
            [ground_x(-0.08, r1), r1],
        ]
        cv2.fillPoly(image, [np.array(quad, np.int32)], (235, 235, 235))


def draw_pole(image: np.ndarray, lateral_m: float, distance_m: float) -> None:
    base = row_of_distance(distance_m)
    x, s = ground_x(lateral_m, base), scale_at(distance_m)
    top = base - 7.0 * s
    cv2.rectangle(image, (int(x - 0.1 * s), int(top)), (int(x + 0.1 * s), int(base)), (60, 60, 60), -1)
    arm_x = x - 1.2 * s if lateral_m > 0 else x + 1.2 * s
    cv2.line(image, (int(x), int(top)), (int(arm_x), int(top)), (60, 60, 60), max(1, int(0.12 * s)))


def draw_tree(image: np.ndarray, lateral_m: float, distance_m: float, rng: np.random.Generator) -> None:
    base = row_of_distance(distance_m)
    x, s = ground_x(lateral_m, base), scale_at(distance_m)
    cv2.rectangle(image, (int(x - 0.15 * s), int(base - 3.0 * s)), (int(x + 0.15 * s), int(base)), (40, 60, 90), -1)
    for _ in range(7):  # a crown of overlapping leaf blobs
        cx = x + rng.normal(0, 0.7) * s
        cy = base - (4.2 + rng.normal(0, 0.6)) * s
        cv2.circle(image, (int(cx), int(cy)), max(2, int(1.3 * s)), shade((50, 130, 60), rng, 20), -1)


def draw_car(image: np.ndarray, lateral_m: float, distance_m: float, body_bgr) -> None:
    base = row_of_distance(distance_m)
    x, s = ground_x(lateral_m, base), scale_at(distance_m)
    half, height = 0.9 * s, 1.45 * s
    cv2.rectangle(image, (int(x - half), int(base - 0.9 * s)), (int(x + half), int(base - 0.2 * s)), body_bgr, -1)
    cabin = np.array(
        [
            [x - 0.75 * half, base - 0.9 * s],
            [x + 0.75 * half, base - 0.9 * s],
            [x + 0.55 * half, base - height],
            [x - 0.55 * half, base - height],
        ],
        np.int32,
    )
    cv2.fillPoly(image, [cabin], body_bgr)
    cv2.fillPoly(image, [((cabin - [x, base]) * [0.8, 0.95] + [x, base - 0.03 * s]).astype(np.int32)], (70, 50, 40))
    for wheel in (-0.65, 0.65):
        cv2.circle(image, (int(x + wheel * half), int(base - 0.2 * s)), max(1, int(0.3 * s)), (25, 25, 25), -1)
    for light in (-0.8, 0.8):
        cv2.circle(image, (int(x + light * half), int(base - 0.6 * s)), max(1, int(0.08 * s)), (40, 40, 220), -1)


def draw_person(image: np.ndarray, lateral_m: float, distance_m: float) -> None:
    base = row_of_distance(distance_m)
    x, s = ground_x(lateral_m, base), scale_at(distance_m)
    cv2.rectangle(image, (int(x - 0.2 * s), int(base - 1.0 * s)), (int(x + 0.2 * s), int(base)), (60, 40, 30), -1)
    cv2.rectangle(
        image, (int(x - 0.25 * s), int(base - 1.5 * s)), (int(x + 0.25 * s), int(base - 0.9 * s)), (40, 40, 160), -1
    )
    cv2.circle(image, (int(x), int(base - 1.65 * s)), max(1, int(0.15 * s)), (150, 170, 210), -1)


def draw_frame(index: int) -> np.ndarray:
    rng = np.random.default_rng(7)  # the same scene every frame; only the camera and the cars move
    offset_m = 1.5 * index
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    draw_sky(image)
    image[HORIZON - 4 :] = (150, 150, 155)  # distant facades and ground, under what is drawn nearer
    draw_buildings(image, rng, offset_m)
    draw_ground(image, offset_m)
    objects = []  # (distance, draw) painted far to near
    for d in np.arange(10.0, 70.0, 12.0):
        objects.append((d - offset_m, lambda dd, lat=5.5: draw_tree(image, lat, dd, np.random.default_rng(int(dd)))))
        objects.append((d + 6.0 - offset_m, lambda dd: draw_pole(image, -4.2, dd)))
    objects.append((14.0 - offset_m, lambda dd: draw_car(image, 2.3, dd, (40, 40, 170))))  # parked, right
    objects.append((30.0 - offset_m, lambda dd: draw_car(image, 2.3, dd, (160, 150, 140))))
    objects.append((40.0 - 4.0 * index, lambda dd: draw_car(image, -1.8, dd, (150, 90, 30))))  # oncoming
    objects.append((18.0 - offset_m, lambda dd: draw_person(image, -4.8, dd)))
    for distance, draw in sorted(objects, key=lambda item: -item[0]):
        if distance > 1.5:
            draw(distance)
    noise = np.random.default_rng(100 + index).normal(0, 4, image.shape)  # sensor noise, so no area is flat
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for index in range(args.frames):
        path = args.out / f"street_{index:02d}.png"
        cv2.imwrite(str(path), draw_frame(index))
        print(path)


if __name__ == "__main__":
    main()
