"""KITTI odometry: ``sequences/NN/{image_0,image_2}``, ``calib.txt``, ``times.txt``, ``poses/NN.txt``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mono_metric.camera import Camera
from mono_metric.datasets.base import Sequence, image_size, read_rgb, select
from mono_metric.datasets.images import IMAGE_EXTENSIONS
from mono_metric.errors import InputError
from mono_metric.types import Frame, Trajectory

_IMAGE_DIRS = {"image_2": "P2", "image_0": "P0", "image_3": "P3", "image_1": "P1"}


def find_kitti_sequence_dir(path: Path, sequence: str | None) -> Path:
    """Resolve a dataset root, a ``sequences`` folder or a sequence folder to ``sequences/NN``."""
    if (path / "calib.txt").is_file():
        return path
    for base in (path / "sequences", path):
        if sequence is not None and (base / sequence / "calib.txt").is_file():
            return base / sequence
    if sequence is None:
        found = sorted(p.parent.name for p in path.glob("sequences/*/calib.txt"))
        if len(found) == 1:
            return path / "sequences" / found[0]
        raise InputError(f"{path} is a KITTI tree with sequences {found}; pick one with --sequence NN (sequence='NN')")
    raise InputError(f"no KITTI sequence {sequence!r} (with calib.txt) under {path}")


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """Projection matrices from ``calib.txt`` (lines 'P0: 12 numbers'; bare lines are P0, P1, ...)."""
    out: dict[str, np.ndarray] = {}
    for i, line in enumerate(l for l in path.read_text().splitlines() if l.strip()):
        key, _, rest = line.partition(":")
        if not rest:
            key, rest = f"P{i}", line
        try:
            vals = np.array([float(v) for v in rest.split()])
        except ValueError as err:
            raise InputError(f"{path}: cannot parse line {line[:40]!r}") from err
        if vals.size == 12:
            out[key.strip()] = vals.reshape(3, 4)
    return out


class KittiOdometry(Sequence):
    """A KITTI odometry sequence; greyscale cameras become 3-channel images.

    Args:
        path: dataset root, its ``sequences`` folder or one sequence folder.
        sequence: two-digit sequence id (needed when ``path`` holds several).
        image_dir: which camera folder; default the first of image_2, image_0, image_3, image_1 present.
        stride, start, max_frames: frame selection.
    """

    def __init__(self, path: str | Path, sequence: str | None = None, image_dir: str | None = None,
                 stride: int = 1, start: int = 0, max_frames: int | None = None):
        root = Path(path)
        seq_dir = find_kitti_sequence_dir(root, sequence)
        sequence = seq_dir.name
        if image_dir is None:
            image_dir = next((d for d in _IMAGE_DIRS if (seq_dir / d).is_dir()), None)
            if image_dir is None:
                raise InputError(f"{seq_dir} has none of the image folders {list(_IMAGE_DIRS)}")
        if image_dir not in _IMAGE_DIRS:
            raise InputError(f"unknown KITTI image folder {image_dir!r}; use one of {list(_IMAGE_DIRS)}")
        files = sorted(p for p in (seq_dir / image_dir).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InputError(f"{seq_dir / image_dir} holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
        calib = read_calib(seq_dir / "calib.txt")
        pkey = _IMAGE_DIRS[image_dir]
        if pkey not in calib:
            raise InputError(f"{seq_dir / 'calib.txt'} has no {pkey} for {image_dir}")
        width, height = image_size(files[0])
        P = calib[pkey]
        self.camera = Camera.from_kitti_P(P, width, height)
        times_file = seq_dir / "times.txt"
        all_ts = np.loadtxt(times_file, ndmin=1) if times_file.is_file() else np.arange(len(files)) * 0.1
        if len(all_ts) < len(files):
            raise InputError(f"{times_file} has {len(all_ts)} lines for {len(files)} images")
        idx = select(len(files), stride, start, max_frames)
        self.files = [files[i] for i in idx]
        self.timestamps = all_ts[idx].astype(np.float64)
        self.name = f"kitti_{sequence}_{image_dir}"
        self.gt = None
        pose_file = _find_pose_file(seq_dir, sequence)
        if pose_file is not None:
            gt = Trajectory.read_kitti(pose_file)
            has_pose = idx < len(gt)
            if len(gt) < len(files):
                self.gt_note = (f"{pose_file} has {len(gt)} poses for {len(files)} images; "
                                + ("all selected frames have one" if has_pose.all() else
                                   f"ground truth covers the first {int(has_pose.sum())} of the {len(idx)} "
                                   "selected frames (evaluated on those)" if has_pose.any() else
                                   "none of the selected frames has one: no evaluation"))
            if has_pose.any():
                # poses/NN.txt gives T_world_cam0; camera i sits at baseline offset P_i[:, 3] / fx.
                T_cam0_cami = np.eye(4)
                T_cam0_cami[0, 3] = -P[0, 3] / P[0, 0]
                n = int(has_pose.sum())  # selected indices ascend, so the frames with poses come first
                self.gt = Trajectory(self.timestamps[:n], gt.T_world_cam[idx[:n]] @ T_cam0_cami)

    def _load(self, index: int) -> Frame:
        gt = None if self.gt is None or index >= len(self.gt) else self.gt.T_world_cam[index]
        return Frame(index, float(self.timestamps[index]), read_rgb(self.files[index]), self.camera, None, gt)


def _find_pose_file(seq_dir: Path, sequence: str) -> Path | None:
    for cand in (seq_dir.parent.parent / "poses" / f"{sequence}.txt", seq_dir / "poses.txt"):
        if cand.is_file():
            return cand
    return None


def looks_like_kitti(path: Path) -> bool:
    return ((path / "calib.txt").is_file() or any(path.glob("sequences/*/calib.txt"))
            or (path.name == "sequences" and any(path.glob("*/calib.txt"))))
