"""Focal-length self-calibration from camera motion (square pixels, known principal point).

Metric depth from a canonical-camera network is proportional to the focal length it is given, so a
video without calibration needs its focal length first. Two views with a fundamental matrix F and a
correct intrinsic matrix K give an essential matrix E = K^T F K whose two non-zero singular values
are equal (Mendonca & Cipolla). Frame pairs are tracked with Lucas-Kanade over the first frames of a
sequence; F is fitted robustly per pair; pairs explained by a homography (a plane, or a rotation
without translation) are dropped because they do not constrain f; the focal length minimising the
summed singular-value gap over a log-spaced sweep starts a joint Levenberg-Marquardt refinement
of f and every pair's relative pose on the Sampson distances of the matches; the uncertainty is
the larger of the Gauss-Newton standard deviation of f and a delete-one-pair jackknife. Pairs are
re-tracked from the anchor frame directly (from the chained guess) so no tracking drift accumulates:
drift biased f by about 3 % at a 45 degree FOV in tests on the synthetic room.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from mono_metric.camera import Camera
from mono_metric.errors import InputError


@dataclass(frozen=True)
class FocalEstimate:
    """Result of :func:`estimate_focal`.

    Attributes:
        f_px: focal length in pixels (fx = fy).
        sigma_px: one-sigma uncertainty of ``f_px`` in pixels (NaN without refinement).
        width, height, cx, cy: image size and the principal point assumed (pixels).
        pairs_used: frame pairs that constrained the estimate.
        candidates_px: (K,) focal lengths swept.
        cost: (K,) summed singular-value gap per candidate.
    """

    f_px: float
    sigma_px: float
    width: int
    height: int
    cx: float
    cy: float
    pairs_used: int
    candidates_px: np.ndarray
    cost: np.ndarray

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.f_px))

    @property
    def relative_sigma(self) -> float:
        return self.sigma_px / self.f_px

    def camera(self) -> Camera:
        """The calibrated pinhole camera."""
        return Camera(self.f_px, self.f_px, self.cx, self.cy, self.width, self.height)

    def describe(self) -> str:
        return (f"self-calibrated focal length {self.f_px:.1f} +- {self.sigma_px:.1f} px "
                f"(horizontal FOV {self.hfov_deg:.1f} deg, {self.pairs_used} frame pairs)")


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim != 2:
        raise InputError(f"expected (H, W) or (H, W, 3) frames, got shape {image.shape}")
    return image


def track_pairs(images: list[np.ndarray], min_flow_ratio: float = 0.12, max_gap: int = 60,
                max_features: int = 1500) -> list[tuple[np.ndarray, np.ndarray]]:
    """Point correspondences between frame pairs with enough parallax.

    From each anchor frame, corners are tracked frame to frame with pyramidal Lucas-Kanade (with a
    forward-backward check) until their median motion exceeds ``min_flow_ratio`` of the image width
    or ``max_gap`` frames passed; the next anchor is the frame reached.

    Args:
        images: (H, W[, 3]) frames in order.
        min_flow_ratio: median corner motion that closes a pair, as a fraction of the width.
        max_gap: most frames between the two views of a pair.
        max_features: corners detected per anchor.

    Returns:
        Pairs of (N, 2) float64 pixel coordinates (first view, second view).
    """
    grey = [_grey(np.asarray(im)) for im in images]
    width = grey[0].shape[1]
    lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01))
    pairs, a = [], 0
    while a < len(grey) - 1:
        p0 = cv2.goodFeaturesToTrack(grey[a], max_features, 0.005, 7)
        if p0 is None or len(p0) < 30:
            a += 1
            continue
        start, cur, b = p0.reshape(-1, 2).astype(np.float32), p0.astype(np.float32), a
        while b < len(grey) - 1 and b - a < max_gap:
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(grey[b], grey[b + 1], cur, None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(grey[b + 1], grey[b], nxt, None, **lk)
            ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - cur).reshape(-1, 2), axis=1) < 0.3)
            start, cur, b = start[ok], nxt[ok], b + 1
            if len(cur) < 30 or np.median(np.linalg.norm(cur.reshape(-1, 2) - start, axis=1)) > min_flow_ratio * width:
                break
        if len(cur) >= 30 and b > a:
            # Re-track anchor -> last frame directly from the chained guess: no drift accumulates.
            flags = dict(lk, maxLevel=1, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
            end, st, _ = cv2.calcOpticalFlowPyrLK(grey[a], grey[b], start.reshape(-1, 1, 2), cur.copy(), **flags)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(grey[b], grey[a], end, start.reshape(-1, 1, 2).copy(), **flags)
            ok = ((st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back.reshape(-1, 2) - start, axis=1) < 0.1)
                  & (np.linalg.norm(end.reshape(-1, 2) - cur.reshape(-1, 2), axis=1) < 2.0))
            if ok.sum() >= 30:
                pairs.append((start[ok].astype(np.float64), end.reshape(-1, 2)[ok].astype(np.float64)))
        a = max(b, a + 1)
    return pairs


def fundamental(p0: np.ndarray, p1: np.ndarray, threshold_px: float = 0.5,
                planar_ratio: float = 0.9) -> tuple[np.ndarray, np.ndarray] | None:
    """Robust F (3x3, unit norm) of one pair and its (N,) inlier mask, or None when too few inliers
    or a homography explains the pair."""
    if len(p0) < 15:
        return None
    F, mask = cv2.findFundamentalMat(p0, p1, cv2.USAC_MAGSAC, threshold_px, 0.9999, 20000)
    if F is None or F.shape != (3, 3) or mask is None or int(mask.sum()) < 15:
        return None
    inl = mask.ravel().astype(bool)
    _, hmask = cv2.findHomography(p0, p1, cv2.USAC_MAGSAC, threshold_px, maxIters=20000, confidence=0.9999)
    if hmask is not None and hmask.sum() >= planar_ratio * inl.sum():
        return None
    return F / np.linalg.norm(F), inl


def singular_gap(F: np.ndarray, focal_px: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """(K,) relative gap (s1 - s2) / s2 of the singular values of K^T F K for each focal length."""
    f = np.asarray(focal_px, dtype=np.float64).reshape(-1)
    K = np.zeros((len(f), 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = f
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = cx, cy, 1.0
    E = np.transpose(K, (0, 2, 1)) @ F[None] @ K
    s = np.linalg.svd(E, compute_uv=False)
    return (s[:, 0] - s[:, 1]) / np.maximum(s[:, 1], 1e-300)


def _argmin_refined(f: np.ndarray, cost: np.ndarray) -> float:
    """Minimum of a sampled cost on a log grid, refined with a parabola through its neighbours."""
    k = int(np.argmin(cost))
    if 0 < k < len(f) - 1:
        x = np.log(f[k - 1:k + 2])
        c = cost[k - 1:k + 2]
        denom = c[0] - 2 * c[1] + c[2]
        if denom > 0:
            h = x[1] - x[0]
            return float(np.exp(x[1] + 0.5 * h * (c[0] - c[2]) / denom))
    return float(f[k])


def estimate_focal(images: list[np.ndarray], cx: float | None = None, cy: float | None = None,
                   hfov_range_deg: tuple[float, float] = (25.0, 130.0), steps: int = 600,
                   min_flow_ratio: float = 0.12, max_gap: int = 60, refine_steps: int = 15) -> FocalEstimate:
    """Focal length (fx = fy, in pixels) of a moving camera from its frames.

    Args:
        images: (H, W[, 3]) frames of one camera in time order (a few dozen with motion that
            translates and rotates; pure rotation or one plane alone do not constrain f).
        cx, cy: principal point in pixels; default the image centre.
        hfov_range_deg: horizontal fields of view swept.
        steps: candidates in the sweep (log-spaced).
        min_flow_ratio, max_gap: pair selection, see :func:`track_pairs`.
        refine_steps: LM iterations of :func:`refine_focal` (0: the sweep's minimum, no uncertainty).

    Raises:
        InputError: fewer than 2 frames, or no pair constrains the focal length (no parallax).
    """
    if len(images) < 2:
        raise InputError(f"self-calibration needs at least 2 frames with camera motion, got {len(images)}")
    h, w = np.asarray(images[0]).shape[:2]
    cx = (w - 1) / 2.0 if cx is None else float(cx)
    cy = (h - 1) / 2.0 if cy is None else float(cy)
    lo, hi = (0.5 * w / math.tan(math.radians(a) / 2.0) for a in sorted(hfov_range_deg, reverse=True))
    f = np.geomspace(lo, hi, steps)
    fits = []  # (F, inlier pixels in view 0, in view 1) per pair that constrains f
    for p0, p1 in track_pairs(images, min_flow_ratio, max_gap):
        fit = fundamental(p0, p1)
        if fit is not None:
            fits.append((fit[0], p0[fit[1]], p1[fit[1]]))
    if not fits:
        raise InputError("self-calibration found no frame pair with enough parallax off a single plane; use frames "
                         "where the camera moves sideways through a 3D scene, or give the intrinsics")
    total = np.sum([singular_gap(F, f, cx, cy) for F, _, _ in fits], axis=0)
    f0 = _argmin_refined(f, total)
    matches = [(p0, p1) for _, p0, p1 in fits]
    best, sigma = refine_focal(matches, f0, cx, cy, steps=refine_steps) if refine_steps else (f0, float("nan"))
    if not lo / 1.5 < best < hi * 1.5:
        best, sigma = f0, float("nan")  # the refinement ran off: keep the sweep's minimum
    return FocalEstimate(best, sigma, int(w), int(h), cx, cy, len(fits), f, total)


def sampson_residuals(rotvec: torch.Tensor, t: torch.Tensor, log_f: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor,
                      pair: torch.Tensor, R0: torch.Tensor, cx: float, cy: float) -> torch.Tensor:
    """(M,) signed Sampson distances in pixels of matches under a shared focal length.

    Args:
        rotvec: (P, 3) rotation vectors applied on top of ``R0`` (pair rotations R = Exp(rotvec) R0).
        t: (P, 3) translations (direction only matters).
        log_f: scalar log focal length (pixels).
        x0, x1: (M, 3) homogeneous pixels in the first and second view of their pair.
        pair: (M,) pair index of each match.
        R0: (P, 3, 3) initial rotations (x1 ~ K (R X0 + t)).
        cx, cy: principal point.
    """
    R = axis_angle_to_rotation_matrix(rotvec) @ R0
    t = t / t.norm(dim=1, keepdim=True)
    zero = torch.zeros_like(t[:, 0])
    tx = torch.stack([torch.stack([zero, -t[:, 2], t[:, 1]], 1), torch.stack([t[:, 2], zero, -t[:, 0]], 1),
                      torch.stack([-t[:, 1], t[:, 0], zero], 1)], 1)
    f = log_f.exp()
    K_inv = torch.stack([torch.stack([1 / f, 0 * f, -cx / f]), torch.stack([0 * f, 1 / f, -cy / f]),
                         torch.stack([0 * f, 0 * f, 1 + 0 * f])])
    F = (K_inv.T @ (tx @ R) @ K_inv)[pair]
    Fx0 = (F @ x0[..., None])[..., 0]
    Ftx1 = (F.transpose(1, 2) @ x1[..., None])[..., 0]
    den = Fx0[:, 0] ** 2 + Fx0[:, 1] ** 2 + Ftx1[:, 0] ** 2 + Ftx1[:, 1] ** 2
    return (x1 * Fx0).sum(1) / den.clamp_min(1e-30).sqrt()


def refine_focal(matches: list[tuple[np.ndarray, np.ndarray]], f0: float, cx: float, cy: float, steps: int = 15,
                 huber_px: float = 1.0) -> tuple[float, float]:
    """Joint Levenberg-Marquardt over the focal length and each pair's relative pose.

    Minimises the Sampson distance of every inlier match (the first-order two-view reprojection error,
    structure eliminated) with a Huber kernel.

    Args:
        matches: per pair, (N, 2) pixels in the first and the second view (inliers).
        f0: initial focal length in pixels.
        cx, cy: principal point (fixed).
        steps: LM iterations.
        huber_px: Huber threshold in pixels.

    Returns:
        (focal length, one-sigma uncertainty), pixels: the larger of the Gauss-Newton standard
        deviation and a delete-one-pair jackknife.
    """
    f64 = dict(dtype=torch.float64)
    K0 = np.array([[f0, 0, cx], [0, f0, cy], [0, 0, 1.0]])
    R0, t0 = [], []
    for p0, p1 in matches:
        E, _ = cv2.findEssentialMat(p0, p1, K0, cv2.RANSAC, 0.999, 1.0)
        E = E[:3] if E is not None and E.shape[0] >= 3 else np.eye(3)
        _, R, t, _ = cv2.recoverPose(E, p0, p1, K0)
        R0.append(R)
        t0.append(t.ravel())
    homog = lambda p: torch.cat([torch.as_tensor(p, **f64), torch.ones(len(p), 1, **f64)], 1)  # noqa: E731
    x0 = torch.cat([homog(p0) for p0, _ in matches])
    x1 = torch.cat([homog(p1) for _, p1 in matches])
    pair = torch.cat([torch.full((len(p0),), i, dtype=torch.long) for i, (p0, _) in enumerate(matches)])
    R0 = torch.as_tensor(np.array(R0), **f64)
    rotvec, t, log_f = torch.zeros(len(matches), 3, **f64), torch.as_tensor(np.array(t0), **f64), math.log(f0)
    theta = torch.cat([rotvec.flatten(), t.flatten(), torch.tensor([log_f], **f64)])
    n_pairs = len(matches)

    def residuals(th: torch.Tensor) -> torch.Tensor:
        return sampson_residuals(th[:3 * n_pairs].view(-1, 3), th[3 * n_pairs:6 * n_pairs].view(-1, 3), th[-1],
                                 x0, x1, pair, R0, cx, cy)

    # Levenberg-Marquardt with a Huber kernel (IRLS weights); forward-mode Jacobians are cheap here
    # (a few dozen parameters, thousands of residuals), where reverse mode per residual is not.
    damping = 1e-3
    for _ in range(steps):
        r = residuals(theta)
        w = torch.where(r.abs() <= huber_px, 1.0, huber_px / r.abs().clamp_min(1e-12))
        J = torch.func.jacfwd(residuals)(theta)
        H, g = J.T @ (w[:, None] * J), J.T @ (w * r)
        cost = float((w * r * r).sum())
        for _ in range(10):
            step = torch.linalg.solve(H + damping * torch.diag(torch.diag(H).clamp_min(1e-9)), -g)
            r_new = residuals(theta + step)
            if float((w * r_new * r_new).sum()) < cost:
                theta, damping = theta + step, max(damping / 3, 1e-9)
                break
            damping *= 4
    f = math.exp(float(theta[-1]))
    # Uncertainty: the larger of the Gauss-Newton standard deviation of log f (white pixel noise) and a
    # one-step delete-one-pair jackknife (tracking errors are correlated within a pair; pairs disagree).
    r = residuals(theta)
    inl = r.abs() < 3 * huber_px
    J, r, pair_in = torch.func.jacfwd(residuals)(theta)[inl], r[inl], pair[inl]
    H = J.T @ J
    dof = max(len(r) - J.shape[1], 1)
    var_gn = float(torch.linalg.pinv(H, rtol=1e-10, hermitian=True)[-1, -1]) * float((r ** 2).sum()) / dof
    drops = []
    for i in range(n_pairs if n_pairs > 2 else 0):
        sel = pair_in == i
        if sel.any():
            Ji, ri = J[sel], r[sel]
            drops.append(float((torch.linalg.pinv(H - Ji.T @ Ji, rtol=1e-10, hermitian=True) @ (Ji.T @ ri))[-1]))
    d = np.asarray(drops)
    var_jk = (len(d) - 1) / len(d) * float(((d - d.mean()) ** 2).sum()) if len(d) > 2 else float("inf")
    return f, f * math.sqrt(max(var_gn, var_jk, 0.0))
