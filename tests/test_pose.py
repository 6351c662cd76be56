import numpy as np
import pytest

from mono_metric.geometry import inv_se3, make_se3, quat_to_rotmat, rotation_angle_rad
from mono_metric.tracking import refine_pose_lm, refine_pose_opencv, solve_pnp_ransac

K = np.array([[718.0, 0, 607.0], [0, 718.0, 185.0], [0, 0, 1]])


def _scene(rng, n=400, outlier_frac=0.3, noise_px=0.5):
    T_cam_world = make_se3(quat_to_rotmat(np.array([0.02, -0.05, 0.01, 1.0]))[0], np.array([0.3, -0.1, 1.2]))
    p_cam = np.column_stack([rng.uniform(-10, 10, n), rng.uniform(-2, 2, n), rng.uniform(4, 40, n)])
    T_world_cam = inv_se3(T_cam_world)
    p_world = p_cam @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]
    uv = (p_cam @ K.T)[:, :2] / p_cam[:, 2:3] + rng.normal(0, noise_px, (n, 2))
    outlier = rng.random(n) < outlier_frac
    uv[outlier] = rng.uniform([0, 0], [1241, 376], (outlier.sum(), 2))
    return T_cam_world, p_world, uv, outlier


def _errors(T_true, T_est):
    E = inv_se3(T_true) @ T_est
    return np.degrees(rotation_angle_rad(E[:3, :3])), np.linalg.norm(E[:3, 3])


@pytest.mark.parametrize("refine,solver", [(refine_pose_opencv, "iterative"), (refine_pose_lm, "iterative"),
                                           (refine_pose_opencv, "ap3p")])
def test_pnp_with_30_percent_outliers(rng, refine, solver):
    T, pw, uv, outlier = _scene(rng)
    res = solve_pnp_ransac(pw, uv, K, threshold_px=1.5, min_inliers=25, solver=solver)
    assert res.ok
    inl = np.zeros(len(uv), bool)
    inl[res.inliers] = True
    assert (inl & outlier).sum() <= 2 and (inl & ~outlier).sum() > 0.8 * (~outlier).sum()
    T_ref = refine(pw[res.inliers], uv[res.inliers], K, res.T_cam_world)
    rot_deg, trans_m = _errors(T, T_ref)
    assert rot_deg < 0.05 and trans_m < 0.02


def test_robust_lm_resists_outliers_that_plain_lm_does_not(rng):
    T, pw, uv, outlier = _scene(rng, outlier_frac=0.15, noise_px=0.3)
    start = T.copy()
    start[:3, 3] += [0.05, -0.03, 0.1]
    rot_r, trans_r = _errors(T, refine_pose_lm(pw, uv, K, start, huber_px=1.0, steps=20))
    rot_p, trans_p = _errors(T, refine_pose_opencv(pw, uv, K, start))
    assert trans_r < 0.03 and rot_r < 0.1
    assert trans_r < 0.5 * trans_p  # without a kernel, 15 % outliers pull the pose away


def test_too_few_points_is_not_ok():
    res = solve_pnp_ransac(np.zeros((3, 3)), np.zeros((3, 2)), K, 1.5, 25, T_guess=np.eye(4))
    assert not res.ok and np.array_equal(res.T_cam_world, np.eye(4))
    with pytest.raises(ValueError):
        solve_pnp_ransac(np.zeros((5, 3)), np.zeros((4, 2)), K, 1.5, 3)
