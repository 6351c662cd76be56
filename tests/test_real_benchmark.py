"""The real-sequence benchmark's reference methods on exact synthetic ground truth, and smoke runs of it."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mono_metric import load_sequence
from mono_metric.camera import Camera
from mono_metric.eval import references as refs
from mono_metric.eval.trajectory import ate, relative_rotation_errors_deg
from mono_metric.geometry import inv_se3, quat_to_rotmat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_sequences  # noqa: E402


def _frames(spec: str):
    seq = load_sequence(spec)
    frames = [seq[i] for i in range(len(seq))]
    gt = inv_se3(seq.gt.T_world_cam[0]) @ seq.gt.T_world_cam
    return seq, [f.image for f in frames], [f.depth_m for f in frames], gt


@pytest.fixture(scope="module")
def street():
    return _frames("synthetic:street?frames=6&seed=2")


@pytest.fixture(scope="module")
def room():
    return _frames("synthetic:room?frames=6&seed=2")


def test_static_ate_is_the_spread_of_the_ground_truth(street):
    _, _, _, gt = street
    res = refs.static_poses(len(gt))
    assert res.T_world_cam.shape == (len(gt), 4, 4) and res.failures == 0
    centred = gt[:, :3, 3] - gt[:, :3, 3].mean(0)
    assert ate(gt, res.T_world_cam).rmse_m == pytest.approx(np.sqrt((centred ** 2).sum(1).mean()), rel=1e-9)


def test_five_point_street_rotation_and_depth_scale(street):
    seq, images, depths, gt = street
    res = refs.five_point_odometry(images, seq.camera, depths, max_depth_m=80.0)
    assert res.failures == 0 and res.flips == 0
    rot = relative_rotation_errors_deg(gt, res.rotation_only)
    assert np.median(rot) < 0.1  # GT turns ~0.23 deg per frame; rendering noise 1.5 levels
    assert np.allclose(res.rotation_only[:, :3, 3], 0.0)
    step_gt = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)
    step_est = np.linalg.norm(np.diff(res.with_depth[:, :3, 3], axis=0), axis=1)
    assert np.allclose(step_est, step_gt, rtol=0.03)  # the scale comes from the exact depth
    assert ate(gt, res.with_depth).rmse_m < 0.05  # ~4.5 m driven


def test_five_point_exact_rotation_with_far_points_and_small_baseline():
    """1 cm baseline, points 2-6 m away: OpenCV's default cheirality test (50 baselines) rejects every
    point; ours keeps them and recovers the rotation."""
    rng = np.random.default_rng(3)
    cam = Camera(500.0, 500.0, 320.0, 240.0, 640, 480)
    X0 = np.column_stack([rng.uniform(-2, 2, 300), rng.uniform(-1.5, 1.5, 300), rng.uniform(2, 6, 300)])
    R = quat_to_rotmat(np.array([[0.01, -0.02, 0.005, 1.0]]))[0]
    t = np.array([0.01, 0.0, 0.002])
    uv0, _ = cam.project(X0)
    uv1, _ = cam.project(X0 @ R.T + t)
    est = refs._essential_pose(uv0, uv1, cam.K, 0.5, 90.0)
    assert est is not None
    R_est, t_est, inliers, flipped = est
    assert not flipped and inliers.sum() > 250
    assert np.degrees(np.arccos(np.clip((np.trace(R.T @ R_est) - 1) / 2, -1, 1))) < 0.01  # of a 2.6 deg turn
    assert abs(t_est @ t / np.linalg.norm(t)) > 0.999
    default = cv2.recoverPose(cv2.findEssentialMat(uv0, uv1, cam.K, cv2.RANSAC, 0.999, 0.5)[0][:3], uv0, uv1, cam.K)
    assert default[0] < 8  # why the threshold is raised


def test_open3d_odometry_room_exact_depth(room):
    seq, images, depths, gt = room
    res = refs.open3d_rgbd_odometry(images, depths, seq.camera, max_depth_m=6.0)
    assert res.failures == 0
    assert ate(gt, res.T_world_cam).rmse_m < 0.003  # the camera moves ~8 cm
    assert np.median(relative_rotation_errors_deg(gt, res.T_world_cam)) < 0.1


def test_open3d_odometry_direction_convention(room):
    """A wrong source/target order shows as the motion running backwards."""
    seq, images, depths, gt = room
    res = refs.open3d_rgbd_odometry(images[:2], depths[:2], seq.camera, max_depth_m=6.0)
    step_gt, step_est = gt[1, :3, 3], res.T_world_cam[1, :3, 3]
    assert step_est @ step_gt / (np.linalg.norm(step_gt) ** 2) == pytest.approx(1.0, abs=0.1)


def test_kiss_icp_room_exact_depth(room):
    pytest.importorskip("kiss_icp", reason="KISS-ICP (bench extra) not installed: pip install 'mono_metric[bench]'")
    seq, _, depths, gt = room
    res = refs.kiss_icp_odometry(depths, seq.camera, max_depth_m=6.0)
    static = ate(gt, refs.static_poses(len(gt)).T_world_cam).rmse_m
    assert res.failures == 0 and res.T_world_cam.shape == gt.shape
    assert np.allclose(res.T_world_cam[0], np.eye(4))
    assert ate(gt, res.T_world_cam).rmse_m < 0.3 * static


def test_backproject_cloud_stride_and_range():
    cam = Camera(100.0, 100.0, 3.5, 2.5, 8, 6)
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, 0], depth[2, 2] = 0.0, 9.0
    pts = refs.backproject_cloud(depth, cam, max_depth_m=5.0, pixel_stride=2)
    assert pts.shape == (12 - 2, 3) and np.allclose(pts[:, 2], 2.0)


def test_benchmark_on_synthetic_uri_shares_depth(tmp_path):
    """A synthetic: URI runs like a real sequence; our pipeline gets the same depth arrays as the references."""
    rows = real_sequences.main(["--sequences", "synthetic:room?frames=5&seed=4", "--depth", "gt", "--methods",
                                "ours", "static", "five_point_rot", "--out", str(tmp_path)])
    by = {(r["depth"], r["method"]): r for r in rows}
    assert set(by) == {("none", "static"), ("none", "five_point_rot"), ("gt", "ours")}
    assert by[("gt", "ours")]["ate_cm"] < 0.5 * by[("none", "static")]["ate_cm"]
    assert np.isnan(by[("none", "five_point_rot")]["ate_cm"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved) == 3 and (tmp_path / "table.md").is_file() and (tmp_path / "results.csv").is_file()
    seq = load_sequence("synthetic:room?frames=2&seed=4")
    frames = [seq[0], seq[1]]
    depths = [np.full(frames[0].depth_m.shape, 1.5, np.float32) for _ in frames]
    cached = real_sequences.CachedFrames(seq, frames, depths)
    assert all(cached[i].depth_m is depths[i] for i in range(2))


def test_benchmark_smoke_on_shared_sequences(shared_data, tmp_path):
    rows = real_sequences.main(["--data", str(shared_data), "--sequences", "tum_fr1_desk_9f", "kitti_06",
                                "--max-frames", "4", "--methods", "ours", "static", "five_point", "--out",
                                str(tmp_path)])
    got = {(r["sequence"], r["depth"], r["method"]) for r in rows}
    for depth in ("gt", "gt_degraded", "mono_metric_tiny"):
        assert {("tum_fr1_desk_9f", depth, "ours"), ("tum_fr1_desk_9f", depth, "five_point")} <= got
    assert ("kitti_06", "mono_metric_tiny", "ours") in got
    assert not any(s == "kitti_06" and d in ("gt", "gt_degraded") for s, d, _ in got)  # no sensor depth
    for r in rows:
        assert r["frames"] == 4 and np.isfinite(r["rot_median_deg"]) and np.isfinite(r["ate_cm"])
    table = (tmp_path / "table.md").read_text()
    assert "kitti_06: gt_degraded skipped" in table
