import numpy as np
import pytest

from conftest import random_poses
from mono_metric import Trajectory
from mono_metric.eval import ate, depth_metrics, kitti_segment_errors, kitti_short_segment_errors, rpe, umeyama
from mono_metric.geometry import make_se3, quat_to_rotmat


def _noisy(rng, T, sigma_t=0.05, sigma_r=0.01):
    q = np.column_stack([rng.normal(0, sigma_r / 2, (len(T), 3)), np.ones(len(T))])
    noise = make_se3(quat_to_rotmat(q), rng.normal(0, sigma_t, (len(T), 3)))
    return T @ noise


def _evo(T):
    from evo.core.trajectory import PoseTrajectory3D

    return PoseTrajectory3D(poses_se3=list(T), timestamps=np.arange(len(T), dtype=float))


def test_ate_matches_evo(rng):
    from evo.core import metrics

    gt = random_poses(rng, 60)
    est = _noisy(rng, gt)
    # Put the estimate in another world frame: SE(3) alignment must undo it.
    est = make_se3(quat_to_rotmat(np.array([0.1, 0.3, -0.2, 0.9])), np.array([5.0, -2.0, 1.0])) @ est
    ref, e = _evo(gt), _evo(est)
    e.align(ref, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, e))
    ours = ate(gt, est)
    assert ours.rmse_m == pytest.approx(ape.get_statistic(metrics.StatisticsType.rmse), rel=1e-6)
    assert ours.max_m == pytest.approx(ape.get_statistic(metrics.StatisticsType.max), rel=1e-6)


@pytest.mark.parametrize("delta,all_pairs", [(1, False), (5, False), (5, True)])
def test_rpe_matches_evo(rng, delta, all_pairs):
    from evo.core import metrics

    gt = random_poses(rng, 40)
    est = _noisy(rng, gt)
    ours = rpe(gt, est, delta, all_pairs)
    assert ours.pairs == (40 - delta if all_pairs else len(range(0, 40 - delta, delta)))
    for relation, value in ((metrics.PoseRelation.translation_part, ours.trans_rmse_m),
                            (metrics.PoseRelation.rotation_angle_deg, ours.rot_rmse_deg)):
        m = metrics.RPE(relation, delta=delta, delta_unit=metrics.Unit.frames, all_pairs=all_pairs)
        m.process_data((_evo(gt), _evo(est)))
        assert value == pytest.approx(m.get_statistic(metrics.StatisticsType.rmse), rel=1e-6)


def test_ate_scale_is_reported_not_corrected(rng):
    gt = random_poses(rng, 50)
    est = gt.copy()
    est[:, :3, 3] *= 1.1
    r = ate(gt, est)
    assert r.sim3_scale == pytest.approx(1 / 1.1, rel=1e-9)
    assert r.scale_error == pytest.approx(1 - 1 / 1.1)
    assert r.rmse_sim3_m == pytest.approx(0.0, abs=1e-9)
    assert r.rmse_m > 0.05 * np.linalg.norm(gt[:, :3, 3] - gt[:, :3, 3].mean(0), axis=1).mean()
    assert ate(gt, gt).rmse_m == pytest.approx(0.0, abs=1e-9)


def test_umeyama_recovers_similarity(rng):
    src = rng.normal(size=(30, 3))
    R = quat_to_rotmat(np.array([0.2, -0.4, 0.1, 0.8]))[0]
    dst = 2.5 * src @ R.T + [1, 2, 3]
    R_est, t_est, s = umeyama(src, dst, with_scale=True)
    np.testing.assert_allclose(R_est, R, atol=1e-9)
    np.testing.assert_allclose(t_est, [1, 2, 3], atol=1e-9)
    assert s == pytest.approx(2.5)


def _straight(n, step, heading_bias=0.0):
    T = np.stack([np.eye(4)] * n)
    T[:, 2, 3] = np.arange(n) * step
    if heading_bias:
        T[:, 0, 3] = np.arange(n) * step * heading_bias
    return T


