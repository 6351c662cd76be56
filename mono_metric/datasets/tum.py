"""TUM RGB-D: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt``; depth PNGs are uint16 / 5000."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mono_metric.camera import Camera, check_distortion
from mono_metric.datasets.base import Sequence, image_size, read_depth_png, read_rgb, select
from mono_metric.errors import InputError
from mono_metric.types import Frame, Trajectory

# Calibrated intrinsics published with the dataset (fx fy cx cy), keyed by the sensor in the folder name.
TUM_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
# Published radial-tangential distortion of the RGB cameras (OpenCV order k1 k2 p1 p2 k3); freiburg3
# images were already undistorted by the dataset authors.
TUM_DISTORTION = {
    "freiburg1": (0.2624, -0.9531, -0.0054, 0.0026, 1.1633),
    "freiburg2": (0.2312, -0.7849, -0.0033, -0.0001, 0.9172),
}
DEFAULT_INTRINSICS = (525.0, 525.0, 319.5, 239.5)
DEPTH_SCALE = 5000.0


def read_file_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """Timestamps and relative file names of a TUM ``rgb.txt``/``depth.txt``."""
    if not path.is_file():
        raise InputError(f"TUM list {path} does not exist")
    stamps, names = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.lstrip().startswith("#"):
            stamps.append(float(parts[0]))
            names.append(parts[1])
    return np.asarray(stamps), names


def associate(a: np.ndarray, b: np.ndarray, max_diff_s: float) -> np.ndarray:
    """For each stamp in ``a`` the index of the nearest stamp in sorted ``b``, or -1 if further than ``max_diff_s``."""
    if len(b) == 0:
        return np.full(len(a), -1)
    pos = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(a), int)
    left = np.maximum(pos - 1, 0)
    nearest = np.where(np.abs(b[left] - a) <= np.abs(b[pos] - a), left, pos)
    return np.where(np.abs(b[nearest] - a) <= max_diff_s, nearest, -1)


def interpolate_poses(gt: Trajectory, stamps: np.ndarray, max_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Poses at ``stamps`` from the nearest ground-truth sample; returns (poses, valid mask)."""
    j = associate(stamps, gt.timestamps, max_gap_s)
    return gt.T_world_cam[np.maximum(j, 0)], j >= 0


class TumRGBD(Sequence):
    """A TUM RGB-D sequence folder.

    Args:
        path: folder with ``rgb.txt`` (and ``depth.txt``, ``groundtruth.txt`` when present).
        intrinsics: (fx, fy, cx, cy); default from ``intrinsics.txt`` in the folder, else by the
            freiburg sensor named in the folder name ('freiburg1' or 'fr1'), else the dataset's default
            525/319.5/239.5.
        distortion: OpenCV coefficients (k1, k2, p1, p2[, k3]) of the RGB frames; default those on the
            ``intrinsics.txt`` line (``fx fy cx cy d0 d1 d2 d3 d4``), else the published ones of the
            freiburg sensor when its intrinsics are used. ``()`` means none. Frames are undistorted by
            the pipeline (``camera.undistort``).
        max_diff_s: largest timestamp gap for RGB-depth and RGB-pose association.
        missing: 'error' (default) if a listed image file is absent, or 'skip' to drop such frames.
        stride, start, max_frames: frame selection after association.
    """

    def __init__(self, path: str | Path, intrinsics: tuple[float, float, float, float] | None = None,
                 distortion: tuple[float, ...] | None = None, max_diff_s: float = 0.02, missing: str = "error",
                 stride: int = 1, start: int = 0, max_frames: int | None = None):
        root = Path(path)
        if missing not in ("error", "skip"):
            raise InputError(f"missing must be 'error' or 'skip', got {missing!r}")
        rgb_t, rgb_f = read_file_list(root / "rgb.txt")
        has_depth = (root / "depth.txt").is_file()
        depth_t, depth_f = read_file_list(root / "depth.txt") if has_depth else (np.zeros(0), [])
        jd = associate(rgb_t, depth_t, max_diff_s) if has_depth else np.full(len(rgb_t), -1)
        keep = jd >= 0 if has_depth else np.ones(len(rgb_t), bool)
        present = np.array([(root / f).is_file() for f in rgb_f], bool)
        if has_depth:
            present &= np.array([j < 0 or (root / depth_f[j]).is_file() for j in jd], bool)
        if missing == "error" and not present[keep].all():
            first = rgb_f[int(np.flatnonzero(keep & ~present)[0])]
            raise InputError(f"{root}: {int((keep & ~present).sum())} listed frames are missing (first: {first}); "
                             "restore them or drop them with --skip-missing (missing='skip')")
        keep &= present
        gt_file = root / "groundtruth.txt"
        gt = Trajectory.read_tum(gt_file) if gt_file.is_file() else None
        if gt is not None:
            poses, has_pose = interpolate_poses(gt, rgb_t, max_diff_s)
            keep &= has_pose
        rows = np.flatnonzero(keep)[select(int(keep.sum()), stride, start, max_frames)]
        if len(rows) == 0:
            raise InputError(f"{root}: no frames left after association and selection")
        self.rgb_files = [root / rgb_f[i] for i in rows]
        self.depth_files = [root / depth_f[jd[i]] for i in rows] if has_depth else None
        self.depth_timestamps = depth_t[jd[rows]] if has_depth else None  # the Kinect's depth is not synchronised
        self.timestamps = rgb_t[rows]
        self.gt = Trajectory(self.timestamps, poses[rows]) if gt is not None else None
        width, height = image_size(self.rgb_files[0])
        *k, dist = self._intrinsics(root, intrinsics)
        self.camera = Camera(*k, width, height)
        self.distortion = check_distortion(dist if distortion is None else (tuple(distortion) or None),
                                           f"{root} distortion")
        self.name = root.name if root.name.startswith("tum") else f"tum_{root.name}"

    @staticmethod
    def _intrinsics(root: Path, given) -> tuple:
        """(fx, fy, cx, cy, distortion or None)."""
        match = re.search(r"(?:freiburg|fr)([123])", root.name)
        sensor = f"freiburg{match.group(1)}" if match else None
        if given is not None:
            return (*(float(v) for v in given), None)
        f = root / "intrinsics.txt"
        if f.is_file():
            lines = [l for l in f.read_text().splitlines() if l.strip() and l.strip()[0] in "0123456789.-"]
            if lines:
                cam = Camera.from_tum_line(lines[0])
                extra = [float(v) for v in lines[0].replace(",", " ").split()[4:]]
                k = (cam.fx, cam.fy, cam.cx, cam.cy)
                if not extra and sensor and np.allclose(k, TUM_INTRINSICS[sensor]):  # the published calibration
                    return (*k, TUM_DISTORTION.get(sensor))
                return (*k, tuple(extra) if extra else None)
        if sensor:
            return (*TUM_INTRINSICS[sensor], TUM_DISTORTION.get(sensor))
        return (*DEFAULT_INTRINSICS, None)

    def _load(self, index: int) -> Frame:
        depth = read_depth_png(self.depth_files[index], DEPTH_SCALE) if self.depth_files else None
        gt = None if self.gt is None else self.gt.T_world_cam[index]
        depth_t = None if self.depth_timestamps is None else float(self.depth_timestamps[index])
        return Frame(index, float(self.timestamps[index]), read_rgb(self.rgb_files[index]), self.camera, depth, gt,
                     depth_t)


def looks_like_tum(path: Path) -> bool:
    return (path / "rgb.txt").is_file()
