"""Depth losses of the Metric3D family on batched tensors with validity masks.

Shapes: depth maps (B, 1, H, W) in metres (or canonical metres), masks (B, 1, H, W) bool, intrinsics
(B, 3, 3). Invalid ground truth (mask False) never contributes, and gradients stay finite where the
ground truth is 0, NaN or inf. Every loss returns a scalar tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mono_metric.validation import check_range

_EPS = 1e-6


def _check(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if pred.shape != gt.shape or pred.ndim != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred and gt must both be (B, 1, H, W), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if mask.shape != gt.shape:
        raise ValueError(f"mask must be {tuple(gt.shape)}, got {tuple(mask.shape)}")
    return mask & torch.isfinite(gt) & (gt > _EPS)


def _safe(x: torch.Tensor, valid: torch.Tensor, fill: float = 1.0) -> torch.Tensor:
    """``x`` where valid, ``fill`` elsewhere (keeps logs and divisions finite under the mask)."""
    return torch.where(valid, x, torch.full_like(x, fill))


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, variance_focus: float = 0.85) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al.): sqrt(mean(d^2) - lambda * mean(d)^2), d = log p - log g.

    With ``variance_focus`` = 1 it ignores a global scale completely; below 1 a fraction of the scale
    error is kept (sqrt(1 - lambda) * |log s| for a prediction off by a factor s). Mean over images.
    """
    valid = _check(pred, gt, mask)
    d = torch.log(_safe(pred, valid).clamp_min(_EPS)) - torch.log(_safe(gt, valid))
    d = torch.where(valid, d, torch.zeros_like(d))
    n = valid.sum(dim=(1, 2, 3)).clamp_min(1)
    mean = d.sum(dim=(1, 2, 3)) / n
    mean_sq = (d**2).sum(dim=(1, 2, 3)) / n
    per_image = torch.sqrt((mean_sq - variance_focus * mean**2).clamp_min(0.0) + 1e-12)
    return per_image[valid.flatten(1).any(1)].mean() if valid.any() else pred.sum() * 0.0


def log_l1_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |log p - log g| over valid pixels: scale-aware (a global factor s costs |log s|).

    Not one of Metric3D's losses; it speeds up learning the metric scale in short trainings.
    """
    valid = _check(pred, gt, mask)
    d = torch.log(_safe(pred, valid).clamp_min(_EPS)) - torch.log(_safe(gt, valid))
    return d.abs()[valid].mean() if valid.any() else pred.sum() * 0.0


def _sample_pixels(valid: torch.Tensor, count: int, group: int,
                   generator: torch.Generator | None) -> torch.Tensor | None:
    """(count, group) flat indices drawn with replacement from the True pixels of ``valid`` (1, H, W),
    or None when fewer than ``group`` pixels are valid."""
    idx = torch.nonzero(valid.flatten(), as_tuple=False)[:, 0]
    if len(idx) < group:
        return None
    return idx[torch.randint(0, len(idx), (count, group), generator=generator)]


def _mean_or_zero(losses: list[torch.Tensor], pred: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample losses; a zero that keeps the graph when nothing could be evaluated."""
    return torch.stack(losses).mean() if losses else pred.sum() * 0.0


