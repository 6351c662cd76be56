"""Hybrid pose (tracking/essential.py) on exact synthetic two-view geometry."""
import numpy as np
import pytest

from mono_metric.geometry import inv_se3, make_se3, quat_to_rotmat, rotation_angle_rad
from mono_metric.tracking.essential import (essential_pose, hybrid_pose, rotation_compensated_parallax_px,
                                            translation_given_rotation)

K = np.array([[718.0, 0, 607.0], [0, 718.0, 185.0], [0, 0, 1]])
R_TRUE = quat_to_rotmat(np.array([0.01, -0.03, 0.005, 1.0]))[0]
T_CUR_REF = make_se3(R_TRUE, np.array([0.1, -0.02, 0.9]))  # forward motion of 0.9 m with a slight turn


def _views(rng, n=300, noise_px=0.0):
    """(N, 3) points in the reference camera, their pixels there and in the current camera."""
    p_ref = np.column_stack([rng.uniform(-10, 10, n), rng.uniform(-2, 2, n), rng.uniform(5, 40, n)])
    p_cur = p_ref @ T_CUR_REF[:3, :3].T + T_CUR_REF[:3, 3]
    uv_ref = (p_ref @ K.T)[:, :2] / p_ref[:, 2:3]
    uv_cur = (p_cur @ K.T)[:, :2] / p_cur[:, 2:3] + rng.normal(0, noise_px, (n, 2)) if noise_px else \
        (p_cur @ K.T)[:, :2] / p_cur[:, 2:3]
    return p_ref, uv_ref, uv_cur


def _rot_err_deg(R_a, R_b):
    return np.degrees(rotation_angle_rad(R_a.T @ R_b))


def test_essential_pose_recovers_rotation_and_direction_with_outliers(rng):
    _, uv_ref, uv_cur = _views(rng, noise_px=0.2)
    uv_cur[:60] = rng.uniform([0, 0], [1241, 376], (60, 2))  # 20 % outliers
    res = essential_pose(uv_ref, uv_cur, K, threshold_px=1.0, min_inliers=20)
    assert res.ok
    assert _rot_err_deg(R_TRUE, res.R_cur_ref) < 0.05
    t_dir = T_CUR_REF[:3, 3] / np.linalg.norm(T_CUR_REF[:3, 3])
    assert np.degrees(np.arccos(np.clip(res.t_dir_cur_ref @ t_dir, -1, 1))) < 1.0
    assert res.inliers[:60].sum() <= 3 and res.inliers[60:].mean() > 0.9
    assert res.parallax_px > 5.0


def test_parallax_is_zero_under_pure_rotation(rng):
    p_ref, uv_ref, _ = _views(rng, n=50)
    p_cur = p_ref @ R_TRUE.T
    uv_cur = (p_cur @ K.T)[:, :2] / p_cur[:, 2:3]
    assert rotation_compensated_parallax_px(uv_ref, uv_cur, K, R_TRUE).max() < 1e-6
    assert rotation_compensated_parallax_px(uv_ref, uv_cur, K, np.eye(3)).max() > 1.0


def test_too_few_tracks_is_not_ok(rng):
    _, uv_ref, uv_cur = _views(rng, n=10)
    assert not essential_pose(uv_ref, uv_cur, K, min_inliers=20).ok
    with pytest.raises(ValueError):
        essential_pose(uv_ref, uv_cur[:5], K)


@pytest.mark.parametrize("direction", [False, True])
def test_translation_given_rotation_recovers_metric_translation(rng, direction):
    p_ref, _, uv_cur = _views(rng)
    t_true = T_CUR_REF[:3, 3]
    d = t_true / np.linalg.norm(t_true) if direction else None
    t = translation_given_rotation(p_ref, uv_cur, K, R_TRUE, t_true * 0.7 + np.array([0.05, 0.0, 0.0]), d,
                                   iterations=10)
    assert np.linalg.norm(t - t_true) < 1e-6


def test_translation_fit_resists_wrong_depth_on_a_few_points(rng):
    p_ref, _, uv_cur = _views(rng)
    p_bad = p_ref.copy()
    p_bad[:30] *= 1.5  # 10 % of the depths 50 % too far
    t = translation_given_rotation(p_bad, uv_cur, K, R_TRUE, np.zeros(3), huber_px=1.0, iterations=15)
    assert np.linalg.norm(t - T_CUR_REF[:3, 3]) < 0.02


def test_hybrid_pose_selects_the_essential_matrix_only_where_depth_disagrees(rng):
    p_ref, uv_ref, uv_cur = _views(rng)
    T_world_ref = make_se3(quat_to_rotmat(np.array([0.0, 0.1, 0.0, 1.0]))[0], np.array([1.0, 2.0, 3.0]))
    points_world = p_ref @ T_world_ref[:3, :3].T + T_world_ref[:3, 3]
    T_cam_world_true = T_CUR_REF @ inv_se3(T_world_ref)
    T_pnp = T_cam_world_true @ make_se3(quat_to_rotmat(np.array([0.0, 0.004, 0.0, 1.0]))[0], np.zeros(3))
    n = len(uv_cur)
    # PnP explains every track: kept as it is.
    T, used = hybrid_pose(T_pnp, T_world_ref, points_world, uv_ref, uv_cur, K, pnp_inliers=n)
    assert used is None and np.array_equal(T, T_pnp)
    # PnP explains a third of them: rotation from the essential matrix, translation from the points.
    T, used = hybrid_pose(T_pnp, T_world_ref, points_world, uv_ref, uv_cur, K, pnp_inliers=n // 3)
    assert used is not None and used.mean() > 0.95
    assert _rot_err_deg(T_cam_world_true[:3, :3], T[:3, :3]) < 1e-3
    assert np.linalg.norm(inv_se3(T)[:3, 3] - inv_se3(T_cam_world_true)[:3, 3]) < 1e-3
    # No parallax demanded beyond what the tracks have: PnP again.
    T, used = hybrid_pose(T_pnp, T_world_ref, points_world, uv_ref, uv_cur, K, pnp_inliers=n // 3,
                          min_parallax_px=1e4)
    assert used is None
    with pytest.raises(ValueError):
        hybrid_pose(T_pnp, T_world_ref, points_world, uv_ref, uv_cur, K, n // 3, translation="metric")
