"""Depth sources for frames that carry ground truth: exact, or degraded like a monocular network.

The degraded source models the error structure of Metric3D-style predictions: a smooth low-frequency
multiplicative scale field, per-pixel noise and missing blobs; deterministic per (seed, frame index).
"""
from __future__ import annotations

import cv2
import numpy as np

from mono_metric.errors import InputError
from mono_metric.types import Frame


def _require_gt(frame: Frame) -> np.ndarray:
    if frame.depth_m is None:
        raise InputError(f"frame {frame.index} has no ground-truth depth; depth.source 'gt' needs a dataset "
                         "with depth (synthetic or TUM), or use a depth model: --depth metric3d_vit_small (official, "
                         "downloaded once) or --depth mono_metric_tiny (embedded, synthetic-only)")
    return frame.depth_m


class GroundTruthDepth:
    """Returns the frame's ground-truth depth (metres, 0 = invalid) unchanged."""

    frame_depth = True  # the depth is the frame's own (taken at ``Frame.depth_timestamp``)

    def __call__(self, frame: Frame) -> np.ndarray:
        return _require_gt(frame)


class DegradedDepth:
    """Ground truth with Metric3D-like error.

    Args:
        abs_rel: approximate mean relative error to produce (e.g. 0.06).
        hole_fraction: approximate fraction of valid pixels dropped in blobs.
        seed: base seed; frame ``i`` uses ``seed * 7919 + i``.
    """

    frame_depth = True

    def __init__(self, abs_rel: float = 0.06, hole_fraction: float = 0.05, seed: int = 0):
        self.abs_rel, self.hole_fraction, self.seed = abs_rel, hole_fraction, seed

    def __call__(self, frame: Frame) -> np.ndarray:
        gt = _require_gt(frame)
        h, w = gt.shape
        rng = np.random.default_rng(self.seed * 7919 + frame.index)
        # Smooth field: a 3x5 grid of log-scale offsets upsampled bicubically, plus a global offset.
        coarse = rng.normal(0.0, 0.8 * self.abs_rel, (3, 5)).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0.0, 0.5 * self.abs_rel)
        noise = rng.normal(0.0, 0.5 * self.abs_rel, (h, w)).astype(np.float32)
        depth = gt * np.exp(field + noise)
        blobs = cv2.resize(rng.random((h // 16 + 1, w // 16 + 1)).astype(np.float32), (w, h),
                           interpolation=cv2.INTER_LINEAR)
        depth[blobs < self.hole_fraction * 1.5] = 0.0
        return np.where(gt > 0, depth, 0.0).astype(np.float32)


class NetworkDepth:
    """Metric depth predicted by a Metric3D model from each frame's image and camera.

    Args:
        model: a loaded :class:`~mono_metric.depth.Metric3D`.
        input_hw: network input size, None for the official one.
        min_confidence: pixels whose predicted confidence is below this get depth 0 (None: keep all).
    """

    def __init__(self, model, input_hw: tuple[int, int] | None = None, min_confidence: float | None = None):
        self.model, self.input_hw, self.min_confidence = model, input_hw, min_confidence

    def __call__(self, frame: Frame) -> np.ndarray:
        pred = self.model.predict(frame.image, frame.camera, input_hw=self.input_hw)
        depth = pred.depth_m  # NaN/inf/zero maps are handled by the pipeline (the frame is marked lost)
        if self.min_confidence is not None:
            depth = np.where(pred.confidence >= self.min_confidence, depth, 0.0).astype(np.float32)
        return depth


def tiny_real_warning(official_command: str = "mono-metric run PATH --depth metric3d_vit_small") -> str:
    """The line printed once (and kept in the summary) when the embedded model runs on real images.

    The factors were measured by ``benchmarks/tiny_model_real_scale.py`` on the shared real sequences.
    """
    return ("WARNING: depth model mono_metric_tiny is trained on synthetic renders only; on real images its metric "
            "scale is unreliable (measured: trajectories 0.65-0.69x the true length on KITTI 00/06, 4.8x on TUM "
            "fr1_xyz, depth 6.7x the sensor's; benchmarks/tiny_model_real_scale.py). For real images use an "
            f"official model: {official_command} (weights downloaded once to the cache)")


TINY_REAL_WARNING = tiny_real_warning()
"""Printed once and stored in the summary when the embedded model runs on anything but the synthetic world."""

PREFERRED_OFFICIAL = ("metric3d_vit_small", "metric3d_convnext_tiny", "metric3d_vit_large",
                      "metric3d_convnext_large", "metric3d_vit_giant2")


def default_depth_source(sequence) -> tuple[str, str]:
    """The depth source to use on ``sequence`` when the user chose none, and why (printed).

    Ground-truth depth when the frames carry it (synthetic, TUM RGB-D sensor depth); otherwise the first
    official Metric3D model of :data:`PREFERRED_OFFICIAL` whose weights are already in the cache; else the
    embedded ``mono_metric_tiny`` (offline, synthetic-only: see :data:`TINY_REAL_WARNING`).
    """
    from mono_metric.depth.weights import OFFICIAL_WEIGHTS, cache_dir

    if len(sequence) and sequence[0].depth_m is not None:
        return "gt", ("the dataset's own depth, sensor or rendered; for monocular depth pass "
                      "--depth mono_metric_tiny or --depth metric3d_vit_small")
    for name in PREFERRED_OFFICIAL:
        if (cache_dir() / OFFICIAL_WEIGHTS[name].filename).is_file():
            return name, f"an official model, its weights are cached in {cache_dir()}"
    return "mono_metric_tiny", (f"the embedded model, offline, as no official weights are cached in {cache_dir()}; "
                                "synthetic-only, see the warning")


def make_depth_source(config) -> object:
    """The depth source of a :class:`~mono_metric.config.DepthConfig`: a callable ``frame -> depth_m``."""
    if config.source == "gt":
        return GroundTruthDepth()
    if config.source == "gt_degraded":
        return DegradedDepth(abs_rel=config.degrade_abs_rel, seed=config.degrade_seed)
    from mono_metric.depth import Metric3D

    model = Metric3D.from_pretrained(config.source, config.weights, device=config.device)
    return NetworkDepth(model, tuple(config.input_hw) if config.input_hw else None, config.min_confidence)
