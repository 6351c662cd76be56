"""Synthetic loop (and must-not-close) trajectories for the SLAM back-end.

Scenes (``load_sequence("synthetic:block?seed=1&frames=260")``):

- ``block``: a drive round a rounded-rectangle city block, about ``laps`` times round (default 1.15), so
  the end re-drives the start; the block is sized from ``frames`` and the speed.
- ``room_loop``: the room walked round its ellipse ``laps`` times, revisiting the start with another
  look direction.
- ``facades``: a straight street of identical buildings at a regular spacing (repetitive; never revisits).
- ``parallel``: down one street, a U-turn round the block end, back along a parallel street 80 m away
  (never revisits).
"""
from __future__ import annotations

import numpy as np

from mono_metric.datasets.synthetic.motion import room_poses, street_poses
from mono_metric.datasets.synthetic.scene import Scene, build_room, build_street

LOOP_SCENES = ("block", "room_loop", "facades", "parallel")
NO_LOOP_SCENES = ("facades", "parallel")
_STREET = dict(width=1241, height=376, fx=718.856, fy=718.856, cx=607.193, cy=185.216, fps=10.0, speed_mps=9.0)
_ROOM = dict(width=640, height=480, fx=525.0, fy=525.0, cx=319.5, cy=239.5, fps=30.0, speed_mps=0.6)
LOOP_DEFAULTS = {"block": _STREET, "room_loop": _ROOM, "facades": _STREET, "parallel": _STREET}
_STEP_M = 0.25  # path sampling


def _path_from_curvature(curvature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yaw = np.cumsum(curvature) * _STEP_M
    xy = np.cumsum(np.stack([np.cos(yaw), np.sin(yaw)], 1) * _STEP_M, axis=0) - [_STEP_M, 0.0]
    return xy, yaw


def _turns(lengths_m: list[float], angles_rad: list[float], radius_m: float) -> np.ndarray:
    """Curvature samples of straights ``lengths_m[i]`` each followed by a turn ``angles_rad[i]``."""
    parts = []
    for length, angle in zip(lengths_m, angles_rad):
        parts.append(np.zeros(int(length / _STEP_M)))
        if angle:
            n = int(abs(angle) * radius_m / _STEP_M)
            parts.append(np.full(n, angle / (n * _STEP_M)))
    return np.concatenate(parts)


def block_path(perimeter_m: float, laps: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Rounded rectangle (aspect 1.5) of ``perimeter_m``, driven ``laps`` times; (S, 2) xy, (S,) yaw,
    samples per lap."""
    radius = 12.0
    straight = max(perimeter_m - 2 * np.pi * radius, 40.0) / 2
    long_side, short_side = 0.6 * straight, 0.4 * straight
    lap = _turns([long_side, short_side, long_side, short_side], [np.pi / 2] * 4, radius)
    reps = int(np.ceil(laps)) + 1
    xy, yaw = _path_from_curvature(np.tile(lap, reps))
    return xy, yaw, len(lap)


def build_loop_scene(scene: str, rng: np.random.Generator, frames: int, metres_per_frame: float,
                     laps: float) -> tuple[Scene, np.ndarray]:
    """(scene mesh, (frames, 4, 4) ground-truth ``T_world_cam``) of a :data:`LOOP_SCENES` sequence."""
    if scene == "room_loop":
        room, size = build_room(rng)
        a, b = 0.22 * size[0], 0.22 * size[1]
        perimeter = 2 * np.pi * np.sqrt((a * a + b * b) / 2)  # as in room_poses
        return room, room_poses(rng, size, frames, laps * perimeter / frames)
    if scene == "block":
        xy, yaw, per_lap = block_path(frames * metres_per_frame / laps, laps)
        world = build_street(rng, xy[:per_lap + 40], yaw[:per_lap + 40])  # buildings of one lap only
        return world, street_poses(rng, xy, yaw, frames, metres_per_frame)
    length = frames * metres_per_frame + 80.0
    if scene == "parallel":
        straight = max(length - np.pi * 40.0, 60.0) / 2
        xy, yaw = _path_from_curvature(_turns([straight, 5.0, 0.0, straight + 40], [np.pi / 2, 0.0, np.pi / 2, 0.0],
                                              40.0))
        return build_street(rng, xy, yaw), street_poses(rng, xy, yaw, frames, metres_per_frame)
    if scene == "facades":
        xy, yaw = _path_from_curvature(np.zeros(int(length / _STEP_M)))
        return _repetitive_street(rng, xy), street_poses(rng, xy, yaw, frames, metres_per_frame)
    raise ValueError(f"unknown loop scene {scene!r}")


def _repetitive_street(rng: np.random.Generator, xy: np.ndarray) -> Scene:
    """A straight street along +x: identical buildings every 14 m on both sides, identical cars every 11 m."""
    world = Scene(has_sky=True)
    x_end = float(xy[-1, 0]) + 40.0
    world.add_box([x_end / 2, 0.0, -0.05], [x_end + 300, 300, 0.1], 0.0, "asphalt")
    material = str(rng.choice(["facade_a", "facade_b", "facade_c"]))
    for side in (-1.0, 1.0):
        for x in np.arange(-10.0, x_end, 14.0):
            world.add_box([x, side * 15.0, 7.0], (12.0, 10.0, 14.0), 0.0, material)
            world.add_box([x, side * 8.6, 0.06], (12.0, 2.8, 0.12), 0.0, "sidewalk")
        for x in np.arange(0.0, x_end, 11.0):
            world.add_box([x, side * 3.6, 0.65], (4.4, 1.8, 0.8), 0.0, "car_white")
            world.add_box([x, side * 3.6, 1.30], (2.4, 1.6, 0.5), 0.0, "car_white")
    return world
