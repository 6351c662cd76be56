"""Photometric pose refinement (tracking/dense.py) on rendered synthetic frames with exact depth."""
import cv2
import numpy as np
import pytest

from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.geometry import inv_se3, make_se3, rotation_angle_rad
from mono_metric.tracking.dense import DenseReference, photometric_refine


@pytest.fixture(scope="module")
def room_pair():
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=3, frames=8))
    f0, f1 = seq[0], seq[6]
    gray = [cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY) for f in (f0, f1)]
    T_cur_ref = inv_se3(f1.T_world_cam) @ f0.T_world_cam
    return gray, f0.depth_m.astype(np.float32), seq.camera.K, T_cur_ref


def _errors(T_a, T_b):
    E = inv_se3(T_a) @ T_b
    return np.degrees(rotation_angle_rad(E[:3, :3])), np.linalg.norm(E[:3, 3])


PERTURBATION = make_se3(cv2.Rodrigues(np.array([[0.01], [-0.01], [0.005]]))[0], np.array([0.02, -0.01, 0.015]))


@pytest.mark.parametrize("gain,offset", [(1.0, 0.0), (1.2, 10.0)])
def test_refinement_recovers_the_pose_under_brightness_change(room_pair, gain, offset):
    (g0, g1), depth, K, T_true = room_pair
    ref = DenseReference.build(g0, depth, K, levels=3, max_points=3000)
    assert all(len(level.points) > 1000 for level in ref.levels)
    cur = np.clip(g1.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    init = PERTURBATION @ T_true
    assert _errors(T_true, init)[0] > 0.8
    res = photometric_refine(ref, cur, init, finest_level=0, iterations=15)
    rot_deg, trans_m = _errors(T_true, res.T_cur_ref)
    assert rot_deg < 0.05 and trans_m < 0.003
    assert res.cost_final < res.cost_init
    assert abs(res.gain / gain - 1.0) < 0.15  # the render's shading changes a little between the views


def test_identity_is_a_fixed_point(room_pair):
    (g0, _), depth, K, _ = room_pair
    ref = DenseReference.build(g0, depth, K, levels=2)
    res = photometric_refine(ref, g0, np.eye(4), finest_level=0)
    rot_deg, trans_m = _errors(np.eye(4), res.T_cur_ref)
    assert rot_deg < 1e-3 and trans_m < 1e-4 and res.cost_init < 1e-6


def test_pixels_without_depth_are_not_used(room_pair):
    (g0, _), depth, K, _ = room_pair
    holes = depth.copy()
    holes[:, : depth.shape[1] // 2] = 0  # left half has no depth
    ref = DenseReference.build(g0, holes, K, levels=1, max_points=100000)
    u = ref.levels[0].points[:, 0] / ref.levels[0].points[:, 2] * K[0, 0] + K[0, 2]
    assert len(u) > 100 and u.min() >= depth.shape[1] // 2 - 1


def test_bad_inputs(room_pair):
    (g0, _), depth, K, _ = room_pair
    with pytest.raises(ValueError):
        DenseReference.build(g0, depth[:10], K)
    ref = DenseReference.build(g0, depth, K, levels=2)
    with pytest.raises(ValueError):
        photometric_refine(ref, g0, np.eye(4), finest_level=2)
