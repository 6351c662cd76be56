"""EuRoC MAV (ASL folder layout): ``mav0/cam0/{data/*.png, data.csv, sensor.yaml}`` and
``mav0/state_groundtruth_estimate0/data.csv``.

Timestamps are integer nanoseconds (seconds here). The ground truth gives the body (IMU) pose
``T_world_body`` at 200 Hz; the camera's pose is ``T_world_body @ T_body_cam`` with ``T_BS`` of the camera's
``sensor.yaml``, taken at the nearest ground-truth stamp.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mono_metric.camera import Camera, read_calibration_yaml, read_camera_file
from mono_metric.datasets.base import Sequence, read_rgb, select
from mono_metric.datasets.tum import associate
from mono_metric.errors import InputError
from mono_metric.geometry import make_se3, quat_to_rotmat
from mono_metric.types import Frame, Trajectory

NS = 1e-9


def find_mav0(path: Path) -> Path:
    """The ``mav0`` folder of a EuRoC sequence given it, its parent, or a camera folder inside it."""
    for cand in (path, path / "mav0", path.parent, path.parent.parent):
        if cand.name == "mav0" and cand.is_dir():
            return cand
    if (path / "mav0").is_dir():
        return path / "mav0"
    raise InputError(f"{path} is not a EuRoC sequence: expected a mav0/ folder with cam0/data.csv")


def read_csv_rows(path: Path, min_cols: int, what: str) -> list[list[str]]:
    """Comma-separated rows of a EuRoC ``data.csv`` (``#`` header skipped), each with >= ``min_cols`` fields."""
    if not path.is_file():
        raise InputError(f"EuRoC {what} {path} does not exist")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < min_cols:
            raise InputError(f"{path} line {n}: expected {min_cols} comma-separated fields, got {line[:60]!r}")
        rows.append(parts)
    return rows


def read_body_poses(path: Path) -> Trajectory:
    """``state_groundtruth_estimate0/data.csv`` (ns, p x y z, q w x y z, ...) as ``T_world_body`` poses."""
    rows = read_csv_rows(path, 8, "ground truth")
    try:
        stamps = np.array([int(r[0]) for r in rows], dtype=np.int64) * NS
        vals = np.array([[float(v) for v in r[1:8]] for r in rows])
    except ValueError as err:
        raise InputError(f"{path}: ground-truth fields must be numbers ({err})") from err
    q_xyzw = vals[:, [4, 5, 6, 3]]  # the file stores w, x, y, z
    return Trajectory(stamps, make_se3(quat_to_rotmat(q_xyzw), vals[:, :3]))


def read_T_body_sensor(sensor_yaml: Path) -> np.ndarray:
    """(4, 4) ``T_BS`` (sensor to body) of a EuRoC ``sensor.yaml``."""
    data = read_calibration_yaml(sensor_yaml, "EuRoC sensor file")
    T = data.get("T_BS")
    values = T.get("data") if isinstance(T, dict) else T
    try:
        T = np.asarray(values, dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError) as err:
        raise InputError(f"{sensor_yaml}: T_BS must hold 16 numbers (data: [...]), got {values!r}") from err
    if not np.isfinite(T).all() or not np.allclose(T[3], [0, 0, 0, 1]):
        raise InputError(f"{sensor_yaml}: T_BS must be a finite rigid 4x4 transform (last row 0 0 0 1)")
    return T


class EurocMav(Sequence):
    """A EuRoC MAV sequence (monocular: one camera); greyscale frames become 3-channel images.

    Args:
        path: the sequence folder holding ``mav0`` (or ``mav0`` itself).
        camera: camera folder under ``mav0`` ('cam0' or 'cam1').
        max_diff_s: largest gap between a frame and its ground-truth stamp (the GT runs at 200 Hz).
        stride, start, max_frames: frame selection. Frames without ground truth within ``max_diff_s``
            (before the motion-capture recording starts or after it ends) are dropped when ground
            truth exists, as in the TUM loader (``gt_note`` says how many).
    """

    def __init__(self, path: str | Path, camera: str = "cam0", max_diff_s: float = 0.005, stride: int = 1,
                 start: int = 0, max_frames: int | None = None):
        mav0 = find_mav0(Path(path))
        cam_dir = mav0 / camera
        rows = read_csv_rows(cam_dir / "data.csv", 2, "image list")
        try:
            stamps = np.array([int(r[0]) for r in rows], dtype=np.int64) * NS
        except ValueError as err:
            raise InputError(f"{cam_dir / 'data.csv'}: timestamps must be integer nanoseconds ({err})") from err
        files = [cam_dir / "data" / r[1] for r in rows]
        if not files:
            raise InputError(f"{cam_dir / 'data.csv'} lists no frames")
        first = read_rgb(files[0])
        intr = read_camera_file(cam_dir / "sensor.yaml")
        self.camera = Camera.from_yaml(cam_dir / "sensor.yaml", first.shape[1], first.shape[0])
        self.camera_note = f"intrinsics from {cam_dir / 'sensor.yaml'}"
        self.distortion = intr["distortion"]
        keep = np.ones(len(files), bool)
        self.gt, self.gt_note = None, None
        gt_file = mav0 / "state_groundtruth_estimate0" / "data.csv"
        if gt_file.is_file():
            body = read_body_poses(gt_file)
            order = np.argsort(body.timestamps)
            body = body[order]
            j = associate(stamps, body.timestamps, max_diff_s)
            keep = j >= 0
            if not keep.any():
                raise InputError(f"no frame of {cam_dir} lies within {max_diff_s} s of a ground-truth stamp in "
                                 f"{gt_file}; are both from the same sequence?")
            T_world_cam = body.T_world_cam[np.maximum(j, 0)] @ read_T_body_sensor(cam_dir / "sensor.yaml")
            if (~keep).any():
                self.gt_note = (f"{int((~keep).sum())} of {len(files)} frames have no ground truth within "
                                f"{max_diff_s * 1000:g} ms and are left out")
        rows_kept = np.flatnonzero(keep)[select(int(keep.sum()), stride, start, max_frames)]
        self.files = [files[i] for i in rows_kept]
        self.timestamps = stamps[rows_kept]
        if gt_file.is_file():
            self.gt = Trajectory(self.timestamps, T_world_cam[rows_kept])
        self.name = f"euroc_{mav0.resolve().parent.name}_{camera}"

    def _load(self, index: int) -> Frame:
        gt = None if self.gt is None else self.gt.T_world_cam[index]
        return Frame(index, float(self.timestamps[index]), read_rgb(self.files[index]), self.camera, None, gt)


def looks_like_euroc(path: Path) -> bool:
    return (path / "mav0" / "cam0" / "data.csv").is_file() or (path.name == "mav0" and (path / "cam0" / "data.csv").is_file())
