"""Camera motion of the synthetic sequences: a car along a street, a handheld phone in a room, a hand-held
sensor panning fast around a room (TUM-like)."""
from __future__ import annotations

import numpy as np

from mono_metric.geometry import look_at, make_se3

# Camera axes in a vehicle frame (x forward, y left, z up): cam z forward, cam x right, cam y down.
_R_VEH_CAM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
CAMERA_HEIGHT_M = 1.65


def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def _smooth_wiggle(rng: np.random.Generator, t: np.ndarray, amplitude: float, periods: tuple[float, ...]) -> np.ndarray:
    """Sum of sinusoids with random phases, about ``amplitude`` in size."""
    out = np.zeros_like(t)
    for p in periods:
        out += np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi))
    return amplitude * out / np.sqrt(len(periods))


def street_poses(rng: np.random.Generator, xy: np.ndarray, yaw: np.ndarray, frames: int,
                 metres_per_frame: float) -> np.ndarray:
    """(frames, 4, 4) ``T_world_cam`` of a camera 1.65 m above a road following ``xy``/``yaw``."""
    step = float(np.linalg.norm(xy[1] - xy[0]))
    i = np.arange(frames, dtype=np.float64)
    speed = metres_per_frame * (1.0 + _smooth_wiggle(rng, i, 0.12, (37.0, 91.0)))
    s = 5.0 + np.concatenate([[0.0], np.cumsum(speed[:-1])])
    k = np.clip(s / step, 0, len(xy) - 1.001)
    k0, w = k.astype(int), (k - k.astype(int))[:, None]
    pos = xy[k0] * (1 - w) + xy[k0 + 1] * w
    heading = yaw[k0] * (1 - w[:, 0]) + yaw[k0 + 1] * w[:, 0] + _smooth_wiggle(rng, i, np.radians(0.4), (23.0, 51.0))
    pitch = _smooth_wiggle(rng, i, np.radians(0.5), (7.0, 19.0))
    roll = _smooth_wiggle(rng, i, np.radians(0.3), (11.0, 29.0))
    z = CAMERA_HEIGHT_M + _smooth_wiggle(rng, i, 0.01, (5.0, 13.0))
    R = np.stack([_rot(2, h) @ _R_VEH_CAM @ _rot(0, p) @ _rot(2, r) for h, p, r in zip(heading, pitch, roll)])
    return make_se3(R, np.column_stack([pos, z]))


def room_poses(rng: np.random.Generator, room_size: np.ndarray, frames: int, metres_per_frame: float) -> np.ndarray:
    """(frames, 4, 4) handheld 6-DoF poses walking an ellipse in a room centred at the origin."""
    W, D, H = room_size
    a, b = 0.22 * W, 0.22 * D
    perimeter = 2 * np.pi * np.sqrt((a * a + b * b) / 2)
    i = np.arange(frames, dtype=np.float64)
    theta = rng.uniform(0, 2 * np.pi) + rng.choice([-1, 1]) * 2 * np.pi * i * metres_per_frame / perimeter
    pos = np.column_stack([a * np.cos(theta) + _smooth_wiggle(rng, i, 0.08, (41.0, 97.0)),
                           b * np.sin(theta) + _smooth_wiggle(rng, i, 0.08, (53.0, 83.0)),
                           1.45 + _smooth_wiggle(rng, i, 0.08, (61.0, 137.0))])
    look_yaw = _smooth_wiggle(rng, i, np.radians(35.0), (113.0, 173.0))
    poses = []
    for k in range(frames):
        inward = -pos[k, :2] / max(np.linalg.norm(pos[k, :2]), 1e-6)
        c, s = np.cos(look_yaw[k]), np.sin(look_yaw[k])
        direction = np.array([c * inward[0] - s * inward[1], s * inward[0] + c * inward[1]])
        target = np.array([*(pos[k, :2] + 2.0 * direction), 1.1 + 0.35 * np.sin(0.021 * k + theta[0])])
        roll = np.radians(6.0) * np.sin(0.031 * k + 2 * theta[0])
        poses.append(look_at(pos[k], target, roll_rad=roll))
    return np.stack(poses)


