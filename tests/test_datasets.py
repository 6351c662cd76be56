import cv2
import numpy as np
import pytest

from mono_metric import Camera, InputError, load_sequence
from mono_metric.datasets import guess_kind
from mono_metric.datasets.tum import associate


def test_kitti_shared(shared_data):
    seq = load_sequence(shared_data / "kitti_odometry", sequence="06")
    assert len(seq) == 51 and seq.name == "kitti_06_image_0"
    assert seq.camera.fx == pytest.approx(707.0912) and (seq.camera.width, seq.camera.height) == (1226, 370)
    f = seq[10]
    assert f.image.shape == (370, 1226, 3) and f.image.dtype == np.uint8
    assert np.array_equal(f.image[..., 0], f.image[..., 2])  # grey replicated to 3 channels
    assert f.timestamp == pytest.approx(seq.timestamps[10]) and seq.timestamps[1] == pytest.approx(0.1044989)
    # poses/06.txt line 2 has z = 1.198998 (the car drives forward along +z of camera 0).
    assert seq.gt.T_world_cam[1, 2, 3] == pytest.approx(1.198998)
    assert seq.gt.path_length_m() == pytest.approx(59.9, abs=0.2)
    sub = load_sequence(shared_data / "kitti_odometry" / "sequences" / "06", stride=5, max_frames=4)
    assert len(sub) == 4 and sub.timestamps[1] == pytest.approx(seq.timestamps[5])
    np.testing.assert_allclose(sub.gt.T_world_cam[2], seq.gt.T_world_cam[10])


def test_tum_shared(shared_data):
    root = shared_data / "tum_fr1_desk_9f"
    with pytest.raises(InputError, match="missing='skip'"):
        load_sequence(root)
    seq = load_sequence(root, missing="skip")
    assert guess_kind(root) == "tum" and len(seq) == 9
    assert (seq.camera.fx, seq.camera.cy) == (517.3, 255.3)
    f = seq[0]
    assert f.timestamp == pytest.approx(1305031453.359684)
    assert f.depth_m.dtype == np.float32 and 0.3 < np.median(f.depth_m[f.depth_m > 0]) < 4.0
    # groundtruth.txt: nearest sample to 1305031453.359684 is 1305031453.3596 -> tx 1.3112 (sensor pose).
    assert f.T_world_cam[0, 3] == pytest.approx(1.3112, abs=2e-3)
    np.testing.assert_allclose(np.linalg.det(f.T_world_cam[:3, :3]), 1.0, atol=1e-6)


def test_metric3d_demo_frames_readable(shared_data):
    from mono_metric.datasets.base import read_depth_png, read_rgb

    root = shared_data / "metric3d_demo" / "data" / "kitti_demo"
    rgb = read_rgb(root / "rgb" / "0000000005.png")
    depth = read_depth_png(root / "depth" / "0000000005.png", 256.0)
    assert rgb.shape[:2] == depth.shape and 1.0 < depth[depth > 0].mean() < 80.0


def test_associate_nearest():
    a = np.array([0.0, 1.0, 2.0, 5.0])
    b = np.array([0.01, 0.98, 2.5])
    np.testing.assert_array_equal(associate(a, b, 0.05), [0, 1, -1, -1])


def _write_images(folder, n, size=(64, 48)):
    folder.mkdir()
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 20, np.uint8)
        img[5:10, 5:10] = (255, 0, 0)  # red square in RGB
        cv2.imwrite(str(folder / f"{i:04d}.png"), img[:, :, ::-1])


def test_image_folder(tmp_path):
    _write_images(tmp_path / "imgs", 5)
    assumed = load_sequence(tmp_path / "imgs")  # no intrinsics, no EXIF: the phone default, said loudly
    assert "ASSUMED" in assumed.camera_note and 60 < assumed.camera.hfov_deg < 75
    with pytest.raises(InputError, match="only one"):
        load_sequence(tmp_path / "imgs", fov_deg=60.0, intrinsics=tmp_path / "x.yaml")
    seq = load_sequence(tmp_path / "imgs", fov_deg=60.0, stride=2)
    assert guess_kind(tmp_path / "imgs") == "images" and len(seq) == 3
    f = seq[1]
    assert tuple(f.image[6, 6]) == (255, 0, 0) and f.image[0, 0, 0] == 40
    Camera(50, 50, 32, 24, 64, 48).to_yaml(tmp_path / "imgs" / "intrinsics.yaml")
    assert load_sequence(tmp_path / "imgs").camera.fx == 50
    with pytest.raises(InputError, match="100x48"):
        load_sequence(tmp_path / "imgs", camera=Camera(50, 50, 32, 24, 100, 48))


def test_corrupt_image_named(tmp_path):
    _write_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "0001.png").write_bytes(b"not a png")
    seq = load_sequence(tmp_path / "imgs", fov_deg=60.0)
    seq[0]
    with pytest.raises(InputError, match="0001.png cannot be decoded"):
        seq[1]


def test_video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    seq = load_sequence(path, fov_deg=70.0, stride=3, max_frames=3)
    assert guess_kind(path) == "video" and len(seq) == 3
    assert seq.timestamps[1] == pytest.approx(3 / 25.0)
    values = [int(seq[i].image.mean()) for i in (2, 0, 1)]  # random access, backwards too
    assert abs(values[0] - 120) <= 3 and abs(values[1] - 0) <= 3 and abs(values[2] - 60) <= 3
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="broken.mp4"):
        load_sequence(tmp_path / "broken.mp4", fov_deg=70.0)


def test_unknown_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_sequence(tmp_path / "nothing")
    with pytest.raises(InputError, match="unknown dataset kind"):
        load_sequence(tmp_path, kind="nuscenes")
