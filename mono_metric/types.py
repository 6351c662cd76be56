"""Data types shared by every part of the library: ``Frame``, ``Trajectory`` and the odometry's
``TrackResult`` and ``Keyframe``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mono_metric.camera import Camera
from mono_metric.errors import InputError
from mono_metric.geometry import check_poses, make_se3, quat_to_rotmat, rotmat_to_quat


@dataclass
class Frame:
    """One image of a sequence, as every dataset loader yields it.

    Attributes:
        index: position in the sequence (0-based, after stride).
        timestamp: seconds.
        image: (H, W, 3) uint8 RGB.
        camera: intrinsics of ``image``.
        depth_m: optional (H, W) float32 ground-truth depth in metres, 0 where unknown.
        T_world_cam: optional (4, 4) ground-truth pose.
        depth_timestamp: seconds at which ``depth_m`` was taken, where a sensor's depth stream is not
            synchronised with its colour stream (TUM); None: taken with the image.
    """

    index: int
    timestamp: float
    image: np.ndarray
    camera: Camera
    depth_m: np.ndarray | None = None
    T_world_cam: np.ndarray | None = None
    depth_timestamp: float | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise InputError(f"frame {self.index}: image must be HxWx3 uint8 RGB, got "
                             f"{self.image.shape} {self.image.dtype}")
        self.camera.check_image(self.image, f"frame {self.index} image")
        if self.depth_m is not None and self.depth_m.shape != self.image.shape[:2]:
            raise InputError(f"frame {self.index}: depth {self.depth_m.shape} does not match image "
                             f"{self.image.shape[:2]}")


class Trajectory:
    """Timestamped camera poses ``T_world_cam``; never modified in place by the library.

    Args:
        timestamps: (N,) seconds, strictly increasing.
        T_world_cam: (N, 4, 4) rigid transforms.
    """

    def __init__(self, timestamps: np.ndarray, T_world_cam: np.ndarray):
        self.timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        self.T_world_cam = check_poses(T_world_cam, "T_world_cam")
        if self.timestamps.shape[0] != self.T_world_cam.shape[0]:
            raise ValueError(f"{self.timestamps.shape[0]} timestamps for {self.T_world_cam.shape[0]} poses")
        if np.any(np.diff(self.timestamps) <= 0):
            raise ValueError("trajectory timestamps must be strictly increasing")

    def __len__(self) -> int:
        return self.T_world_cam.shape[0]

    def __getitem__(self, idx) -> "Trajectory":
        idx = np.arange(len(self))[idx]
        idx = np.atleast_1d(idx)
        return Trajectory(self.timestamps[idx], self.T_world_cam[idx])

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) camera centres in the world frame (metres)."""
        return self.T_world_cam[:, :3, 3]

    def path_length_m(self) -> float:
        """Sum of distances between consecutive camera centres."""
        return float(np.linalg.norm(np.diff(self.positions, axis=0), axis=1).sum())

    def transformed(self, T_new_world: np.ndarray) -> "Trajectory":
        """The same trajectory expressed in another world frame."""
        return Trajectory(self.timestamps, np.asarray(T_new_world) @ self.T_world_cam)

    # ------------------------------------------------------------------ KITTI format
    @classmethod
    def read_kitti(cls, path: str | Path, timestamps: np.ndarray | None = None) -> "Trajectory":
        """Read 12 numbers a line (row-major 3x4 ``T_world_cam``); timestamps default to 0, 1, 2, ..."""
        rows = _read_numeric_rows(path, 12, "KITTI poses (12 numbers a line)")
        M = rows.reshape(-1, 3, 4)
        R = M[:, :, :3]
        with np.errstate(all="ignore"):  # huge values overflow: not a rotation either
            err = np.nan_to_num(np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2)), nan=np.inf)
            det = np.linalg.det(R)
        bad = np.flatnonzero((err > ROTATION_TOL) | ~(det > 0))
        if bad.size:
            raise InputError(f"{path}: pose {bad[0] + 1} (of {len(M)}) has a 3x3 block that is not a rotation "
                             f"(|R^T R - I| = {err[bad[0]]:.3g}, det {det[bad[0]]:.3g}); KITTI lines are "
                             "the row-major top 3x4 of T_world_cam")
        T = make_se3(M[:, :, :3], M[:, :, 3])
        ts = np.arange(len(T), dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64)
        if ts.shape[0] != T.shape[0]:
            raise InputError(f"{path}: {T.shape[0]} poses but {ts.shape[0]} timestamps")
        return cls(ts, T)

    def write_kitti(self, path: str | Path) -> None:
        """Write 12 numbers a line (row-major top 3x4 of ``T_world_cam``)."""
        Path(path).write_text(format_kitti(self.T_world_cam))

    # ------------------------------------------------------------------ TUM format
    @classmethod
    def read_tum(cls, path: str | Path) -> "Trajectory":
        """Read ``timestamp tx ty tz qx qy qz qw`` lines; ``#`` comments are skipped."""
        rows = _read_numeric_rows(path, 8, "TUM poses (t tx ty tz qx qy qz qw)")
        norm = np.linalg.norm(rows[:, 4:8], axis=1)
        if (norm < 1e-6).any():
            raise InputError(f"{path}: pose {int(np.argmax(norm < 1e-6)) + 1} has a zero quaternion; TUM lines are "
                             "t tx ty tz qx qy qz qw with a unit quaternion")
        order = np.argsort(rows[:, 0], kind="stable")  # unsorted files are read in time order, as evo does
        rows = rows[order]
        dup = np.flatnonzero(np.diff(rows[:, 0]) <= 0)
        if dup.size:
            raise InputError(f"{path}: timestamp {rows[dup[0], 0]:.6f} appears twice; give one pose per time stamp")
        return cls(rows[:, 0], make_se3(quat_to_rotmat(rows[:, 4:8]), rows[:, 1:4]))

    def write_tum(self, path: str | Path) -> None:
        """Write ``timestamp tx ty tz qx qy qz qw`` lines."""
        Path(path).write_text(format_tum(self.timestamps, self.T_world_cam))

    @classmethod
    def read(cls, path: str | Path, fmt: str) -> "Trajectory":
        """Read a trajectory file in ``fmt`` 'kitti' or 'tum'."""
        if fmt == "kitti":
            return cls.read_kitti(path)
        if fmt == "tum":
            return cls.read_tum(path)
        raise InputError(f"unknown trajectory format {fmt!r}; use 'kitti' or 'tum'")


