"""Pinhole camera model: intrinsics, projection and back-projection.

Conventions: OpenCV camera frame (x right, y down, z forward), pixel centres at integer
coordinates, depth is the z coordinate in metres (not the ray length).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from mono_metric.errors import InputError, read_yaml_mapping


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels.

    Attributes:
        fx, fy: focal lengths in pixels (> 0).
        cx, cy: principal point in pixels, inside the image.
        width, height: image size in pixels (> 0).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(float(v)) for v in values):
            raise InputError(f"camera intrinsics must be finite numbers, got fx,fy,cx,cy={values}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InputError(f"camera image size must be positive, got {self.width}x{self.height}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(
                f"camera focal lengths must be positive pixels, got fx={self.fx}, fy={self.fy}; "
                "check the calibration file (focal length in pixels, not millimetres)"
            )
        if not (0 <= self.cx <= self.width and 0 <= self.cy <= self.height):
            raise InputError(
                f"principal point ({self.cx}, {self.cy}) lies outside the {self.width}x{self.height} "
                "image; the intrinsics do not belong to this image size"
            )
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> "Camera":
        """Build from a 3x3 intrinsic matrix."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise InputError(f"K must be 3x3, got shape {K.shape}")
        return cls(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height)

    @classmethod
    def from_kitti_P(cls, P: np.ndarray | list[float], width: int, height: int) -> "Camera":
        """Build from a KITTI 3x4 projection matrix (12 numbers, row-major)."""
        P = np.asarray(P, dtype=np.float64).reshape(-1)
        if P.size != 12:
            raise InputError(f"a KITTI P matrix has 12 numbers, got {P.size}")
        return cls.from_K(P.reshape(3, 4)[:, :3], width, height)

    @classmethod
    def from_tum_line(cls, line: str, width: int = 640, height: int = 480) -> "Camera":
        """Build from a TUM-style line ``fx fy cx cy [d0 ...]`` (distortion ignored here)."""
        try:
            nums = [float(v) for v in line.replace(",", " ").split()]
        except ValueError as err:
            raise InputError(f"cannot read intrinsics line {line!r}: expected 'fx fy cx cy'") from err
        if len(nums) < 4:
            raise InputError(f"intrinsics line {line!r} needs at least 4 numbers: fx fy cx cy")
        return cls(nums[0], nums[1], nums[2], nums[3], width, height)

    @classmethod
    def from_fov(cls, hfov_deg: float, width: int, height: int) -> "Camera":
        """Square pixels, principal point at the image centre, from a horizontal field of view."""
        if not 1.0 < hfov_deg < 179.0:
            raise InputError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Camera":
        """Read ``fx, fy, cx, cy, width, height`` (or ``hfov_deg, width, height``) from YAML."""
        data = read_yaml_mapping(path, "intrinsics file", "fx, fy, cx, cy, width, height")
        try:
            if "hfov_deg" in data:
                return cls.from_fov(float(data["hfov_deg"]), int(data["width"]), int(data["height"]))
            return cls(*(float(data[k]) for k in ("fx", "fy", "cx", "cy")),
                       int(data["width"]), int(data["height"]))
        except KeyError as err:
            raise InputError(f"intrinsics file {path} lacks key {err}; needs fx, fy, cx, cy, width, height") from err
        except (TypeError, ValueError, OverflowError) as err:
            if isinstance(err, InputError):
                raise
            raise InputError(f"intrinsics file {path}: fx, fy, cx, cy, width and height must be numbers ({err})") from err

    def to_yaml(self, path: str | Path) -> None:
        """Write the intrinsics in the format :meth:`from_yaml` reads."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def to_dict(self) -> dict:
        return {"fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx), "cy": float(self.cy),
                "width": self.width, "height": self.height}

    # ----------------------------------------------------------------- derived cameras
    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view in degrees."""
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))

    def scaled(self, sx: float, sy: float | None = None) -> "Camera":
        """Camera of the image resized by (sx, sy); pixel centres map as u' = (u + 0.5) * s - 0.5."""
        sy = sx if sy is None else sy
        w, h = round(self.width * sx), round(self.height * sy)
        return Camera(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, w, h)

    def resized(self, width: int, height: int) -> "Camera":
        """Camera of the image resized to exactly ``width`` x ``height``."""
        cam = self.scaled(width / self.width, height / self.height)
        return replace(cam, width=width, height=height)

    def cropped(self, left: int, top: int, width: int, height: int) -> "Camera":
        """Camera of the crop ``[top:top+height, left:left+width]``."""
        return Camera(self.fx, self.fy, self.cx - left, self.cy - top, width, height)

    # ----------------------------------------------------------------- geometry
    def project(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project camera-frame points to pixels.

        Args:
            points_cam: (N, 3) points in metres, camera frame.

        Returns:
            uv: (N, 2) pixel coordinates (NaN where z <= 0).
            z: (N,) depth in metres.
        """
        points_cam = _check_points(points_cam)
        z = points_cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * points_cam[:, 0] / z + self.cx
            v = self.fy * points_cam[:, 1] / z + self.cy
        uv = np.stack([u, v], axis=1)
        uv[z <= 0] = np.nan
        return uv, z

    def backproject(self, uv: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """Lift pixels with z-depth to camera-frame points.

        Args:
            uv: (N, 2) pixel coordinates.
            depth_m: (N,) z-depth in metres.

        Returns:
            (N, 3) points in metres, camera frame.
        """
        uv = np.asarray(uv, dtype=np.float64)
        depth_m = np.asarray(depth_m, dtype=np.float64).reshape(-1)
        if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] != depth_m.shape[0]:
            raise ValueError(f"expected uv (N, 2) and depth (N,), got {uv.shape} and {depth_m.shape}")
        x = (uv[:, 0] - self.cx) / self.fx * depth_m
        y = (uv[:, 1] - self.cy) / self.fy * depth_m
        return np.stack([x, y, depth_m], axis=1)

    def backproject_depth(self, depth_m: np.ndarray) -> np.ndarray:
        """Lift a whole depth map to a (H, W, 3) camera-frame point map (metres)."""
        depth_m = np.asarray(depth_m, dtype=np.float64)
        if depth_m.shape != (self.height, self.width):
            raise ValueError(f"depth map must be {self.height}x{self.width}, got {depth_m.shape}")
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        return np.stack([(u - self.cx) / self.fx * depth_m, (v - self.cy) / self.fy * depth_m, depth_m], axis=-1)

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) camera-frame ray directions with z = 1 for every pixel centre."""
        return self.backproject_depth(np.ones((self.height, self.width)))

    def check_image(self, image: np.ndarray, name: str = "image") -> None:
        """Raise :class:`InputError` if ``image`` does not have this camera's size."""
        if image.shape[:2] != (self.height, self.width):
            raise InputError(
                f"{name} is {image.shape[1]}x{image.shape[0]} but the camera is {self.width}x{self.height}; "
                "give intrinsics for this image size (or rescale them with Camera.resized)"
            )


COEFF_COUNTS = (4, 5, 8)


def check_distortion(coeffs, source: str = "distortion") -> tuple[float, ...] | None:
    """Validated coefficients as a tuple of floats, or None when absent or all zero.

    Raises:
        InputError: wrong count or non-finite values.
    """
    if coeffs is None:
        return None
    try:
        d = np.asarray(coeffs, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InputError(f"{source}: distortion coefficients must be numbers, got {coeffs!r}") from err
    if d.size not in COEFF_COUNTS or not np.isfinite(d).all():
        raise InputError(f"{source}: expected {'/'.join(map(str, COEFF_COUNTS))} finite OpenCV coefficients "
                         f"k1 k2 p1 p2 [k3 [k4 k5 k6]], got {list(d)}")
    return None if not d.any() else tuple(float(v) for v in d)


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected points of shape (N, 3), got {points.shape}")
    return points
