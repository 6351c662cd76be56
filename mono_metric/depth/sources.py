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
        raise InputError(f"frame {frame.index} has no ground-truth depth; depth.source='gt' needs a dataset "
                         "with depth (synthetic or TUM), or use a depth model")
    return frame.depth_m


class GroundTruthDepth:
    """Returns the frame's ground-truth depth (metres, 0 = invalid) unchanged."""

    def __call__(self, frame: Frame) -> np.ndarray:
        return _require_gt(frame)


class DegradedDepth:
    """Ground truth with Metric3D-like error.

    Args:
        abs_rel: approximate mean relative error to produce (e.g. 0.06).
        hole_fraction: approximate fraction of valid pixels dropped in blobs.
        seed: base seed; frame ``i`` uses ``seed * 7919 + i``.
    """

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


def make_depth_source(config) -> object:
    """The depth source of a :class:`~mono_metric.config.DepthConfig`: a callable ``frame -> depth_m``."""
    if config.source == "gt":
        return GroundTruthDepth()
    if config.source == "gt_degraded":
        return DegradedDepth(abs_rel=config.degrade_abs_rel, seed=config.degrade_seed)
    from mono_metric.depth import Metric3D

    model = Metric3D.from_pretrained(config.source, config.weights, device=config.device)
    return NetworkDepth(model, tuple(config.input_hw) if config.input_hw else None, config.min_confidence)
