"""Realistic camera and depth-sensor effects of the synthetic world; every effect is off by default.

The image chain of a frame: the scene's radiance is exposed with a rolling shutter and motion blur
(:mod:`~mono_metric.datasets.synthetic.shutter`), then ``vignetting``, the frame's exposure ``gain``,
sensor noise (shot noise with variance ``shot_noise * signal`` plus ``read_noise``, in 8-bit levels),
the sequence's additive ``noise_std``, 8-bit quantisation and JPEG compression. The depth chain turns
the rendered z-depth into a Kinect-like sensor depth: noise of constant std in disparity (so the
depth std is ``depth_noise * z^2``), disparity quantisation and holes (out of range, at depth edges,
on dark surfaces, random dropouts).

Every draw is seeded by (sequence seed, frame index, effect), so frames are reproducible in any order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from functools import lru_cache

import cv2
import numpy as np
import yaml

from mono_metric.errors import InputError


@dataclass(frozen=True)
class RealismConfig:
    """Camera and depth-sensor effects (all 0 = off).

    Attributes:
        readout_ms: rolling shutter: time from the first to the last image row (0: global shutter).
        exposure_ms: motion blur: exposure time of each row (0: instantaneous).
        blur_step_px: about one sub-exposure view per this many pixels of image motion...
        blur_max_samples: ...and at most this many.
        gain_log_std: per-frame exposure/gain changes: std of the log gain (a smooth random curve).
        gain_period_s: main period of that curve in seconds.
        vignetting: brightness loss at the image corners: factor ``1 - vignetting * rho^2``, ``rho`` the
            distance from the principal point over the distance to the farthest corner.
        shot_noise: shot noise variance per 8-bit level of signal (8-bit levels per photo-electron).
        read_noise: read noise std in 8-bit levels.
        jpeg_quality: JPEG round trip of the 8-bit image at this quality (1-100; 0: none).
        depth_noise: Kinect-like depth noise: std ``depth_noise * z^2`` metres (1/m), drawn in disparity.
        depth_baseline_m: projector-camera baseline of the depth sensor (disparity = fx * baseline / z).
        depth_disparity_step_px: disparity quantisation step in pixels (0: none; Kinect v1: 1/8).
        depth_min_m, depth_max_m: depth outside this range is missing (0: no limit).
        hole_edge_px: depth is missing within this many pixels of a depth edge (0: none)...
        hole_edge_rel: ...where neighbouring depths differ by more than this fraction.
        hole_dark_level: depth is missing where the surface is darker than this fraction of white.
        hole_dropout: fraction of the pixels dropped in random blobs...
        hole_blob_px: ...of about this size.
    """

    readout_ms: float = 0.0
    exposure_ms: float = 0.0
    blur_step_px: float = 1.0
    blur_max_samples: int = 16
    gain_log_std: float = 0.0
    gain_period_s: float = 4.0
    vignetting: float = 0.0
    shot_noise: float = 0.0
    read_noise: float = 0.0
    jpeg_quality: int = 0
    depth_noise: float = 0.0
    depth_baseline_m: float = 0.075
    depth_disparity_step_px: float = 0.0
    depth_min_m: float = 0.0
    depth_max_m: float = 0.0
    hole_edge_px: int = 0
    hole_edge_rel: float = 0.05
    hole_dark_level: float = 0.0
    hole_dropout: float = 0.0
    hole_blob_px: int = 8

    def validate(self) -> "RealismConfig":
        from mono_metric.validation import check_range

        for key, lo, hi in (("readout_ms", 0, 1000), ("exposure_ms", 0, 1000), ("blur_step_px", 0.1, 100),
                            ("blur_max_samples", 1, 256), ("gain_log_std", 0, 2), ("gain_period_s", 0.01, 1e4),
                            ("vignetting", 0, 1), ("shot_noise", 0, 100), ("read_noise", 0, 255),
                            ("jpeg_quality", 0, 100), ("depth_noise", 0, 1), ("depth_baseline_m", 1e-3, 10),
                            ("depth_disparity_step_px", 0, 10), ("depth_min_m", 0, 1e4), ("depth_max_m", 0, 1e4),
                            ("hole_edge_px", 0, 100), ("hole_edge_rel", 1e-3, 10), ("hole_dark_level", 0, 1),
                            ("hole_dropout", 0, 1), ("hole_blob_px", 1, 1000)):
            check_range(f"realism.{key}", getattr(self, key), lo, hi)
        if self.depth_max_m and self.depth_max_m <= self.depth_min_m:
            raise InputError(f"config realism.depth_max_m={self.depth_max_m} must exceed realism.depth_min_m="
                             f"{self.depth_min_m} (or be 0: no limit)")
        return self

    @property
    def enabled(self) -> bool:
        return self != RealismConfig()

    @property
    def depth_enabled(self) -> bool:
        return any(getattr(self, k) for k in DEPTH_SWITCHES)

    def without_depth_effects(self) -> "RealismConfig":
        """The same camera effects with every depth-sensor effect off (the depth stays the exact render)."""
        off = RealismConfig()
        return dataclasses.replace(self, **{k: getattr(off, k) for k in DEPTH_SWITCHES})


DEPTH_SWITCHES = ("depth_noise", "depth_disparity_step_px", "depth_min_m", "depth_max_m", "hole_edge_px",
                  "hole_dark_level", "hole_dropout")
"""The :class:`RealismConfig` keys that switch a depth-sensor effect on (the others only shape them)."""


# Named sets of effects (``realism=NAME`` in a synthetic spec). Values are typical of each camera, not fitted.
PRESETS: dict[str, dict] = {
    "off": {},
    # Kinect v1 as in TUM RGB-D: rolling-shutter RGB with auto exposure, structured-light depth
    # (noise 1.5 mm at 1 m growing with z^2, 1/8 px disparity steps, 0.5-5 m, holes at edges and dark surfaces).
    "tum": dict(readout_ms=25.0, exposure_ms=12.0, gain_log_std=0.12, gain_period_s=3.0, vignetting=0.35,
                shot_noise=0.05, read_noise=1.5, depth_noise=1.5e-3, depth_disparity_step_px=0.125,
                depth_min_m=0.5, depth_max_m=5.0, hole_edge_px=2, hole_dark_level=0.06, hole_dropout=0.02,
                hole_blob_px=6),
    # Phone video: rolling shutter, indoor exposure, auto exposure, compressed frames; depth untouched.
    "phone": dict(readout_ms=30.0, exposure_ms=16.0, gain_log_std=0.1, gain_period_s=4.0, vignetting=0.25,
                  shot_noise=0.04, read_noise=1.0, jpeg_quality=85),
    # KITTI's global-shutter CCDs in daylight: short exposure, mild gain changes; depth untouched.
    "kitti": dict(exposure_ms=2.0, gain_log_std=0.08, gain_period_s=5.0, vignetting=0.2, shot_noise=0.03,
                  read_noise=1.0),
}


def realism_from_options(preset: str | None, options: dict, where: str) -> RealismConfig:
    """A validated :class:`RealismConfig` from a preset name (or YAML file) and ``key: value`` overrides.

    ``options`` values may be strings (from a URI): they are read as YAML scalars.
    """
    from mono_metric.validation import build_section

    data: dict = {}
    if preset:
        if preset in PRESETS:
            data = dict(PRESETS[preset])
        elif preset.endswith((".yaml", ".yml")):
            from mono_metric.errors import read_yaml_mapping

            data = dict(read_yaml_mapping(preset, "realism file", "realism keys"))
        else:
            raise InputError(f"unknown realism preset {preset!r} in {where}; use one of {', '.join(PRESETS)} "
                             "or a .yaml file of realism keys")
    for key, value in options.items():
        data[key] = yaml.safe_load(value) if isinstance(value, str) else value
    return build_section(RealismConfig, data, "realism.").validate()


REALISM_KEYS = tuple(f.name for f in fields(RealismConfig))


# ---------------------------------------------------------------------------- image
def exposure_gains(cfg: RealismConfig, frames: int, fps: float, seed: int) -> np.ndarray:
    """(frames,) per-frame gain ``exp(gain_log_std * z)``, ``z`` a smooth unit-variance curve (seeded)."""
    if not cfg.gain_log_std:
        return np.ones(frames)
    rng = np.random.default_rng([seed, 0x6A1])
    t = np.arange(frames) / fps
    z = sum(np.sin(2 * np.pi * t / (cfg.gain_period_s * f) + rng.uniform(0, 2 * np.pi)) for f in (1.0, 2.7))
    return np.exp(cfg.gain_log_std * z)  # two unit sinusoids: variance 1


@lru_cache(maxsize=4)
def vignetting_factor(height: int, width: int, cx: float, cy: float, strength: float) -> np.ndarray:
    """(H, W) float32 ``1 - strength * rho^2``, ``rho`` = distance to (cx, cy) / distance to the farthest corner.

    Cached: do not modify the returned array."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = (u - cx) ** 2 + (v - cy) ** 2
    r2_max = max((x - cx) ** 2 + (y - cy) ** 2 for x in (0, width - 1) for y in (0, height - 1))
    return (1.0 - strength * r2 / np.float32(r2_max)).astype(np.float32)