@dataclass
class TrackResult:
    """Outcome of one ``track`` call.

    Attributes:
        T_world_cam: (4, 4) estimated pose.
        status: 'init' (first frame), 'ok', 'lost' (pose extrapolated with constant velocity),
            'reinitialised' (the first frame tracked again after lost ones: re-anchored on the last
            good frame's keyframe points, or on a keyframe made while lost) or 'relocalised' (a lost
            frame placed by matching it against the map's keyframes; it becomes a keyframe).
        inliers: PnP inlier count (0 for 'init'/'lost').
        tracked: keyframe corners tracked into this frame.
        keyframe: this frame became a keyframe.
        depth_m: (H, W) metric depth used for the keyframe (None for other frames).
        loop: the loop closed on this keyframe (None: none); ``T_world_cam`` is then the corrected pose.
    """

    T_world_cam: np.ndarray
    status: str
    inliers: int
    tracked: int
    keyframe: bool = False
    depth_m: np.ndarray | None = None
    loop: "LoopClosure | None" = None


@dataclass
class LoopClosure:
    """A loop the back-end verified and closed (pose graph optimised).

    Attributes:
        keyframe: id of the new keyframe (index into the map's keyframes).
        matched_keyframe: id of the older keyframe it was registered to.
        inliers: PnP-RANSAC inliers of the registration.
        correction_m: how far the optimisation moved the new keyframe (metres).
        optimise_s: seconds spent in the pose-graph optimisation.
    """

    keyframe: int
    matched_keyframe: int
    inliers: int
    correction_m: float
    optimise_s: float


@dataclass
class Keyframe:
    """A frame whose corners carry metric 3D points.

    Attributes:
        index: frame number in the stream.
        timestamp: seconds.
        T_world_cam: (4, 4) pose.
        xyz_world: (N, 3) corner points in metres.
        median_depth_m: median depth of the corners (sets the distance threshold).
        depth_scale: factor the local bundle adjustment applies to this keyframe's network depth
            (its current estimate; 1 without the adjustment). ``xyz_world`` carries it.
        tracked_scale: the factor its points had while frames were tracked against them.
    """

    index: int
    timestamp: float
    T_world_cam: np.ndarray
    xyz_world: np.ndarray = field(repr=False)
    median_depth_m: float = 0.0
    depth_scale: float = 1.0
    tracked_scale: float = 1.0


ROTATION_TOL = 1e-2  # max |R^T R - I| of a KITTI rotation block (files keep 6-9 digits)


def format_kitti(T_world_cam: np.ndarray) -> str:
    """KITTI pose lines (12 numbers, row-major top 3x4) of (N, 4, 4) poses, newline-terminated."""
    rows = np.asarray(T_world_cam)[:, :3, :].reshape(-1, 12)
    return "".join(" ".join(f"{v:.9e}" for v in row) + "\n" for row in rows)


def format_tum(timestamps: np.ndarray, T_world_cam: np.ndarray) -> str:
    """TUM lines ``t tx ty tz qx qy qz qw`` of (N,) timestamps and (N, 4, 4) poses, newline-terminated."""
    T = np.asarray(T_world_cam)
    q = rotmat_to_quat(T[:, :3, :3])
    return "".join(f"{t:.6f} " + " ".join(f"{v:.9f}" for v in (*T[i, :3, 3], *q[i])) + "\n"
                   for i, t in enumerate(np.asarray(timestamps, dtype=np.float64).reshape(-1)))


def _read_numeric_rows(path: str | Path, ncols: int, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"trajectory file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"trajectory file {path} is not text (byte {err.start} is not UTF-8); expected {what}") from err
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            vals = [float(v) for v in line.replace(",", " ").split()]
        except ValueError as err:
            raise InputError(f"{path}:{lineno}: not numbers; expected {what}") from err
        if len(vals) != ncols or not np.isfinite(vals).all():
            raise InputError(f"{path}:{lineno}: expected {what}, got {len(vals)} values")
        rows.append(vals)
    if not rows:
        raise InputError(f"trajectory file {path} holds no poses")
    return np.asarray(rows, dtype=np.float64)
