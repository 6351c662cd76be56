"""Camera files in the styles users bring: OpenCV / ORB-SLAM ``%YAML:1.0``, EuRoC ``sensor.yaml``, our own."""
import numpy as np
import pytest

from mono_metric.camera import Camera, read_camera_file
from mono_metric.datasets.images import ImageFolder
from mono_metric.errors import InputError

ORB_SLAM2 = """%YAML:1.0

# Camera calibration and distortion parameters (OpenCV)
Camera.fx: 458.654
Camera.fy: 457.296
Camera.cx: 367.215
Camera.cy: 248.375

Camera.k1: -0.28340811
Camera.k2: 0.07395907
Camera.p1: 0.00019359
Camera.p2: 1.76187114e-05

Camera.fps: 20.0
Camera.RGB: 1
"""

ORB_SLAM3 = """%YAML:1.0
File.version: "1.0"
Camera.type: "PinHole"
Camera1.fx: 500.0
Camera1.fy: 501.0
Camera1.cx: 320.5
Camera1.cy: 240.5
Camera1.k1: 0.1
Camera1.k2: -0.2
Camera1.p1: 0.001
Camera1.p2: 0.002
Camera1.k3: 0.05
Camera.width: 640
Camera.height: 480
"""

OPENCV_CALIB = """%YAML:1.0
---
image_width: 640
image_height: 480
camera_matrix: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 510., 0., 319.5, 0., 512., 239.5, 0., 0., 1. ]
distortion_coefficients: !!opencv-matrix
   rows: 1
   cols: 5
   dt: d
   data: [ 0.01, -0.02, 0., 0., 0.003 ]
"""

EUROC = """# General sensor definitions.
sensor_type: camera
comment: VI-Sensor cam0 (MT9M034)

# Sensor extrinsics wrt. the body-frame.
T_BS:
  cols: 4
  rows: 4
  data: [0.0148655429818, -0.999880929698, 0.00414029679422, -0.0216401454975,
         0.999557249008, 0.0149672133247, 0.025715529948, -0.064676986768,
        -0.0257744366974, 0.00375618835797, 0.999660727178, 0.00981073058949,
         0.0, 0.0, 0.0, 1.0]

# Camera specific definitions.
rate_hz: 20
resolution: [752, 480]
camera_model: pinhole
intrinsics: [458.654, 457.296, 367.215, 248.375] #fu, fv, cu, cv
distortion_model: radial-tangential
distortion_coefficients: [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05]
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_orb_slam2_settings_take_the_frame_size(tmp_path):
    path = _write(tmp_path, "orb.yaml", ORB_SLAM2)
    data = read_camera_file(path)
    assert (data["fx"], data["fy"], data["cx"], data["cy"]) == (458.654, 457.296, 367.215, 248.375)
    assert data["width"] is None and data["distortion"] == pytest.approx((-0.28340811, 0.07395907, 0.00019359,
                                                                           1.76187114e-05))
    with pytest.raises(InputError, match="width"):
        Camera.from_yaml(path)
    assert Camera.from_yaml(path, 752, 480) == Camera(458.654, 457.296, 367.215, 248.375, 752, 480)


def test_orb_slam3_and_opencv_calibration(tmp_path):
    data = read_camera_file(_write(tmp_path, "orb3.yaml", ORB_SLAM3))
    assert (data["fx"], data["cy"], data["width"], data["height"]) == (500.0, 240.5, 640, 480)
    assert data["distortion"] == pytest.approx((0.1, -0.2, 0.001, 0.002, 0.05))
    cam = Camera.from_yaml(_write(tmp_path, "calib.yaml", OPENCV_CALIB))
    assert cam == Camera(510.0, 512.0, 319.5, 239.5, 640, 480)
    assert read_camera_file(tmp_path / "calib.yaml")["distortion"] == pytest.approx((0.01, -0.02, 0, 0, 0.003))
    with pytest.raises(InputError, match="are for 640x480"):
        Camera.from_yaml(tmp_path / "calib.yaml", 1280, 960)


def test_euroc_sensor_yaml(tmp_path):
    path = _write(tmp_path, "sensor.yaml", EUROC)
    cam = Camera.from_yaml(path)
    assert cam == Camera(458.654, 457.296, 367.215, 248.375, 752, 480)
    assert len(read_camera_file(path)["distortion"]) == 4


def test_unsupported_models_are_refused_by_name(tmp_path):
    fisheye = ORB_SLAM3.replace('"PinHole"', '"KannalaBrandt8"')
    with pytest.raises(InputError, match="KannalaBrandt8|kannalabrandt8"):
        read_camera_file(_write(tmp_path, "fish.yaml", fisheye))
    with pytest.raises(InputError, match="equidistant"):
        read_camera_file(_write(tmp_path, "eq.yaml", EUROC.replace("radial-tangential", "equidistant")))
    with pytest.raises(InputError, match="lacks key"):
        read_camera_file(_write(tmp_path, "half.yaml", "%YAML:1.0\nCamera.fx: 500.0\n"))
    with pytest.raises(InputError, match="lacks key"):
        read_camera_file(_write(tmp_path, "bad.yaml", "fx: 500\n"))


def test_image_folder_reads_an_orb_slam_file_and_its_distortion(tmp_path):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((480, 752, 3), 40 * i, np.uint8))
    seq = ImageFolder(folder, intrinsics=_write(tmp_path, "orb.yaml", ORB_SLAM2))
    assert seq.camera == Camera(458.654, 457.296, 367.215, 248.375, 752, 480)
    assert seq.distortion == pytest.approx((-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05))
