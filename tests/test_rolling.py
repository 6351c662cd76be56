"""Rolling-shutter tracking (tracking.rolling_shutter_ms): exact geometry against an iterative rolling-shutter
projection, and the odometry on a rendered rolling-shutter sequence."""
import dataclasses

import numpy as np
import pypose as pp
import pytest
import torch

from mono_metric.config import load_config
from mono_metric.geometry import inv_se3
from mono_metric.tracking.pnp import refine_pose_opencv
from mono_metric.tracking.rolling import (body_twist_per_s, derolled_points, refine_pose_rolling, rolling_pose,
                                         rolling_residuals_px)

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
H, READOUT_S, DT_S = 480, 0.025, 1 / 30
TWIST = np.array([0.3, -0.1, 0.2, 0.5, 2.0, -0.4])  # m/s and rad/s (a fast hand-held pan)
T_WORLD_CUR = np.eye(4)
T_WORLD_CUR[:3, 3] = [0.1, 0.2, 0.3]


def pose_at(s: float) -> np.ndarray:
    return T_WORLD_CUR @ pp.se3(torch.tensor(TWIST * s)).Exp().matrix().numpy()


def rolling_observations(n: int, seed: int = 0):
    """World points and the (pixel, depth in its row's camera) where a rolling shutter sees them (fixed point
    iteration on the row)."""
    rng = np.random.default_rng(seed)
    X, uv, z = [], [], []
    for _ in range(n):
        p = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.45, 0.45), 1.0]) * rng.uniform(1, 4)
        Xw = T_WORLD_CUR[:3, :3] @ p + T_WORLD_CUR[:3, 3]
        v = H / 2
        for _ in range(40):
            T_row_world = inv_se3(pose_at((v - (H - 1) / 2) * READOUT_S / H))
            pc = T_row_world[:3, :3] @ Xw + T_row_world[:3, 3]
            q = K @ pc
            v = q[1] / q[2]
        X.append(Xw), uv.append(q[:2] / q[2]), z.append(pc[2])
    return np.array(X), np.array(uv), np.array(z)


def test_twist_and_derolled_points_are_exact():
    twist = body_twist_per_s(pose_at(-DT_S), T_WORLD_CUR, DT_S)
    assert np.allclose(twist, TWIST, atol=1e-9)
    X, uv, z = rolling_observations(50)
    p_row = np.linalg.solve(K, np.column_stack([uv, np.ones(len(uv))]).T).T * z[:, None]
    p_mid = derolled_points(p_row, uv[:, 1], twist, H, READOUT_S)
    X_cam = (X - T_WORLD_CUR[:3, 3]) @ T_WORLD_CUR[:3, :3]
    assert np.abs(p_mid - X_cam).max() < 1e-9
    raw = derolled_points(p_row, uv[:, 1], twist, H, 0.0)  # readout 0: unchanged
    assert np.abs(raw - X_cam).max() > 0.01


def test_rolling_refine_recovers_the_pose_a_global_shutter_refine_misses():
    X, uv, _ = rolling_observations(300, seed=1)
    start = inv_se3(T_WORLD_CUR)
    start[:3, 3] += [0.02, -0.01, 0.015]
    T_global = inv_se3(refine_pose_opencv(X, uv, K, start))
    T_rolling = inv_se3(refine_pose_rolling(X, uv, K, start, pose_at(-DT_S), DT_S, H, READOUT_S))
    err = lambda T: np.linalg.norm(T[:3, 3] - T_WORLD_CUR[:3, 3])
    assert err(T_rolling) < 1e-4  # first order in the row time's translation only
    assert err(T_global) > 20 * err(T_rolling)
    with pytest.raises(ValueError, match="dt_prev_s"):
        refine_pose_rolling(X, uv, K, start, pose_at(-DT_S), 0.0, H, READOUT_S)


def test_rolling_pose_takes_back_the_rows_a_global_shutter_ransac_dropped():
    X, uv, _ = rolling_observations(300, seed=2)
    uv_obs = uv.copy()
    uv_obs[:30] += 25.0  # true outliers
    middle = np.nonzero((np.abs(uv[:, 1] - H / 2) < 80) & (np.arange(len(uv)) >= 30))[0]  # what a global RANSAC keeps
    start = inv_se3(T_WORLD_CUR)
    start[:3, 3] += [0.02, -0.01, 0.015]
    T, inliers = rolling_pose(X, uv_obs, middle, K, start, pose_at(-DT_S), DT_S, H, READOUT_S, 2.0)
    assert set(inliers) == set(range(30, 300))  # every true observation back, no outlier
    assert np.linalg.norm(inv_se3(T)[:3, 3] - T_WORLD_CUR[:3, 3]) < 1e-4
    res = rolling_residuals_px(X, uv_obs, K, T, pose_at(-DT_S), DT_S, H, READOUT_S)
    assert res[30:].max() < 0.05 and res[:30].min() > 20.0


def test_config_rejects_a_negative_readout():
    with pytest.raises(Exception, match="tracking.rolling_shutter_ms"):
        load_config(None, {"tracking": {"rolling_shutter_ms": -1.0}})


def test_odometry_on_a_rolling_shutter_render_is_better_with_the_model():
    from mono_metric.datasets import load_sequence
    from mono_metric.odometry import Odometry

    frames = list(load_sequence("synthetic:handheld?seed=11&frames=30&realism=off&readout_ms=25"))
    base = load_config("configs/synthetic_handheld.yaml")
    errors = {}
    for readout_ms in (0.0, 25.0):
        odo = Odometry(dataclasses.replace(base.tracking, rolling_shutter_ms=readout_ms), frames[0].camera,
                       max_depth_m=base.depth.max_depth_m)
        est = [odo.track(f.image, f.timestamp, f.depth_m).T_world_cam for f in frames]
        gt = [inv_se3(frames[0].T_world_cam) @ f.T_world_cam for f in frames]
        errors[readout_ms] = np.sqrt(np.mean([np.sum((e[:3, 3] - g[:3, 3]) ** 2) for e, g in zip(est, gt)]))
    assert errors[25.0] < 0.8 * errors[0.0], errors