class HandheldMotion:
    """Hand-held camera swept around a room like TUM RGB-D freiburg1 desk/360 (continuous in time).

    The camera stands near the room centre and wanders slowly (mean speed about ``speed_mps``) while
    it pans back and forth (yaw swings of about +-50 deg with periods of 3-7 s: angular speed up to about
    1.5-2 rad/s), tilts and rolls, with hand shake (about 0.3 deg at 4-10 Hz).

    Args:
        rng: draws the start, phases and periods.
        room_size: (W, D, H) of the room centred at the origin, metres.
        speed_mps: mean translation speed.
    """

    def __init__(self, rng: np.random.Generator, room_size: np.ndarray, speed_mps: float):
        W, D, _ = room_size
        self.center = np.array([rng.uniform(-0.1, 0.1) * W, rng.uniform(-0.1, 0.1) * D, rng.uniform(1.3, 1.5)])
        self.yaw0 = rng.uniform(-np.pi, np.pi)
        self._pan = [(0.75, rng.uniform(5.0, 7.0), rng.uniform(0, 2 * np.pi)),
                     (0.38, rng.uniform(3.0, 4.0), rng.uniform(0, 2 * np.pi))]
        self._tilt = [(0.2, rng.uniform(3.5, 5.0), rng.uniform(0, 2 * np.pi)),
                      (0.08, rng.uniform(1.5, 2.5), rng.uniform(0, 2 * np.pi))]
        self._roll = [(0.08, rng.uniform(4.0, 6.0), rng.uniform(0, 2 * np.pi))]
        self._shake = rng.uniform(0, 2 * np.pi, (3, 3))
        self._walk = [(rng.uniform(2.0, 9.0, 3), rng.uniform(0, 2 * np.pi, 3)) for _ in range(3)]
        # Scale the wander so its mean speed is speed_mps (measured on a fine time grid).
        self._walk_scale = 1.0
        t = np.arange(0.0, 60.0, 0.01)
        speed = np.linalg.norm(np.diff(self._position(t), axis=0), axis=1).mean() / 0.01
        self._walk_scale = speed_mps / speed

    @staticmethod
    def _waves(t: np.ndarray, terms) -> np.ndarray:
        return sum(a * np.sin(2 * np.pi * t / p + ph) for a, p, ph in terms)

    def _position(self, t: np.ndarray) -> np.ndarray:
        wander = [sum(np.sin(2 * np.pi * t / p + ph) for p, ph in zip(periods, phases)) / 3.0
                  for periods, phases in self._walk]
        return self.center + self._walk_scale * np.column_stack([0.35 * wander[0], 0.35 * wander[1], 0.1 * wander[2]])

    def __call__(self, times_s: np.ndarray) -> np.ndarray:
        """(M, 4, 4) ``T_world_cam`` at ``times_s`` (M,) seconds."""
        t = np.asarray(times_s, np.float64).reshape(-1)
        shake = [0.006 * sum(np.sin(2 * np.pi * f * t + ph) for f, ph in zip((4.1, 6.3, 9.7), self._shake[k])) / 3**0.5
                 for k in range(3)]
        yaw = self.yaw0 + self._waves(t, self._pan) + shake[0]
        pitch = -0.2 + self._waves(t, self._tilt) + shake[1]
        roll = self._waves(t, self._roll) + shake[2]
        R = _rot_batch(2, yaw) @ _R_VEH_CAM @ _rot_batch(0, pitch) @ _rot_batch(2, roll)
        return make_se3(R, self._position(t))


def _rot_batch(axis: int, angles: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by ``angles`` (N,) radians about one axis (as :func:`_rot`)."""
    c, s = np.cos(angles), np.sin(angles)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.zeros((len(angles), 3, 3))
    R[:, axis, axis] = 1.0
    R[:, i, i], R[:, i, j], R[:, j, i], R[:, j, j] = c, -s, s, c
    return R
