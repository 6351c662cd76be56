"""Monocular depth metrics on valid ground-truth pixels (Eigen et al. 2014; SILog as in KITTI)."""
from __future__ import annotations

import numpy as np


def depth_metrics(pred_m: np.ndarray, gt_m: np.ndarray, mask: np.ndarray | None = None,
                  min_depth_m: float = 1e-3, max_depth_m: float | None = None) -> dict[str, float]:
    """Standard depth metrics.

    Args:
        pred_m: (H, W) predicted depth in metres.
        gt_m: (H, W) ground-truth depth in metres; 0, NaN or inf mark invalid pixels.
        mask: optional (H, W) bool, further restricting the evaluated pixels.
        min_depth_m, max_depth_m: valid ground-truth range.

    Returns:
        abs_rel, sq_rel, rmse (m), rmse_log, silog (x100, as the KITTI benchmark), d1, d2, d3
        (fraction with max(p/g, g/p) < 1.25^k), and n_valid. Non-positive predictions on valid pixels
        are clamped to ``min_depth_m``.

    Raises:
        ValueError: shapes differ or no valid pixel remains.
    """
    pred_m, gt_m = np.asarray(pred_m, np.float64), np.asarray(gt_m, np.float64)
    if pred_m.shape != gt_m.shape:
        raise ValueError(f"prediction {pred_m.shape} and ground truth {gt_m.shape} differ in shape")
    valid = np.isfinite(gt_m) & (gt_m > min_depth_m)
    if max_depth_m is not None:
        valid &= gt_m <= max_depth_m
    if mask is not None:
        valid &= np.asarray(mask, bool)
    if not np.isfinite(pred_m[valid]).all():
        raise ValueError("prediction has NaN or inf on valid ground-truth pixels")
    if not valid.any():
        raise ValueError("no valid ground-truth pixels to evaluate")
    g = gt_m[valid]
    p = np.maximum(pred_m[valid], min_depth_m)
    ratio = np.maximum(p / g, g / p)
    log_diff = np.log(p) - np.log(g)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "silog": float(np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0)) * 100.0),
        "d1": float(np.mean(ratio < 1.25)),
        "d2": float(np.mean(ratio < 1.25**2)),
        "d3": float(np.mean(ratio < 1.25**3)),
        "n_valid": int(valid.sum()),
    }
