"""The ``Sequence`` every loader returns, and image reading with clear errors."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mono_metric.camera import Camera
from mono_metric.errors import InputError
from mono_metric.types import Frame, Trajectory


class Sequence(ABC):
    """A random-access sequence of :class:`Frame` sharing one camera; frames are loaded lazily.

    Subclasses set ``name``, ``camera``, ``timestamps``, optionally ``gt`` (a :class:`Trajectory`
    with one pose per frame, or for the first ``len(gt)`` frames when the ground truth ends early),
    ``gt_note`` (what was done with partial ground truth, printed by the CLI) and ``distortion`` (OpenCV coefficients of the raw frames, undistorted
    by :class:`mono_metric.undistort.CameraAdjusted`), and implement :meth:`_load`.
    """

    name: str
    camera: Camera
    timestamps: np.ndarray
    gt: Trajectory | None = None
    gt_note: str | None = None
    distortion: tuple[float, ...] | None = None

    def gt_mesh(self):
        """Ground-truth surface as an Open3D ``TriangleMesh`` in the world frame of ``gt``, if known."""
        return None

    def __len__(self) -> int:
        return len(self.timestamps)

    def __getitem__(self, index: int) -> Frame:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range for {self.name} ({n} frames)")
        return self._load(index % n)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    @abstractmethod
    def _load(self, index: int) -> Frame:
        """Load frame ``index`` (0 <= index < len(self))."""

    def __repr__(self) -> str:
        cam = self.camera
        return (f"{type(self).__name__}({self.name!r}, {len(self)} frames, {cam.width}x{cam.height}, "
                f"fx={cam.fx:.1f}, gt={'yes' if self.gt is not None else 'no'})")


def select(n: int, stride: int = 1, start: int = 0, max_frames: int | None = None) -> np.ndarray:
    """Indices ``start, start+stride, ...`` of ``n`` items, at most ``max_frames`` of them."""
    if stride < 1 or start < 0:
        raise InputError(f"--stride must be >= 1 and start >= 0, got stride {stride}, start {start}")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {max_frames}")
    idx = np.arange(start, n, stride)
    return idx[:max_frames] if max_frames is not None else idx


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; greyscale becomes 3 equal channels.

    Raises:
        InputError: the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"image {path} cannot be decoded (corrupt or not an image); replace or remove it")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


def read_depth_png(path: str | Path, scale: float) -> np.ndarray:
    """Read a 16-bit depth PNG as float32 metres (value / ``scale``); 0 stays 0 (invalid)."""
    path = Path(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if raw is None or raw.ndim != 2:
        raise InputError(f"depth image {path} is missing or not a single-channel 16-bit PNG")
    return raw.astype(np.float32) / np.float32(scale)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file."""
    img = read_rgb(path)
    return img.shape[1], img.shape[0]
