"""Dense keyframe refinement: point-to-plane ICP on Open3D clouds."""
import numpy as np
import pytest

from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.geometry import inv_se3, rotation_angle_rad
import open3d as o3d
import open3d.core as o3c

from mono_metric.tracking.icp import DepthCloud, information_matrix, point_to_plane_icp, refine_pose_icp, voxel_down_sample


def test_icp_recovers_a_perturbed_keyframe_pose():
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=4, frames=8, width=320, height=240))
    a, b = seq[0], seq[6]
    target = DepthCloud.from_depth(seq.camera, a.image, a.depth_m, a.T_world_cam, 0.03, 5.0)
    rng = np.random.default_rng(0)
    wrong = b.T_world_cam.copy()
    wrong[:3, 3] += rng.normal(0, 0.03, 3)  # a few cm and about a degree off, like a PnP pose on noisy corners
    c, s = np.cos(0.015), np.sin(0.015)
    wrong[:3, :3] = wrong[:3, :3] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    source = DepthCloud.from_depth(seq.camera, b.image, b.depth_m, wrong, 0.03, 5.0)
    T, fitness, rmse = refine_pose_icp(source, target, wrong, max_corr_m=0.1)
    err = inv_se3(b.T_world_cam) @ T
    before = inv_se3(b.T_world_cam) @ wrong
    assert fitness > 0.5 and rmse < 0.05
    assert np.linalg.norm(err[:3, 3]) < 0.3 * np.linalg.norm(before[:3, 3])
    assert rotation_angle_rad(err[:3, :3]) < 0.3 * rotation_angle_rad(before[:3, :3])


def test_icp_and_information_are_repeatable_and_agree_with_open3d():
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=4, frames=8, width=320, height=240))
    a, b = seq[0], seq[5]
    target = DepthCloud.from_depth(seq.camera, a.image, a.depth_m, np.eye(4), 0.03, 5.0).cloud
    source = DepthCloud.from_depth(seq.camera, b.image, b.depth_m, np.eye(4), 0.03, 5.0).cloud
    init = inv_se3(a.T_world_cam) @ b.T_world_cam
    init[:3, 3] += 0.02
    runs = [point_to_plane_icp(source, target, init, 0.09, 10) for _ in range(3)]
    infos = [information_matrix(source, target, runs[0][0], 0.09) for _ in range(3)]
    assert all(np.array_equal(runs[0][0], r[0]) for r in runs) and all(np.array_equal(infos[0], i) for i in infos)
    reg = o3d.t.pipelines.registration  # the same problem solved by Open3D's own (non-repeatable) ICP
    ref = reg.icp(source, target, 0.09, o3c.Tensor(init), reg.TransformationEstimationPointToPlane(),
                  reg.ICPConvergenceCriteria(max_iteration=10))
    assert np.abs(ref.transformation.numpy() - runs[0][0]).max() < 1e-4 and abs(ref.fitness - runs[0][1]) < 1e-3
    ref_info = reg.get_information_matrix(source, target, 0.09, o3c.Tensor(runs[0][0])).numpy()
    assert np.allclose(infos[0], ref_info, rtol=1e-3, atol=1e-3 * np.abs(ref_info).max())
    # The voxel grid comes back in one order, whatever order Open3D's hash map gave.
    pc = o3d.t.geometry.PointCloud(o3c.Tensor(np.random.default_rng(0).random((5000, 3)).astype(np.float32)))
    grids = [voxel_down_sample(pc, 0.1).point.positions.numpy() for _ in range(3)]
    assert all(np.array_equal(grids[0], g) for g in grids)


def test_icp_keeps_the_pose_without_enough_points():
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=4, frames=1, width=160, height=120))
    f = seq[0]
    empty = DepthCloud.from_depth(seq.camera, f.image, np.zeros_like(f.depth_m), f.T_world_cam, 0.03, 5.0)
    full = DepthCloud.from_depth(seq.camera, f.image, f.depth_m, f.T_world_cam, 0.03, 5.0)
    T, fitness, _ = refine_pose_icp(empty, full, f.T_world_cam, 0.1)
    assert fitness == 0.0 and np.array_equal(T, f.T_world_cam)
    with pytest.raises(ValueError, match="ICP method"):
        refine_pose_icp(full, full, f.T_world_cam, 0.1, method="nearest")


def test_odometry_with_icp_refinement_on_exact_depth():
    from mono_metric.config import TrackingConfig
    from mono_metric.eval import ate
    from mono_metric.odometry import Odometry

    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=3, frames=40, width=320, height=240))
    odo = Odometry(TrackingConfig(icp_refine=True, icp_voxel_m=0.03, icp_max_corr_m=0.1), seq.camera)
    for f in seq:
        odo.track(f.image, f.timestamp, f.depth_m)
    assert odo.timings_s["icp"] > 0 and len(odo.keyframes()) >= 2
    r = ate(seq.gt, odo.trajectory())
    assert r.rmse_m < 0.02 and r.scale_error < 0.05


def test_voxel_grid_matches_open3d():
    rng = np.random.default_rng(1)
    pc = o3d.t.geometry.PointCloud(o3c.Tensor((rng.random((5000, 3)) * [4, 2, 1] - 1).astype(np.float32)))
    pc.point.colors = o3c.Tensor(rng.random((5000, 3)).astype(np.float32))
    ours = voxel_down_sample(pc, 0.1)
    ref = pc.voxel_down_sample(0.1)
    a, b = ours.point.positions.numpy(), ref.point.positions.numpy()
    order = np.lexsort(b.T[::-1])
    assert a.shape == b.shape and np.abs(a - b[order]).max() < 1e-5
    assert np.abs(ours.point.colors.numpy() - ref.point.colors.numpy()[order]).max() < 1e-5
