"""A folder of images with intrinsics, and a video file read with OpenCV."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from mono_metric.camera import Camera, read_camera_file
from mono_metric.datasets.base import Sequence, image_size, read_rgb, select, sixteen_bit_depth
from mono_metric.datasets.metadata import DEFAULT_FOCAL_35MM, focal_px_from_35mm, image_focal_35mm, video_focal_35mm
from mono_metric.errors import InputError
from mono_metric.types import Frame

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")


def natural_sorted(paths) -> list[Path]:
    """Paths in the order a user numbers frames: ``frame_2`` before ``frame_10`` (digit runs compare as numbers)."""
    def key(p: Path):
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", p.name.lower()) if t]
    return sorted(paths, key=key)


def resolve_camera(width: int, height: int, camera: Camera | tuple | None, intrinsics: str | Path | None,
                   fov_deg: float | None, source: Path, focal_35mm: float | None = None) -> tuple[Camera, str]:
    """One camera from at most one of: a Camera or (fx, fy, cx, cy), an intrinsics YAML path, a horizontal FOV.

    With none given: the file's 35 mm-equivalent focal length (``focal_35mm``, from metadata) when
    known, else the phone default of :data:`DEFAULT_FOCAL_35MM`. Returns the camera and a note saying
    where it came from (printed, so a user sees what was assumed).
    """
    given = [x is not None for x in (camera, intrinsics, fov_deg)]
    if sum(given) > 1:
        raise InputError(f"{source}: give only one source of intrinsics: --intrinsics fx,fy,cx,cy (camera=), "
                         "--camera FILE.yaml (intrinsics=) or --fov DEGREES (fov_deg=)")
    if not any(given):
        f35, origin = (focal_35mm, "from the file's metadata") if focal_35mm else (DEFAULT_FOCAL_35MM, "ASSUMED")
        f = focal_px_from_35mm(f35, width, height)
        cam = Camera(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
        note = (f"intrinsics {origin}: {f35:g} mm-equivalent focal length = {f:.1f} px, horizontal FOV "
                f"{cam.hfov_deg:.1f} deg")
        if not focal_35mm:
            note += ("; metric scale follows the focal length: give --fov/--intrinsics/--camera, or "
                     "--self-calibrate to estimate it from the motion")
        return cam, note
    if fov_deg is not None:
        return Camera.from_fov(fov_deg, width, height), f"intrinsics from a {fov_deg:g} deg horizontal FOV"
    if isinstance(camera, (tuple, list)):
        if len(camera) != 4:
            raise InputError(f"{source}: intrinsics must be four numbers fx, fy, cx, cy, got {camera!r}")
        return _plausible(Camera(*(float(v) for v in camera), width, height)), "intrinsics given as fx, fy, cx, cy"
    if intrinsics is not None:
        return _plausible(Camera.from_yaml(intrinsics, width, height)), f"intrinsics from {intrinsics}"
    cam = camera
    if (cam.width, cam.height) != (width, height):
        raise InputError(f"{source}: frames are {width}x{height} but the intrinsics are for "
                         f"{cam.width}x{cam.height}; give intrinsics of this resolution")
    return _plausible(cam), "intrinsics given as a Camera"


MAX_PINHOLE_HFOV_DEG = 150.0  # wider is no pinhole camera: usually a focal length in millimetres


def _plausible(cam: Camera) -> Camera:
    if cam.hfov_deg > MAX_PINHOLE_HFOV_DEG:
        raise InputError(f"fx {cam.fx:g} px gives a {cam.hfov_deg:.0f} deg horizontal field of view for a "
                         f"{cam.width} px wide image; focal lengths are in pixels (not millimetres): fix the "
                         "intrinsics, or give --fov")
    return cam


def read_distortion(intrinsics: str | Path | None) -> tuple[float, ...] | None:
    """Distortion coefficients of a camera file (see :func:`~mono_metric.camera.read_camera_file`), or None."""
    return None if intrinsics is None else read_camera_file(intrinsics)["distortion"]


def downscaled(camera: Camera, max_width: int | None) -> Camera:
    """``camera`` resized to ``max_width`` (aspect kept) when it is wider, else unchanged."""
    if max_width is None or camera.width <= max_width:
        return camera
    if max_width < 16:
        raise InputError(f"--max-width {max_width} is too small; give at least 16 pixels")
    return camera.resized(max_width, max(1, round(camera.height * max_width / camera.width)))


def resize_to(image: np.ndarray, camera: Camera) -> np.ndarray:
    """``image`` resized (area filter) to ``camera``'s size when it differs."""
    if image.shape[:2] == (camera.height, camera.width):
        return image
    return cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA)