def _median_mad_normalise(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(x - median) / mean|x - median| over the valid entries of a 1D tensor."""
    v = x[valid]
    med = v.median()
    return (v - med) / ((v - med).abs().mean() + _EPS)


def rpnl_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, num_crops: int = 32,
              min_frac: float = 0.125, max_frac: float = 0.5, min_valid: int = 32,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Random proposal normalisation loss (Metric3D): in ``num_crops`` random crops per image (sides
    ``min_frac``-``max_frac`` of the image), normalise ground truth and prediction by their median and
    mean absolute deviation, then L1. Invariant to a global scale and shift of the prediction."""
    valid = _check(pred, gt, mask)
    B, _, H, W = gt.shape
    losses = []
    for b in range(B):
        for _ in range(num_crops):
            frac = torch.empty(2).uniform_(min_frac, max_frac, generator=generator)
            h, w = max(2, int(H * frac[0])), max(2, int(W * frac[1]))
            top = int(torch.randint(0, H - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, W - w + 1, (1,), generator=generator))
            v = valid[b, 0, top:top + h, left:left + w]
            if int(v.sum()) < min_valid:
                continue
            p = _median_mad_normalise(pred[b, 0, top:top + h, left:left + w], v)
            g = _median_mad_normalise(gt[b, 0, top:top + h, left:left + w], v)
            losses.append((p - g).abs().mean())
    return _mean_or_zero(losses, pred)


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) depth and (B, 3, 3) intrinsics -> (B, 3, H, W) camera-frame points."""
    B, _, H, W = depth.shape
    v, u = torch.meshgrid(torch.arange(H, device=depth.device, dtype=depth.dtype),
                          torch.arange(W, device=depth.device, dtype=depth.dtype), indexing="ij")
    fx, fy = K[:, 0, 0].view(B, 1, 1), K[:, 1, 1].view(B, 1, 1)
    cx, cy = K[:, 0, 2].view(B, 1, 1), K[:, 1, 2].view(B, 1, 1)
    z = depth[:, 0]
    return torch.stack(((u - cx) / fx * z, (v - cy) / fy * z, z), dim=1)


def vnl_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, K: torch.Tensor, num_triplets: int = 4096,
             min_angle_deg: float = 30.0, min_dist_m: float = 0.05, generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """Virtual normal loss (Yin et al. 2019): normals of random point triplets, from back-projected ground
    truth and prediction, compared with L1. Triplets that are ill-posed in the ground truth (an interior
    angle under ``min_angle_deg`` or sides under ``min_dist_m``) are rejected. A global scale of the
    prediction does not change triplet normals."""
    valid = _check(pred, gt, mask)
    P_gt = backproject(_safe(gt, valid), K).flatten(2)  # (B, 3, HW)
    P_pr = backproject(pred, K).flatten(2)
    max_cos = math.cos(math.radians(min_angle_deg))
    losses = []
    for b in range(gt.shape[0]):
        pick = _sample_pixels(valid[b], num_triplets, 3, generator)
        if pick is None:
            continue
        g, p = P_gt[b][:, pick].permute(1, 2, 0), P_pr[b][:, pick].permute(1, 2, 0)  # (T, 3 points, 3)
        e = torch.stack((g[:, 1] - g[:, 0], g[:, 2] - g[:, 1], g[:, 0] - g[:, 2]), dim=1)
        lengths = e.norm(dim=-1)
        cos = torch.stack([-(e[:, i] * e[:, (i + 1) % 3]).sum(-1) / (lengths[:, i] * lengths[:, (i + 1) % 3] + _EPS)
                           for i in range(3)], dim=1)
        ok = (lengths > min_dist_m).all(1) & (cos < max_cos).all(1)
        if not ok.any():
            continue
        n_g = F.normalize(torch.cross(g[ok, 1] - g[ok, 0], g[ok, 2] - g[ok, 0], dim=-1), dim=-1, eps=_EPS)
        n_p = F.normalize(torch.cross(p[ok, 1] - p[ok, 0], p[ok, 2] - p[ok, 0], dim=-1), dim=-1, eps=_EPS)
        losses.append((n_g - n_p).abs().sum(-1).mean())
    return _mean_or_zero(losses, pred)


def normals_from_depth(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) unit normals from central differences of back-projected depth (borders replicated)."""
    P = F.pad(backproject(depth, K), (1, 1, 1, 1), mode="replicate")
    du = P[:, :, 1:-1, 2:] - P[:, :, 1:-1, :-2]
    dv = P[:, :, 2:, 1:-1] - P[:, :, :-2, 1:-1]
    return F.normalize(torch.cross(dv, du, dim=1), dim=1, eps=_EPS)


def pwn_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, K: torch.Tensor,
             pred_normal: torch.Tensor | None = None, num_pairs: int = 8192,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Pair-wise normal loss: for random pixel pairs, the cosine between their normals from the ground
    truth against the same from the prediction (normals from depth, or ``pred_normal`` (B, 3, H, W) when
    the model predicts them), L1. Pixels whose 3x3 neighbourhood has invalid ground truth are skipped."""
    valid = _check(pred, gt, mask)
    inner = -F.max_pool2d(-valid.float(), 3, stride=1, padding=1) > 0.5  # all 3x3 neighbours valid
    n_gt = normals_from_depth(_safe(gt, valid), K)
    n_pr = pred_normal if pred_normal is not None else normals_from_depth(pred, K)
    losses = []
    for b in range(gt.shape[0]):
        pair = _sample_pixels(inner[b], num_pairs, 2, generator)
        if pair is None:
            continue
        g, p = n_gt[b].flatten(1)[:, pair], n_pr[b].flatten(1)[:, pair]  # (3, P, 2)
        cos_g = (g[:, :, 0] * g[:, :, 1]).sum(0)
        cos_p = (p[:, :, 0] * p[:, :, 1]).sum(0)
        losses.append((cos_g - cos_p).abs().mean())
    return _mean_or_zero(losses, pred)


@dataclass
class LossWeights:
    """Weights of the total loss (0 disables a term)."""

    silog: float = 1.0
    rpnl: float = 1.0
    vnl: float = 1.0
    pwn: float = 0.5
    log_l1: float = 0.0

    def validate(self) -> None:
        for name in ("silog", "rpnl", "vnl", "pwn", "log_l1"):
            check_range(f"loss.{name}", getattr(self, name), 0.0, 100.0)


def total_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, K: torch.Tensor,
               weights: LossWeights = LossWeights(), pred_normal: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the losses; returns (total, {name: value}) for logging."""
    terms = {}
    if weights.silog:
        terms["silog"] = silog_loss(pred, gt, mask)
    if weights.rpnl:
        terms["rpnl"] = rpnl_loss(pred, gt, mask, generator=generator)
    if weights.vnl:
        terms["vnl"] = vnl_loss(pred, gt, mask, K, generator=generator)
    if weights.pwn:
        terms["pwn"] = pwn_loss(pred, gt, mask, K, pred_normal, generator=generator)
    if weights.log_l1:
        terms["log_l1"] = log_l1_loss(pred, gt, mask)
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
