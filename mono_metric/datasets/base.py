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


def _imread(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    try:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise InputError(f"image {path} cannot be decoded (corrupt or not an image); replace or remove it")
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise InputError(f"image {path} is {img.dtype} with shape {img.shape}; give 8- or 16-bit grey, RGB or RGBA")
    return img


def bits_used(img: np.ndarray) -> int:
    """The bit depth a 16-bit image uses: 10, 12, 14 or 16, from its largest value (cameras store 10/12/14-bit
    data in 16-bit files, so scaling by the full 16-bit range would make them nearly black)."""
    top = int(img.max())
    return next((b for b in (10, 12, 14) if top < (1 << b)), 16)


def sixteen_bit_depth(path: str | Path) -> int | None:
    """:func:`bits_used` of a 16-bit image file, None for 8-bit ones."""
    img = _imread(Path(path))
    return bits_used(img) if img.dtype == np.uint16 else None


def read_rgb(path: str | Path, bits: int | None = None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; greyscale becomes 3 equal channels.

    Args:
        path: the image.
        bits: how many bits a 16-bit image uses (values above ``2**bits - 1`` saturate); None: from this
            image's largest value (:func:`bits_used`). A sequence passes one value for all its frames.

    Raises:
        InputError: the file is missing, cannot be decoded or has an unsupported pixel type.
    """
    path = Path(path)
    img = _imread(path)
    if img.dtype == np.uint16:
        shift = (bits or bits_used(img)) - 8
        img = np.minimum(img >> shift, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


def read_depth_png(path: str | Path, scale: float) -> np.ndarray:
    """Read a 16-bit depth PNG as float32 metres (value / ``scale``); 0 stays 0 (invalid)."""
    path = Path(path)
    try:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    except cv2.error:
        raw = None
    if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
        what = "missing or undecodable" if raw is None else f"{raw.dtype} with shape {raw.shape}"
        raise InputError(f"depth image {path} is {what}; depth must be a single-channel 16-bit PNG "
                         f"(value / {scale:g} = metres)")
    return raw.astype(np.float32) / np.float32(scale)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file."""
    img = read_rgb(path)
    return img.shape[1], img.shape[0]
