"""Depth taken at another instant than its colour image (TUM's Kinect): warp and odometry correction."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mono_metric.camera import Camera
from mono_metric.config import TrackingConfig
from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.eval import ate
from mono_metric.geometry import depth_at_image_time, interpolate_se3, make_se3, warp_depth
from mono_metric.odometry import Odometry

TUM = Path(__file__).resolve().parents[2] / "shared" / "data" / "tum_fr1_xyz"


def _rot(axis_angle) -> np.ndarray:
    import cv2
    return cv2.Rodrigues(np.asarray(axis_angle, np.float64))[0]


def test_interpolate_se3_is_a_power():
    T = make_se3(_rot([0.1, -0.2, 0.05]), np.array([0.3, 0.1, -0.2]))
    half = interpolate_se3(T, 0.5)
    assert np.allclose(half @ half, T, atol=1e-12)
    assert np.allclose(interpolate_se3(T, -1.0), np.linalg.inv(T), atol=1e-12)
    assert np.allclose(interpolate_se3(T, 0.0), np.eye(4))


@pytest.mark.parametrize("angle", [2.5, 0.3, 1e-7])
def test_interpolate_se3_equals_pyposes_log_exp(angle):
    import pypose as pp
    import torch

    T = make_se3(_rot(angle * np.array([0.6, -0.48, 0.64])), np.array([1.5, -0.4, 2.0]))
    for f in (0.5, -1.3, 2.0):
        ref = (pp.mat2SE3(torch.as_tensor(T), check=False).Log() * f).Exp().matrix().numpy()
        assert np.allclose(interpolate_se3(T, f), ref, atol=1e-8)


def test_warp_depth_moves_a_plane_and_keeps_the_nearest_surface():
    cam = Camera(100.0, 100.0, 39.5, 29.5, 80, 60)
    depth = np.full((60, 80), 2.0, np.float32)
    depth[20:30, 30:40] = 1.0  # a box in front of the wall
    forward = make_se3(np.eye(3), np.array([0.0, 0.0, -0.5]))  # the camera moved 0.5 m forward
    out = warp_depth(depth, cam.K, forward)
    assert out[5, 40] == pytest.approx(1.5, abs=1e-6) and out[25, 35] == pytest.approx(0.5, abs=1e-6)
    # Sideways: the box moves 10 px ((0.1 m * 100 px) / 1 m) and hides what is behind it; the wall 5 px.
    side = make_se3(np.eye(3), np.array([-0.1, 0.0, 0.0]))
    out = warp_depth(depth, cam.K, side)
    assert np.all(out[21:29, 21:29] == 1.0) and out[25, 45] == 2.0
    assert np.all(out[:, 75:] == 0)  # nothing lands beyond the wall's shifted edge
    assert np.array_equal(depth_at_image_time(depth, cam.K, np.eye(4), side, 0.0, 1.0, 1.0), depth)


def test_depth_at_image_time_interpolates_the_motion():
    cam = Camera(100.0, 100.0, 39.5, 29.5, 80, 60)
    depth = np.full((60, 80), 2.0, np.float32)
    T_world_cur = make_se3(np.eye(3), np.array([0.0, 0.0, 0.3]))  # 0.3 m forward in 1 s
    # Depth taken 0.5 s before the current image: the camera was 0.15 m farther from the wall.
    out = depth_at_image_time(depth, cam.K, np.eye(4), T_world_cur, 0.0, 1.0, 0.5)
    assert out[30, 40] == pytest.approx(1.85, abs=1e-5)


def _lagged_run(sync: bool, lag: int = 1):
    """Room sequence tracked with each frame's depth taken ``lag`` frames earlier (a late depth stream)."""
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=3, frames=30, speed_mps=1.5))
    frames = [seq[i] for i in range(len(seq))]
    odo = Odometry(TrackingConfig(sync_depth_time=sync), seq.camera)
    for i, f in enumerate(frames):
        j = max(i - lag, 0)
        odo.track(f.image, f.timestamp, frames[j].depth_m, frames[j].timestamp)
    return ate(seq.gt, odo.trajectory())


def test_odometry_moves_late_depth_to_the_image_time():
    off, on = _lagged_run(False, lag=2), _lagged_run(True, lag=2)
    # The uncorrected run builds each keyframe on depth from two frames earlier: a scale bias.
    assert on.scale_error < 0.5 * off.scale_error and on.rmse_m < off.rmse_m


@pytest.mark.skipif(not TUM.is_dir(), reason="needs ../shared/data/tum_fr1_xyz (real TUM data)")
def test_tum_frames_carry_the_depth_time_stamp():
    from mono_metric.datasets.tum import TumRGBD

    seq = TumRGBD(TUM, max_frames=20)
    gaps = np.array([seq[i].depth_timestamp - seq[i].timestamp for i in range(len(seq))])
    assert np.all(np.abs(gaps) <= 0.02) and np.any(np.abs(gaps) > 1e-3)
    assert replace(seq[0]).depth_timestamp == seq[0].depth_timestamp
