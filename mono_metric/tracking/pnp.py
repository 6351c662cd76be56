"""Metric pose from 3D-2D matches: PnP-RANSAC (OpenCV) then Levenberg-Marquardt with a robust kernel
(pypose) on the reprojection error.

Poses are ``T_cam_world`` 4x4 (points in the world frame, pixels in the camera image).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pypose as pp
import torch
from torch import nn

from mono_metric.geometry import make_se3


@dataclass
class PnPResult:
    """Outcome of :func:`solve_pnp_ransac`.

    Attributes:
        ok: a pose with at least ``min_inliers`` inliers was found.
        T_cam_world: (4, 4) pose (the guess when not ok).
        inliers: (K,) indices of inlier matches.
    """

    ok: bool
    T_cam_world: np.ndarray
    inliers: np.ndarray


_PNP_SOLVERS = {"iterative": cv2.SOLVEPNP_ITERATIVE, "ap3p": cv2.SOLVEPNP_AP3P}


def solve_pnp_ransac(points_world: np.ndarray, pixels: np.ndarray, K: np.ndarray, threshold_px: float,
                     min_inliers: int, T_guess: np.ndarray | None = None, iterations: int = 200,
                     solver: str = "iterative") -> PnPResult:
    """PnP inside RANSAC.

    Args:
        points_world: (N, 3) metres.
        pixels: (N, 2) observations.
        K: (3, 3) intrinsics.
        threshold_px: inlier reprojection threshold.
        min_inliers: fewer inliers make the result not ok.
        T_guess: optional (4, 4) ``T_cam_world`` initial guess (used by the 'iterative' solver).
        iterations: RANSAC iterations at most.
        solver: minimal solver of each sample: 'iterative' (5 points, OpenCV's LM) or 'ap3p' (4 points; OpenCV
            then fits EPnP on the inliers).
    """
    obj = np.ascontiguousarray(points_world, dtype=np.float64)
    img = np.ascontiguousarray(pixels, dtype=np.float64)
    if obj.shape[0] != img.shape[0] or obj.ndim != 2 or obj.shape[1] != 3 or img.shape[1] != 2:
        raise ValueError(f"expected (N, 3) points and (N, 2) pixels, got {obj.shape} and {img.shape}")
    guess = np.eye(4) if T_guess is None else T_guess
    fallback = PnPResult(False, guess.copy(), np.zeros(0, dtype=int))
    if len(obj) < max(min_inliers, 4):
        return fallback
    rvec0, _ = cv2.Rodrigues(guess[:3, :3])
    ok, rvec, tvec, inl = cv2.solvePnPRansac(obj, img, K, None, rvec0.copy(), guess[:3, 3].reshape(3, 1).copy(),
                                             T_guess is not None, iterationsCount=iterations,
                                             reprojectionError=threshold_px, confidence=0.999,
                                             flags=_PNP_SOLVERS[solver])
    if not ok or inl is None or len(inl) < min_inliers:
        return fallback
    R, _ = cv2.Rodrigues(rvec)
    return PnPResult(True, make_se3(R, tvec[:, 0]), inl[:, 0])


class _Reprojection(nn.Module):
    def __init__(self, T_cam_world: np.ndarray):
        super().__init__()
        self.pose = pp.Parameter(pp.mat2SE3(torch.from_numpy(T_cam_world), check=False))

    def forward(self, points_world: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        return pp.point2pixel(self.pose.Act(points_world), K)


def refine_pose_lm(points_world: np.ndarray, pixels: np.ndarray, K: np.ndarray, T_cam_world: np.ndarray,
                   huber_px: float = 1.0, steps: int = 5, tol: float = 1e-6) -> np.ndarray:
    """Robust Levenberg-Marquardt refinement of ``T_cam_world`` (pypose, Huber kernel, float64).

    Args:
        points_world: (N, 3) metres; pixels: (N, 2); K: (3, 3).
        T_cam_world: (4, 4) initial pose.
        huber_px: Huber kernel threshold in pixels (down-weights remaining outliers).
        steps: maximum LM iterations; stops early when the cost changes by less than ``tol`` (relative).

    Returns:
        (4, 4) refined ``T_cam_world``.
    """
    pts = torch.from_numpy(np.ascontiguousarray(points_world, dtype=np.float64))
    uv = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float64))
    Kt = torch.from_numpy(np.asarray(K, dtype=np.float64))
    model = _Reprojection(np.asarray(T_cam_world, dtype=np.float64)).double()
    optimizer = pp.optim.LM(model, strategy=pp.optim.strategy.TrustRegion(),
                            kernel=pp.optim.kernel.Huber(delta=huber_px))
    last = None
    for _ in range(steps):
        cost = float(optimizer.step(input=(pts, Kt), target=uv))
        if last is not None and abs(last - cost) <= tol * max(last, 1e-12):
            break
        last = cost
    return model.pose.matrix().detach().numpy()


def refine_pose_opencv(points_world: np.ndarray, pixels: np.ndarray, K: np.ndarray, T_cam_world: np.ndarray
                       ) -> np.ndarray:
    """Plain (non-robust) Levenberg-Marquardt refinement with OpenCV; about 100x faster than
    :func:`refine_pose_lm`, for inlier sets already cleaned by RANSAC."""
    rvec, _ = cv2.Rodrigues(np.asarray(T_cam_world[:3, :3], dtype=np.float64))
    tvec = np.asarray(T_cam_world[:3, 3], dtype=np.float64).reshape(3, 1)
    rvec, tvec = cv2.solvePnPRefineLM(np.ascontiguousarray(points_world, dtype=np.float64),
                                      np.ascontiguousarray(pixels, dtype=np.float64), K, None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    return make_se3(R, tvec[:, 0])