class ImageFolder(Sequence):
    """Images of one folder in natural order (``2.png`` before ``10.png``); timestamps are ``index / fps``.

    16-bit images are read with the bit depth their first image uses (e.g. 12-bit values 0-4095, see
    :func:`~mono_metric.datasets.base.read_rgb`), the same for every frame, and the note says so.

    Args:
        path: folder of images (png/jpg/...).
        camera, intrinsics, fov_deg: at most one source of intrinsics; ``intrinsics`` defaults to
            ``intrinsics.yaml``/``camera.yaml`` inside the folder when present, else the first
            image's EXIF 35 mm-equivalent focal length, else a phone default (see ``camera_note``).
            Camera files: see :func:`~mono_metric.camera.read_camera_file` (own YAML, OpenCV/ORB-SLAM
            ``%YAML:1.0``, EuRoC ``sensor.yaml``), with optional distortion coefficients.
        fps: frame rate; timestamps are ``index / fps`` seconds (the index in the folder, before stride).
        stride, start, max_frames: frame selection.
        max_width: frames wider than this are downscaled (area filter), intrinsics with them; the
            intrinsics given refer to the full-resolution files.
    """

    def __init__(self, path: str | Path, camera: Camera | tuple | None = None, intrinsics: str | Path | None = None,
                 fov_deg: float | None = None, fps: float = 10.0, stride: int = 1, start: int = 0,
                 max_frames: int | None = None, max_width: int | None = None):
        root = Path(path)
        files = natural_sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if root.is_dir() else []
        if not files:
            raise InputError(f"{root} is not a folder of images ({', '.join(IMAGE_EXTENSIONS)})")
        if camera is None and intrinsics is None and fov_deg is None:
            intrinsics = next((root / n for n in ("intrinsics.yaml", "camera.yaml") if (root / n).is_file()), None)
        width, height = image_size(files[0])
        self.camera, self.camera_note = resolve_camera(width, height, camera, intrinsics, fov_deg, root,
                                                       image_focal_35mm(files[0]))
        self.distortion = read_distortion(intrinsics)
        self._full_size = (width, height)
        self.camera = downscaled(self.camera, max_width)
        if not fps > 0:
            raise InputError(f"--fps must be positive, got {fps}")
        idx = select(len(files), stride, start, max_frames)
        self.files = [files[i] for i in idx]
        self.bits = sixteen_bit_depth(files[0])
        if self.bits is not None:
            self.camera_note += f"; 16-bit images: values read as {self.bits}-bit (from {files[0].name})"
        self.timestamps = idx / float(fps)
        self.name = root.name

    def _load(self, index: int) -> Frame:
        image = read_rgb(self.files[index], self.bits)
        if (image.shape[1], image.shape[0]) != self._full_size:
            raise InputError(f"{self.files[index]} is {image.shape[1]}x{image.shape[0]}, the first image was "
                             f"{self._full_size[0]}x{self._full_size[1]}; one folder must hold one resolution")
        return Frame(index, float(self.timestamps[index]), resize_to(image, self.camera), self.camera)


class VideoFile(Sequence):
    """Frames of a video file decoded with OpenCV, read in order on demand.

    Args:
        path: video file.
        camera, intrinsics, fov_deg: at most one source of intrinsics (of the video's full resolution);
            none: the QuickTime 35 mm-equivalent focal length when the file has it, else a phone
            default (see ``camera_note``).
        stride, start, max_frames: frame selection.
        max_width: frames wider than this are downscaled (area filter), intrinsics with them.
    """

    def __init__(self, path: str | Path, camera: Camera | tuple | None = None, intrinsics: str | Path | None = None,
                 fov_deg: float | None = None, stride: int = 1, start: int = 0, max_frames: int | None = None,
                 max_width: int | None = None):
        self.path = Path(path)
        cap = self._open()
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        ok, first = cap.read()
        cap.release()
        if not ok:
            raise InputError(f"video {self.path} has no readable frame")
        self.camera, self.camera_note = resolve_camera(first.shape[1], first.shape[0], camera, intrinsics, fov_deg,
                                                       self.path, video_focal_35mm(self.path))
        self.distortion = read_distortion(intrinsics)
        self._full_size = (self.camera.width, self.camera.height)
        self.camera = downscaled(self.camera, max_width)
        self.source_indices = select(max(n, 1), stride, start, max_frames)
        self.timestamps = self.source_indices / fps
        self.name = self.path.stem
        self._cap: cv2.VideoCapture | None = None
        self._next = 0

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise InputError(f"video {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError(f"video {self.path} cannot be opened by OpenCV; re-encode it as H.264 mp4")
        return cap

    def _load(self, index: int) -> Frame:
        target = int(self.source_indices[index])
        if self._cap is None or target < self._next:
            self._cap = self._open()
            self._next = 0
            if target > 0:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                self._next = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
        while self._next < target:  # sequential decode is exact; seeking is not for every codec
            self._cap.grab()
            self._next += 1
        ok, bgr = self._cap.read()
        self._next += 1
        if not ok:
            raise InputError(f"video {self.path}: frame {target} cannot be decoded")
        if (bgr.shape[1], bgr.shape[0]) != self._full_size:
            raise InputError(f"video {self.path}: frame {target} is {bgr.shape[1]}x{bgr.shape[0]}, the first frame "
                             f"was {self._full_size[0]}x{self._full_size[1]}; re-encode at one resolution")
        bgr = resize_to(bgr, self.camera)
        return Frame(index, float(self.timestamps[index]), np.ascontiguousarray(bgr[:, :, ::-1]), self.camera)
