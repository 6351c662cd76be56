import numpy as np
import pytest

from mono_metric import InputError, load_sequence
from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.geometry import inv_se3


def small(scene, **kw):
    size = dict(width=320, height=96) if scene == "street" else dict(width=160, height=120)
    return SyntheticSequence(SyntheticConfig(scene=scene, frames=kw.pop("frames", 12), **size, **kw))


def test_spec_parsing():
    seq = load_sequence("synthetic:street?seed=3&frames=7&fx=500")
    assert len(seq) == 7 and seq.camera.fx == 500 and seq.camera.fy == 500
    assert seq.camera.width == 1241 and seq.config.seed == 3
    room = load_sequence("synthetic:room?frames=2")
    assert (room.camera.width, room.camera.height) == (640, 480)
    with pytest.raises(InputError, match="unknown synthetic option 'colour'"):
        load_sequence("synthetic:street?colour=1")
    with pytest.raises(InputError, match="unknown synthetic scene"):
        load_sequence("synthetic:forest")


@pytest.mark.parametrize("scene", ["street", "room"])
def test_deterministic_and_plausible(scene):
    a, b = small(scene, seed=5)[3], small(scene, seed=5)[3]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth_m, b.depth_m)
    assert not np.array_equal(a.image, small(scene, seed=6)[3].image)
    # Textured, not flat, not noise: strong gradients exist but neighbouring pixels correlate.
    g = a.image.astype(float).mean(2)
    assert g.std() > 15
    assert np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1] > 0.6
    valid = a.depth_m > 0
    if scene == "room":
        assert valid.all() and a.depth_m.max() < 10.0
    else:
        assert 0.5 < valid.mean() < 1.0  # sky is invalid depth
        # Camera 1.65 m above the road: the bottom image row sees the ground a few metres ahead.
        assert np.median(a.depth_m[-1][a.depth_m[-1] > 0]) < 15.0


def _reprojection_agreement(seq, i, j, shift_m=0.0):
    fi, fj = seq[i], seq[j]
    fj.T_world_cam[:3, 3] += shift_m
    cam = seq.camera
    v, u = np.nonzero(fi.depth_m > 0)
    pts_i = cam.backproject(np.column_stack([u, v]), fi.depth_m[v, u])
    T_j_i = inv_se3(fj.T_world_cam) @ fi.T_world_cam
    pts_j = pts_i @ T_j_i[:3, :3].T + T_j_i[:3, 3]
    uv, z = cam.project(pts_j)
    inside = np.isfinite(uv).all(1) & (uv[:, 0] > 0) & (uv[:, 0] < cam.width - 1) & (uv[:, 1] > 0) & \
        (uv[:, 1] < cam.height - 1)
    ui, vi = np.round(uv[inside]).astype(int).T
    dj = fj.depth_m[vi, ui]
    rel = np.abs(dj - z[inside]) / z[inside]
    return inside.mean(), rel


@pytest.mark.parametrize("scene,i,j", [("street", 2, 6), ("room", 1, 9)])
def test_ground_truth_depth_and_poses_agree(scene, i, j):
    """Reprojecting frame i's GT depth into frame j with GT poses reproduces frame j's depth."""
    seq = small(scene, seed=2)
    overlap, rel = _reprojection_agreement(seq, i, j)
    assert overlap > 0.3
    # Nearest-pixel lookup differs only at occlusions and depth edges.
    assert np.median(rel) < 0.01
    assert np.mean(rel < 0.02) > 0.85
    # A wrong pose breaks the agreement: the check can fail.
    _, rel_wrong = _reprojection_agreement(seq, i, j, shift_m=0.3)
    assert np.mean(rel_wrong < 0.02) < 0.6


def test_intrinsics_and_motion_parameters():
    seq = small("street", fx=300.0, frames=20, speed_mps=5.0, fps=10.0)
    steps = np.linalg.norm(np.diff(seq.gt.positions, axis=0), axis=1)
    assert steps.mean() == pytest.approx(0.5, rel=0.15)
    assert np.all(np.abs(seq.gt.positions[:, 2] - 1.65) < 0.05)
    assert seq.camera.fx == 300.0 and seq[0].image.shape == (96, 320, 3)


def test_mesh_export(tmp_path):
    import open3d as o3d

    seq = small("room", seed=1)
    seq.export_mesh(tmp_path / "scene.ply")
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "scene.ply"))
    assert len(mesh.triangles) == len(seq.scene.triangles) > 12
    # The ground-truth depth of a frame lies on the mesh.
    f = seq[0]
    v, u = np.nonzero(f.depth_m > 0)
    sel = slice(None, None, 97)
    pts = seq.camera.backproject(np.column_stack([u[sel], v[sel]]), f.depth_m[v[sel], u[sel]])
    pts_w = pts @ f.T_world_cam[:3, :3].T + f.T_world_cam[:3, 3]
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    dist = scene.compute_distance(o3d.core.Tensor(pts_w.astype(np.float32))).numpy()
    assert np.percentile(dist, 99) < 1e-3