def sensor_response(color: np.ndarray, cfg: RealismConfig, gain: float, cx: float, cy: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Vignetting, gain and shot + read noise on (H, W, 3) float colour (1 = white); float32 out."""
    out = color * np.float32(gain)
    if cfg.vignetting:
        out *= vignetting_factor(*color.shape[:2], float(cx), float(cy), cfg.vignetting)[..., None]
    if cfg.shot_noise or cfg.read_noise:
        levels = np.clip(out, 0.0, None) * 255.0
        std = np.sqrt(cfg.shot_noise * levels + cfg.read_noise ** 2)
        out = out + rng.standard_normal(out.shape, np.float32) * (std / 255.0).astype(np.float32)
    return out.astype(np.float32)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB encoded as JPEG at ``quality`` (OpenCV, 4:2:0) and decoded."""
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


# ---------------------------------------------------------------------------- depth
def kinect_depth(depth_m: np.ndarray, color: np.ndarray, fx: float, cfg: RealismConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """Kinect-like sensor depth from exact z-depth.

    Args:
        depth_m: (H, W) exact z-depth in metres, 0 = nothing.
        color: (H, W, 3) float surface colour before exposure and noise (1 = white), for dark holes.
        fx: focal length of the depth camera in pixels (disparity = fx * baseline / z).
        cfg: the effects.
        rng: the frame's generator.

    Returns:
        (H, W) float32 metres, 0 where depth is missing.
    """
    valid = depth_m > 0
    z = np.where(valid, depth_m, 1.0).astype(np.float64)
    fb = fx * cfg.depth_baseline_m
    disparity = fb / z
    if cfg.depth_noise:
        disparity = disparity + rng.standard_normal(z.shape) * (cfg.depth_noise * fb)
    if cfg.depth_disparity_step_px:
        disparity = np.round(disparity / cfg.depth_disparity_step_px) * cfg.depth_disparity_step_px
    keep = valid & (disparity > 0)
    out = np.where(keep, fb / np.where(keep, disparity, 1.0), 0.0)
    keep &= depth_holes(depth_m, color, cfg, rng)
    return np.where(keep, out, 0.0).astype(np.float32)


def depth_holes(depth_m: np.ndarray, color: np.ndarray, cfg: RealismConfig, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: True where the sensor measures depth (range, edges, dark surfaces, dropouts)."""
    keep = depth_m > 0
    if cfg.depth_min_m:
        keep &= depth_m >= cfg.depth_min_m
    if cfg.depth_max_m:
        keep &= depth_m <= cfg.depth_max_m
    if cfg.hole_edge_px:
        d = depth_m.astype(np.float32)
        size = 2 * cfg.hole_edge_px + 1
        kernel = np.ones((size, size), np.uint8)
        hi, lo = cv2.dilate(d, kernel), cv2.erode(d, kernel)  # neighbourhood max / min of the depth
        keep &= (hi - lo) <= cfg.hole_edge_rel * np.maximum(lo, 1e-6)
    if cfg.hole_dark_level:
        keep &= color.mean(axis=2) >= cfg.hole_dark_level
    if cfg.hole_dropout:
        h, w = depth_m.shape
        coarse = rng.random((h // cfg.hole_blob_px + 2, w // cfg.hole_blob_px + 2)).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        keep &= field > np.quantile(field, cfg.hole_dropout)
    return keep
