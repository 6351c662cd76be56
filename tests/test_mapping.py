"""TSDF fusion and map accuracy on the synthetic world with exact ground truth."""
import numpy as np
import open3d as o3d
import pytest

from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.errors import InputError
from mono_metric.mapping.tsdf import (PointCloudAccumulator, TSDFMap, chamfer_distance, mesh_accuracy, mesh_chamfer,
                                 o3d_device)


@pytest.fixture(scope="module")
def room():
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=2, frames=60, width=320, height=240))
    return seq, [seq[i] for i in range(0, 60, 5)]


def _observed_gt_points(seq, frames, stride=4, max_depth_m=np.inf):
    pts = []
    for f in frames:
        d = f.depth_m[::stride, ::stride]
        v, u = np.nonzero((d > 0) & (d < max_depth_m))
        xyz = seq.camera.backproject(np.stack([u * stride, v * stride], 1).astype(float), d[v, u].astype(float))
        pts.append(xyz @ f.T_world_cam[:3, :3].T + f.T_world_cam[:3, 3])
    return np.concatenate(pts)


def test_tsdf_mesh_matches_ground_truth(room):
    seq, frames = room
    tsdf = TSDFMap(seq.camera, voxel_size_m=0.05, max_depth_m=5.0)
    for f in frames:
        tsdf.integrate(f.image, f.depth_m, f.T_world_cam)
    mesh = tsdf.mesh()
    assert tsdf.frames == len(frames) and tsdf.block_count > 0 and len(mesh.triangles) > 1000
    colors = np.asarray(mesh.vertex_colors)
    assert colors.min() >= 0.0 and colors.max() <= 1.0 and colors.std() > 0.02
    sampled = np.asarray(mesh.sample_points_uniformly(30000).points)
    c = chamfer_distance(sampled, _observed_gt_points(seq, frames))
    assert c["chamfer_m"] < 0.05, c
    acc = mesh_accuracy(mesh, seq.gt_mesh(), samples=30000)
    assert acc["accuracy_m"] < 0.03, acc
    # The same map anchored with a 10 % scale error is measurably worse.
    wrong = np.diag([1.1, 1.1, 1.1, 1.0])
    assert mesh_accuracy(mesh, seq.gt_mesh(), wrong, samples=30000)["accuracy_m"] > 2 * acc["accuracy_m"]


def test_street_tsdf_keeps_the_road_and_meets_the_chamfer_bound():
    """The road is the plane z = 0; on a grid whose voxel centres lie on it, marching cubes found no
    surface (TSDF exactly 0): the grid is offset by a fraction of a voxel."""
    seq = SyntheticSequence(SyntheticConfig(scene="street", seed=21, frames=10, width=620, height=188))
    frames = [seq[i] for i in range(0, 10, 3)]
    tsdf = TSDFMap(seq.camera, voxel_size_m=0.05, max_depth_m=15.0)
    for f in frames:
        tsdf.integrate(f.image, f.depth_m, f.T_world_cam)
    mesh = tsdf.mesh()
    v = np.asarray(mesh.vertices)
    assert np.mean(np.abs(v[:, 2]) < 0.05) > 0.2  # the road is there
    gt = _observed_gt_points(seq, frames, max_depth_m=15.0)
    c = mesh_chamfer(mesh, gt)
    assert c["chamfer_m"] < 0.05, c


def test_tsdf_skips_invalid_depth_and_rejects_mismatch(room):
    seq, frames = room
    tsdf = TSDFMap(seq.camera, voxel_size_m=0.1, max_depth_m=5.0)
    depth = frames[0].depth_m.copy()
    depth[:50] = np.nan
    depth[50:100] = np.inf
    tsdf.integrate(frames[0].image, depth, frames[0].T_world_cam)
    assert np.isfinite(np.asarray(tsdf.mesh().vertices)).all()
    with pytest.raises(InputError, match="differ in size"):
        tsdf.integrate(frames[0].image, depth[:10], frames[0].T_world_cam)
    with pytest.raises(InputError, match="positive"):
        TSDFMap(seq.camera, voxel_size_m=0.0)


def test_point_cloud_accumulator_downsamples(room):
    seq, frames = room
    acc = PointCloudAccumulator(seq.camera, voxel_size_m=0.1, max_depth_m=5.0)
    for f in frames[:3]:
        acc.add(f.image, f.depth_m, f.T_world_cam)
    cloud = acc.result()
    pts = np.asarray(cloud.points)
    assert 100 < len(pts) < 3 * (320 // 2) * (240 // 2)
    assert len(cloud.colors) == len(pts)
    c = chamfer_distance(pts, _observed_gt_points(seq, frames[:3]))
    assert c["accuracy_m"] < 0.05


def test_chamfer_and_devices():
    a = np.random.default_rng(0).random((50, 3)) * 10.0  # sparse: each point is its shift's nearest neighbour
    assert chamfer_distance(a, a)["chamfer_m"] == 0.0
    assert chamfer_distance(a, a + [0.0, 0.0, 0.1])["chamfer_m"] == pytest.approx(0.1, abs=1e-9)
    with pytest.raises(ValueError):
        chamfer_distance(a[:0], a)
    assert o3d_device("cpu").get_type() == o3d.core.Device.DeviceType.CPU
    with pytest.raises(InputError, match="mapping device"):
        o3d_device("tpu")
    if not o3d.core.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            o3d_device("cuda")


def test_white_frames_give_unit_colors_and_no_clamp_warning(room, tmp_path, capfd):
    """Fused white pixels average to 1 + 1e-7 in float32: the mesh and cloud colours stay in [0, 1], so
    writing the PLY does not print Open3D's 'clamped color' warning."""
    from mono_metric.mapping.tsdf import save_geometry

    seq, frames = room
    tsdf = TSDFMap(seq.camera, voxel_size_m=0.05, max_depth_m=5.0)
    for f in frames[:6]:
        white = np.full_like(f.image, 255)
        white[::7] = 250  # a mix of values: the averages are not exactly representable
        tsdf.integrate(white, f.depth_m, f.T_world_cam)
    mesh, cloud = tsdf.mesh(), tsdf.point_cloud()
    for colors in (np.asarray(mesh.vertex_colors), np.asarray(cloud.colors)):
        assert len(colors) > 100 and 0.98 <= colors.min() and colors.max() <= 1.0
    capfd.readouterr()
    save_geometry(tmp_path / "mesh.ply", mesh)
    save_geometry(tmp_path / "cloud.ply", cloud)
    captured = capfd.readouterr()
    assert "clamped" not in captured.out + captured.err
