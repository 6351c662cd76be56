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
    def from_yaml(cls, path: str | Path, width: int | None = None, height: int | None = None) -> "Camera":
        """Read a camera file in any style :func:`read_camera_file` knows.

        Args:
            path: the file.
            width, height: image size to use when the file does not state one (ORB-SLAM2 files often
                do not); a file that states another size is an error.
        """
        data = read_camera_file(path)
        w, h = data.get("width"), data.get("height")
        if w is None or h is None:
            if width is None or height is None:
                raise InputError(f"intrinsics file {path} lacks key 'width'/'height'; needs fx, fy, cx, cy, width, "
                                 "height (or the frames' size)")
            w, h = width, height
        elif width is not None and (w, h) != (width, height):
            raise InputError(f"frames are {width}x{height} but the intrinsics in {path} are for {w}x{h}; "
                             "give intrinsics of this resolution")
        try:
            if "hfov_deg" in data:
                return cls.from_fov(float(data["hfov_deg"]), int(w), int(h))
            return cls(float(data["fx"]), float(data["fy"]), float(data["cx"]), float(data["cy"]), int(w), int(h))
        except KeyError as err:
            raise InputError(f"intrinsics file {path} lacks key {err}; needs fx, fy, cx, cy, width, height") from err
        except (TypeError, ValueError, OverflowError) as err:
            if isinstance(err, InputError):
                raise
            raise InputError(f"intrinsics file {path}: fx, fy, cx, cy, width and height must be numbers "
                             f"({err})") from err

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
_NATIVE_KEYS = "fx, fy, cx, cy, width, height"


def read_camera_file(path: str | Path) -> dict:
    """Pinhole intrinsics from a camera file in one of these styles:

    - this package's YAML: ``fx, fy, cx, cy, width, height`` (or ``hfov_deg, width, height``), optional
      ``distortion: [k1, k2, p1, p2, k3]``;
    - OpenCV FileStorage YAML (``%YAML:1.0`` header, read with ``cv2.FileStorage``): ORB-SLAM2/3 settings
      (``Camera.fx`` / ``Camera1.fx`` ..., ``Camera.k1 k2 p1 p2 [k3]``, ``Camera.width/height``) or
      OpenCV calibration output (``camera_matrix``, ``distortion_coefficients``, ``image_width/height``);
    - EuRoC / Kalibr ``sensor.yaml``: ``intrinsics: [fu, fv, cu, cv]``, ``distortion_coefficients``,
      ``resolution: [width, height]`` (``distortion_model: radial-tangential``).

    Returns:
        dict with ``fx, fy, cx, cy`` (pixels) or ``hfov_deg``, ``width``, ``height`` (None when the file
        does not say) and ``distortion`` (validated OpenCV coefficients, or None).

    Raises:
        InputError: missing file, unreadable file, unknown style, missing keys, or a distortion model
            other than radial-tangential (pinhole + OpenCV coefficients).
    """
    path = Path(path)
    data = read_calibration_yaml(path)
    prefix = next((p for p in ("Camera.", "Camera1.") if p + "fx" in data), None)
    try:
        if prefix is not None:  # ORB-SLAM settings
            cam_type = str(data.get(prefix + "type", data.get("Camera.type", "PinHole"))).lower()
            if cam_type not in ("pinhole", "rectified"):
                raise InputError(f"intrinsics file {path}: camera type {cam_type!r} is not a pinhole model with "
                                 "OpenCV distortion; undistort the frames first or give a pinhole calibration")
            k = [data[prefix + key] for key in ("fx", "fy", "cx", "cy")]
            dist = [data.get(prefix + key, 0.0) for key in ("k1", "k2", "p1", "p2")]
            if prefix + "k3" in data:
                dist.append(data[prefix + "k3"])
            size = (data.get("Camera.width", data.get(prefix + "width")),
                    data.get("Camera.height", data.get(prefix + "height")))
        elif "camera_matrix" in data:  # OpenCV calibration output
            K = np.asarray(data["camera_matrix"], np.float64).reshape(3, 3)
            k = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
            dist = data.get("distortion_coefficients")
            size = (data.get("image_width"), data.get("image_height"))
        elif "intrinsics" in data:  # EuRoC / Kalibr
            model = str(data.get("distortion_model", "radial-tangential")).lower()
            if model not in ("radial-tangential", "radtan", "plumb_bob", "none"):
                raise InputError(f"intrinsics file {path}: distortion_model {model!r} is not supported; use a "
                                 "radial-tangential (OpenCV) calibration or undistorted frames")
            k = [float(v) for v in data["intrinsics"]]
            if len(k) != 4:
                raise InputError(f"intrinsics file {path}: intrinsics must be [fu, fv, cu, cv], got {k}")
            dist = data.get("distortion_coefficients")
            size = tuple(data["resolution"]) if "resolution" in data else (None, None)
        else:  # this package's own style
            dist, size = data.get("distortion"), (data.get("width"), data.get("height"))
            if "hfov_deg" in data:
                return {"hfov_deg": float(data["hfov_deg"]), "width": size[0], "height": size[1],
                        "distortion": check_distortion(dist, f"{path} distortion")}
            k = [data[key] for key in ("fx", "fy", "cx", "cy")]
    except KeyError as err:
        raise InputError(f"intrinsics file {path} lacks key {err}; needs {_NATIVE_KEYS} (or OpenCV/ORB-SLAM "
                         "Camera.fx ..., or EuRoC intrinsics: [fu, fv, cu, cv] + resolution)") from err
    try:
        fx, fy, cx, cy = (float(v) for v in k)
        width, height = (None if v is None else int(v) for v in size)
    except (TypeError, ValueError) as err:
        raise InputError(f"intrinsics file {path}: fx, fy, cx, cy, width, height must be numbers ({err})") from err
    return {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": width, "height": height,
            "distortion": check_distortion(dist, f"{path} distortion")}


def read_calibration_yaml(path: str | Path, what: str = "intrinsics file") -> dict:
    """The top-level mapping of a calibration YAML file: OpenCV FileStorage files (``%YAML:1.0`` header,
    which PyYAML refuses) are read with ``cv2.FileStorage``, others with PyYAML.

    Raises:
        InputError: missing or unreadable file, naming ``what``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; pass an existing YAML file")
    with open(path, "rb") as f:
        opencv = f.read(16).lstrip().startswith(b"%YAML")
    return _read_opencv_yaml(path, what) if opencv else read_yaml_mapping(path, what, _NATIVE_KEYS)


def _read_opencv_yaml(path: Path, what: str) -> dict:
    """An OpenCV FileStorage YAML file as plain values: numbers, strings, lists, nested mappings;
    ``!!opencv-matrix`` entries become flat lists of their data."""
    import cv2

    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as err:
        raise InputError(f"{what} {path} is not valid OpenCV YAML: {str(err).strip()[:200]}") from err
    if not fs.isOpened():
        raise InputError(f"{what} {path} cannot be read as OpenCV YAML")

    def value(node):
        if node.isInt():
            return int(node.real())
        if node.isReal():
            return node.real()
        if node.isString():
            return node.string()
        if node.isSeq():
            return [value(node.at(i)) for i in range(node.size())]
        if node.isMap():
            keys = node.keys()
            if {"rows", "cols", "dt", "data"} <= set(keys):  # !!opencv-matrix
                return node.mat().reshape(-1).tolist()
            return {k: value(node.getNode(k)) for k in keys}
        return None

    root = fs.root()
    out = {key: value(root.getNode(key)) for key in root.keys()}
    fs.release()
    return out


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
