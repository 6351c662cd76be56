"""Dataset loaders as a registry: every loader returns a :class:`Sequence` of :class:`Frame`.

``load_sequence(path, kind=None, **opts)`` guesses the kind from the layout when ``kind`` is None:
``synthetic:...`` specs, KITTI trees (calib.txt), TUM folders (rgb.txt), EuRoC MAV folders
(mav0/cam0/data.csv), video files, image folders. See docs/datasets.md.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from mono_metric.datasets.base import Sequence
from mono_metric.datasets.euroc import EurocMav, looks_like_euroc
from mono_metric.datasets.images import VIDEO_EXTENSIONS, ImageFolder, VideoFile
from mono_metric.datasets.kitti import KittiOdometry, looks_like_kitti
from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.datasets.tum import TumRGBD, looks_like_tum
from mono_metric.errors import InputError

LOADERS: dict[str, Callable[..., Sequence]] = {
    "kitti": KittiOdometry,
    "tum": TumRGBD,
    "euroc": EurocMav,
    "images": ImageFolder,
    "video": VideoFile,
    "synthetic": lambda path, **opts: SyntheticSequence(_synthetic_config(str(path), opts)),
}


CLI_FLAGS = {"fov_deg": "--fov", "intrinsics": "--camera", "camera": "--intrinsics", "missing": "--skip-missing",
             "max_frames": "--max-frames", "max_width": "--max-width", "stride": "--stride", "fps": "--fps",
             "sequence": "--sequence"}
"""The ``mono-metric run`` flag of each loader option, for messages."""


def _synthetic_config(spec: str, opts: dict) -> SyntheticConfig:
    cfg = SyntheticConfig.from_spec(spec)
    try:
        return SyntheticConfig(**{**cfg.__dict__, **opts})
    except TypeError as err:
        raise InputError(f"bad synthetic option: {err}") from err


def guess_kind(path: str | Path) -> str:
    """The loader name for ``path``, from its form and layout."""
    if str(path).startswith("synthetic:"):
        return "synthetic"
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist; give a dataset folder, a video file or 'synthetic:street'")
    if p.is_file():
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            return "video"
        raise InputError(f"{p} is a file but not a video ({', '.join(VIDEO_EXTENSIONS)})")
    if looks_like_kitti(p):
        return "kitti"
    if looks_like_tum(p):
        return "tum"
    if looks_like_euroc(p):
        return "euroc"
    return "images"


def load_sequence(path: str | Path, kind: str | None = None, **opts) -> Sequence:
    """Open a sequence of frames.

    Args:
        path: dataset folder, video file, or ``synthetic:SCENE?key=value&...``.
        kind: one of ``LOADERS`` ('kitti', 'tum', 'euroc', 'images', 'video', 'synthetic'); guessed when None.
        **opts: passed to the loader (e.g. ``sequence='06'``, ``stride=2``, ``max_frames=100``,
            ``fov_deg=65``, ``intrinsics='cam.yaml'``).

    Raises:
        InputError: unknown kind, missing path, or a layout the loader cannot read.
    """
    kind = kind or guess_kind(path)
    if kind not in LOADERS:
        raise InputError(f"unknown dataset kind {kind!r}; use one of {', '.join(LOADERS)}")
    accepted = inspect.signature(LOADERS[kind]).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        extra = sorted(set(opts) - set(accepted))
        if extra:
            flag = CLI_FLAGS.get(extra[0], "--" + extra[0].replace("_", "-"))
            raise InputError(f"{flag} ({extra[0]}=) does not apply to {kind} data ({path}); its options: "
                             + ", ".join(f"{CLI_FLAGS.get(p, p)}" for p in accepted if p != "path"))
    return LOADERS[kind](path, **opts)


__all__ = ["LOADERS", "Sequence", "guess_kind", "load_sequence", "KittiOdometry", "TumRGBD", "EurocMav", "ImageFolder",
           "VideoFile", "SyntheticConfig", "SyntheticSequence"]
