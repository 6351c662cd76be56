"""Lens distortion (OpenCV radial-tangential model): undistort frames once, before depth and tracking.

Coefficients follow OpenCV's order ``k1, k2, p1, p2[, k3[, k4, k5, k6]]``. The undistorted image keeps
the camera matrix and size of the distorted one, so the pinhole :class:`Camera` of a sequence stays
valid; the maps are computed once per camera and each frame costs one ``cv2.remap``.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from mono_metric.camera import Camera, check_distortion
from mono_metric.datasets.base import Sequence
from mono_metric.errors import InputError
from mono_metric.types import Frame


def undistort_points(uv: np.ndarray, camera: Camera, coeffs) -> np.ndarray:
    """Pinhole pixel coordinates of distorted pixels.

    Args:
        uv: (N, 2) pixel coordinates in the distorted image.
        camera: intrinsics shared by the distorted and the pinhole image.
        coeffs: OpenCV distortion coefficients.

    Returns:
        (N, 2) pixel coordinates in the undistorted (pinhole) image.
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
    d = check_distortion(coeffs)
    if d is None:
        return uv.reshape(-1, 2).copy()
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
    return cv2.undistortPoints(uv, camera.K, np.array(d), R=None, P=camera.K, criteria=crit).reshape(-1, 2)


def distortion_warning(camera: Camera, coeffs, valid_fraction: float) -> str | None:
    """A sentence when ``coeffs`` look absurd for ``camera``, else None.

    Absurd: the radial model folds back (r_distorted stops growing with r) inside the image, or the
    undistorted image keeps under 70 % of its pixels (real lenses, even wide ones, keep more).
    """
    d = np.zeros(8)
    d[:len(coeffs)] = coeffs
    k1, k2, _, _, k3, k4, k5, k6 = d
    corner = np.hypot(max(camera.cx, camera.width - 1 - camera.cx) / camera.fx,
                      max(camera.cy, camera.height - 1 - camera.cy) / camera.fy)
    r = np.linspace(0.0, corner, 200)
    r2 = r * r
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    folds = bool(np.any(np.diff(r * radial) <= 0)) or not np.all(np.isfinite(radial))
    if not folds and valid_fraction >= 0.7:
        return None
    why = "the radial model folds back inside the image" if folds else \
        f"undistortion keeps only {100 * valid_fraction:.0f} % of the image"
    return (f"distortion {list(coeffs)} looks wrong for a {camera.width}x{camera.height} image with fx {camera.fx:.1f} "
            f"({why}); check the coefficients (OpenCV order k1 k2 p1 p2 k3) and that they belong to these intrinsics")


class Undistorter:
    """Precomputed remap from a distorted image to the pinhole image of the same camera matrix.

    Args:
        camera: intrinsics (and size) of the distorted frames.
        coeffs: OpenCV distortion coefficients.
    """

    def __init__(self, camera: Camera, coeffs):
        d = check_distortion(coeffs)
        if d is None:
            raise InputError("Undistorter needs non-zero distortion coefficients")
        self.camera, self.coeffs = camera, d
        size = (camera.width, camera.height)
        self._map_x, self._map_y = cv2.initUndistortRectifyMap(camera.K, np.array(d), None, camera.K, size,
                                                               cv2.CV_32FC1)
        inside = ((self._map_x >= 0) & (self._map_x <= camera.width - 1)
                  & (self._map_y >= 0) & (self._map_y <= camera.height - 1))
        self.valid_mask = inside  # (H, W) pixels whose source lies inside the distorted image
        self.warning = distortion_warning(camera, d, float(inside.mean()))

    def image(self, image: np.ndarray) -> np.ndarray:
        """(H, W[, C]) image -> undistorted (bilinear; outside the source becomes 0)."""
        self.camera.check_image(image, "frame to undistort")
        return cv2.remap(image, self._map_x, self._map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def depth(self, depth_m: np.ndarray) -> np.ndarray:
        """(H, W) depth -> undistorted (nearest neighbour, so no depth is blended across edges)."""
        self.camera.check_image(depth_m, "depth to undistort")
        return cv2.remap(depth_m, self._map_x, self._map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)

    def frame(self, frame: Frame) -> Frame:
        depth = None if frame.depth_m is None else self.depth(frame.depth_m)
        return replace(frame, image=self.image(frame.image), depth_m=depth)


class CameraAdjusted(Sequence):
    """A sequence seen through corrected intrinsics: undistorted frames and/or a replaced camera.

    Args:
        base: the raw sequence (its ``distortion`` attribute holds the coefficients, if any).
        undistort: remap frames to the pinhole model when there are coefficients.
        distortion: coefficients replacing ``base.distortion`` (e.g. from a config).
        camera: replace the intrinsics (e.g. a self-calibrated focal length); same image size.
    """

    def __init__(self, base: Sequence, undistort: bool = True, distortion=None, camera: Camera | None = None):
        self.base = base
        given = base.distortion if distortion is None else distortion
        coeffs = check_distortion(given, f"{base.name} distortion")
        self.undistorter = Undistorter(base.camera, coeffs) if undistort and coeffs is not None else None
        if camera is not None and (camera.width, camera.height) != (base.camera.width, base.camera.height):
            raise InputError(f"replacement camera is {camera.width}x{camera.height}, frames of {base.name} are "
                             f"{base.camera.width}x{base.camera.height}")
        self.camera = camera or base.camera
        self.distortion = None if self.undistorter is not None else coeffs
        self.name, self.timestamps, self.gt = base.name, base.timestamps, base.gt

    def gt_mesh(self):
        return self.base.gt_mesh()

    def _load(self, index: int) -> Frame:
        frame = self.base[index]
        if self.undistorter is not None:
            frame = self.undistorter.frame(frame)
        return replace(frame, camera=self.camera)
