import numpy as np
import pytest

from mono_metric import Camera, InputError


def test_project_backproject_round_trip(rng):
    cam = Camera(718.9, 720.1, 607.2, 185.2, 1241, 376)
    pts = np.column_stack([rng.uniform(-10, 10, 50), rng.uniform(-2, 2, 50), rng.uniform(1, 80, 50)])
    uv, z = cam.project(pts)
    np.testing.assert_allclose(cam.backproject(uv, z), pts, atol=1e-9)
    # Principal point projects the optical axis.
    uv0, _ = cam.project(np.array([[0.0, 0.0, 5.0]]))
    np.testing.assert_allclose(uv0[0], [607.2, 185.2])


def test_points_behind_camera_are_nan():
    uv, _ = Camera(500, 500, 320, 240, 640, 480).project(np.array([[0.0, 0.0, -1.0]]))
    assert np.isnan(uv).all()


def test_backproject_depth_matches_pointwise(rng):
    cam = Camera(300, 310, 50.5, 30.2, 100, 60)
    depth = rng.uniform(0.5, 5, (60, 100))
    cloud = cam.backproject_depth(depth)
    v, u = 17, 42
    np.testing.assert_allclose(cloud[v, u], cam.backproject(np.array([[u, v]]), depth[v, u:u + 1])[0])


def test_scaled_camera_projects_consistently(rng):
    cam = Camera(500, 500, 319.5, 239.5, 640, 480)
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    pts = np.column_stack([rng.uniform(-1, 1, 10), rng.uniform(-1, 1, 10), rng.uniform(1, 5, 10)])
    uv, _ = cam.project(pts)
    uv_half, _ = half.project(pts)
    np.testing.assert_allclose(uv_half, (uv + 0.5) * 0.5 - 0.5, atol=1e-9)
    crop = cam.cropped(200, 150, 240, 180)
    np.testing.assert_allclose(crop.project(pts)[0], uv - [200, 150], atol=1e-9)


@pytest.mark.parametrize("kwargs", [
    dict(fx=-1, fy=500, cx=320, cy=240, width=640, height=480),
    dict(fx=500, fy=0, cx=320, cy=240, width=640, height=480),
    dict(fx=500, fy=500, cx=900, cy=240, width=640, height=480),
    dict(fx=500, fy=500, cx=320, cy=-3, width=640, height=480),
    dict(fx=float("nan"), fy=500, cx=320, cy=240, width=640, height=480),
    dict(fx=500, fy=500, cx=320, cy=240, width=0, height=480),
])
def test_rejects_bad_intrinsics(kwargs):
    with pytest.raises(InputError):
        Camera(**kwargs)


def test_constructors(tmp_path):
    P = [707.0912, 0, 601.8873, 0, 0, 707.0912, 183.1104, 0, 0, 0, 1, 0]
    cam = Camera.from_kitti_P(P, 1226, 370)
    assert cam.fx == pytest.approx(707.0912) and cam.cy == pytest.approx(183.1104)
    tum = Camera.from_tum_line("517.3 516.5 318.6 255.3 0.26 -0.95")
    assert (tum.fx, tum.fy, tum.width) == (517.3, 516.5, 640)
    fov = Camera.from_fov(90.0, 640, 480)
    assert fov.fx == pytest.approx(320.0) and fov.hfov_deg == pytest.approx(90.0)
    cam.to_yaml(tmp_path / "cam.yaml")
    assert Camera.from_yaml(tmp_path / "cam.yaml") == cam
    (tmp_path / "fov.yaml").write_text("hfov_deg: 65\nwidth: 1920\nheight: 1080\n")
    assert Camera.from_yaml(tmp_path / "fov.yaml").hfov_deg == pytest.approx(65.0)
    (tmp_path / "bad.yaml").write_text("fx: 500\n")
    with pytest.raises(InputError, match="lacks key"):
        Camera.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(InputError, match="does not exist"):
        Camera.from_yaml(tmp_path / "missing.yaml")


def test_check_image_names_sizes():
    cam = Camera(500, 500, 320, 240, 640, 480)
    with pytest.raises(InputError, match="640x480"):
        cam.check_image(np.zeros((100, 100, 3), np.uint8))