def test_kitti_segments_hand_case():
    # 1 m steps, 1000 frames: the estimate travels 2 % too far.
    gt = _straight(1000, 1.0)
    est = _straight(1000, 1.02)
    r = kitti_segment_errors(gt, est)
    # As the devkit: a segment ends at the first frame *more* than L metres on (L + 1 m here), and its
    # error is divided by the nominal L.
    starts = {L: len(range(0, 1000 - L - 1, 10)) for L in range(100, 900, 100)}
    expected = sum(n * 2.0 * (L + 1) / L for L, n in starts.items()) / sum(starts.values())
    assert r.t_err_pct == pytest.approx(expected, rel=1e-9) and r.r_err_deg_per_100m == pytest.approx(0.0, abs=1e-9)
    assert r.segments == sum(starts.values())
    # A constant yaw rate of 1 deg per 10 m: rotation error 10 deg/100 m relative to a straight estimate.
    yaw = np.radians(0.1) * np.arange(1000)
    curved = gt.copy()
    curved[:, :3, :3] = quat_to_rotmat(np.column_stack([np.zeros(1000), np.sin(yaw / 2), np.zeros(1000),
                                                        np.cos(yaw / 2)]))
    curved[:, :3, 3] = gt[:, :3, 3]
    r_rot = kitti_segment_errors(gt, curved)
    expected_rot = sum(n * 10.0 * (L + 1) / L for L, n in starts.items()) / sum(starts.values())
    assert r_rot.r_err_deg_per_100m == pytest.approx(expected_rot, rel=1e-6)


def test_kitti_short_variant():
    gt, est = _straight(60, 0.5), _straight(60, 0.525)
    assert kitti_segment_errors(gt, est).segments == 0
    short = kitti_short_segment_errors(gt, est)
    assert short.name == "kitti_short" and short.segments > 0
    assert short.lengths_m == pytest.approx([2.95 * k for k in range(1, 9)])
    # Segment ends fall on the next 0.5 m step beyond each length.
    over = [np.floor(L / 0.5 + 1e-9) * 0.5 + 0.5 for L in short.lengths_m]
    counts = [59 - int(round(o / 0.5)) + 1 for o in over]
    expected = sum(c * 5.0 * o / L for c, o, L in zip(counts, over, short.lengths_m)) / sum(counts)
    assert short.segments == sum(counts)
    assert short.t_err_pct == pytest.approx(expected, rel=1e-6)


def test_trajectory_objects_accepted_and_unmodified(rng):
    T = random_poses(rng, 10)
    gt = Trajectory(np.arange(10.0), T)
    before = gt.T_world_cam.copy()
    ate(gt, Trajectory(np.arange(10.0), _noisy(rng, T)))
    np.testing.assert_array_equal(gt.T_world_cam, before)
    with pytest.raises(ValueError, match="differ in length"):
        ate(gt, gt[:5])


def test_depth_metrics_hand_cases():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # 0 = invalid
    m = depth_metrics(gt.copy(), gt)
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["d1"] == 1 and m["n_valid"] == 3
    pred = np.array([[1.1, 2.2], [4.4, 123.0]])  # 10 % too far everywhere valid
    m = depth_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["sq_rel"] == pytest.approx(np.mean([0.01, 0.04, 0.16] / np.array([1, 2, 4])))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean([0.01, 0.04, 0.16])))
    assert m["rmse_log"] == pytest.approx(np.log(1.1))
    assert m["silog"] == pytest.approx(0.0, abs=1e-6)  # a global scale is invisible to SILog
    pred2 = np.array([[1.3, 2.0], [4.0, 1.0]])
    m2 = depth_metrics(pred2, gt)
    assert m2["d1"] == pytest.approx(2 / 3) and m2["d2"] == 1.0
    with pytest.raises(ValueError, match="no valid"):
        depth_metrics(gt, np.zeros_like(gt))
    with pytest.raises(ValueError, match="NaN"):
        depth_metrics(np.full_like(gt, np.nan), gt)
