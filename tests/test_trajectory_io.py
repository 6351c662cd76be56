import numpy as np
import pytest

from conftest import random_poses
from mono_metric import InputError, Trajectory
from mono_metric.geometry import inv_se3, quat_to_rotmat, rotmat_to_quat


def test_quaternion_conventions():
    # 90 degrees about z, (x, y, z, w) order.
    R = quat_to_rotmat(np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]))[0]
    np.testing.assert_allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(rotmat_to_quat(R[None])[0], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-12)


def test_inverse(rng):
    T = random_poses(rng, 5)
    np.testing.assert_allclose(inv_se3(T) @ T, np.broadcast_to(np.eye(4), T.shape), atol=1e-12)


@pytest.mark.parametrize("fmt", ["kitti", "tum"])
def test_write_read_round_trip(tmp_path, rng, fmt):
    traj = Trajectory(np.arange(20) * 0.1 + 1000.0, random_poses(rng, 20))
    path = tmp_path / f"traj_{fmt}.txt"
    getattr(traj, f"write_{fmt}")(path)
    back = Trajectory.read(path, fmt)
    np.testing.assert_allclose(back.T_world_cam, traj.T_world_cam, atol=1e-7)
    if fmt == "tum":
        np.testing.assert_allclose(back.timestamps, traj.timestamps, atol=1e-6)
    assert len(path.read_text().splitlines()) == 20


def test_bad_trajectory_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    with pytest.raises(InputError, match="bad.txt:1"):
        Trajectory.read_kitti(bad)
    with pytest.raises(InputError, match="does not exist"):
        Trajectory.read_tum(tmp_path / "none.txt")
    with pytest.raises(ValueError, match="increasing"):
        Trajectory(np.array([0.0, 0.0]), np.stack([np.eye(4)] * 2))


def test_path_length_and_slicing():
    T = np.stack([np.eye(4)] * 4)
    T[:, 0, 3] = [0, 1, 3, 6]
    traj = Trajectory(np.arange(4.0), T)
    assert traj.path_length_m() == pytest.approx(6.0)
    assert len(traj[1:3]) == 2
