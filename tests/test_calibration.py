"""Intrinsics when the user has none: undistortion, self-calibration of f, metadata, phone default."""
import math
import struct
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from mono_metric.calibrate import estimate_focal, singular_gap
from mono_metric.camera import Camera
from mono_metric.config import load_config
from mono_metric.datasets import SyntheticConfig, SyntheticSequence, load_sequence
from mono_metric.datasets.metadata import focal_px_from_35mm, image_focal_35mm, video_focal_35mm
from mono_metric.errors import InputError
from mono_metric.pipeline import OdometryPipeline
from mono_metric.undistort import CameraAdjusted, Undistorter, undistort_points

FR1 = (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)  # TUM freiburg1 RGB, published
SHARED_TUM = Path(__file__).resolve().parents[2] / "shared" / "data" / "tum_fr1_desk_9f"


def _room(hfov_deg: float, frames: int, **kw) -> SyntheticSequence:
    fx = 0.5 * 320 / math.tan(math.radians(hfov_deg) / 2)
    return SyntheticSequence(SyntheticConfig(scene="room", seed=5, frames=frames, width=320, height=240, fx=fx, **kw))


def test_distorted_render_undistorts_to_the_pinhole_render():
    pinhole = _room(70, 1, noise_std=0.0)
    distorted = _room(70, 1, noise_std=0.0, k1=FR1[0], k2=FR1[1], p1=FR1[2], p2=FR1[3], k3=FR1[4])
    assert distorted.distortion == FR1 and pinhole.distortion is None
    raw, ref = distorted[0], pinhole[0]
    assert np.abs(raw.image.astype(int) - ref.image.astype(int)).mean() > 8  # the distortion is visible
    adjusted = CameraAdjusted(distorted)
    fixed = adjusted[0]
    assert adjusted.distortion is None and fixed.camera == pinhole.camera
    inner = adjusted.undistorter.valid_mask.copy()
    inner[:12], inner[-12:], inner[:, :12], inner[:, -12:] = False, False, False, False
    err = np.abs(fixed.image.astype(int) - ref.image.astype(int))[inner]
    assert np.median(err) <= 2 and err.mean() < 5
    depth_ok = inner & (ref.depth_m > 0) & (fixed.depth_m > 0)
    rel = np.abs(fixed.depth_m[depth_ok] / ref.depth_m[depth_ok] - 1)
    assert np.median(rel) < 0.01


def test_undistort_points_inverts_the_distortion_model():
    cam = Camera(517.3, 516.5, 318.6, 255.3, 640, 480)
    rng = np.random.default_rng(0)
    pin = np.column_stack([rng.uniform(60, 580, 200), rng.uniform(60, 420, 200)])
    rays = np.column_stack([(pin - [cam.cx, cam.cy]) / [cam.fx, cam.fy], np.ones(200)])
    dist, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), cam.K, np.array(FR1))
    np.testing.assert_allclose(undistort_points(dist.reshape(-1, 2), cam, FR1), pin, atol=1e-3)
    with pytest.raises(InputError, match="coefficients"):
        Undistorter(cam, [0.1, 0.2, 0.3])


def test_tum_loader_carries_the_published_distortion(tmp_path):
    if not SHARED_TUM.is_dir():
        pytest.skip("../shared/data/tum_fr1_desk_9f is absent (a fresh clone has no shared data)")
    seq = load_sequence(SHARED_TUM, missing="skip")
    assert seq.distortion == FR1  # intrinsics.txt holds the published fr1 calibration
    assert load_sequence(SHARED_TUM, missing="skip", distortion=()).distortion is None
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "tum_fr1.yaml",
                      {"mapping": {"enabled": False}})
    summary = OdometryPipeline(seq, cfg, tmp_path / "out", progress=False).run()
    assert summary["camera"]["undistorted_with"] == pytest.approx(list(FR1))
    assert summary["metrics"]["ate"]["rmse_m"] < 0.1


def test_camera_config_validation():
    with pytest.raises(InputError, match="camera.distortion"):
        load_config(None, {"camera": {"distortion": [0.1, 0.2]}})
    with pytest.raises(InputError, match="calib_hfov_range_deg"):
        load_config(None, {"camera": {"calib_hfov_range_deg": [120, 40]}})


def test_singular_gap_vanishes_at_the_true_focal_length():
    f_true, cx, cy = 400.0, 160.0, 120.0
    K = np.array([[f_true, 0, cx], [0, f_true, cy], [0, 0, 1.0]])
    R = cv2.Rodrigues(np.array([0.05, -0.2, 0.03]))[0]
    t = np.array([0.3, 0.05, 0.1])
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(K).T @ tx @ R @ np.linalg.inv(K)
    f = np.array([300.0, 400.0, 500.0])
    gap = singular_gap(F / np.linalg.norm(F), f, cx, cy)
    assert gap[1] < 1e-9 and gap[0] > 1e-3 and gap[2] > 1e-3


@pytest.mark.parametrize("hfov", [50.0, 80.0])
def test_self_calibration_recovers_focal_length(hfov):
    seq = _room(hfov, 90)
    est = estimate_focal([seq[i].image for i in range(len(seq))])
    assert abs(est.f_px / seq.camera.fx - 1) < 0.03
    assert 0 < est.sigma_px < 0.05 * est.f_px and est.pairs_used >= 3
    assert est.camera().fx == est.f_px and abs(est.hfov_deg - hfov) < 3


def test_self_calibration_rejects_a_still_camera():
    img = SyntheticSequence(SyntheticConfig(scene="room", seed=5, frames=1, width=160, height=120))[0].image
    with pytest.raises(InputError, match="parallax"):
        estimate_focal([img] * 6)


def test_pipeline_self_calibrates_a_wrong_focal_length(tmp_path):
    seq = _room(60, 90)
    true_fx = seq.camera.fx
    wrong = replace(seq.camera, fx=true_fx * 1.3, fy=true_fx * 1.3)
    cfg = load_config(None, {"camera": {"self_calibrate": True}, "depth": {"source": "gt", "max_depth_m": 10.0},
                             "mapping": {"enabled": False}})
    summary = OdometryPipeline(CameraAdjusted(seq, camera=wrong), cfg, tmp_path, progress=False).run()
    assert abs(summary["camera"]["fx"] / true_fx - 1) < 0.03
    assert "self-calibrated" in summary["camera"]["note"]
    assert (tmp_path / "calibration.json").is_file()
    assert Camera.from_yaml(tmp_path / "camera.yaml").fx == pytest.approx(summary["camera"]["fx"])


def test_exif_focal_length(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif)
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "plain.png")
    assert image_focal_35mm(tmp_path / "phone.jpg") == 26.0
    assert image_focal_35mm(tmp_path / "plain.png") is None
    assert focal_px_from_35mm(26.0, 400, 300) == pytest.approx(26.0 * 500 / math.hypot(36, 24))
    folder = tmp_path / "frames"
    folder.mkdir()
    (tmp_path / "phone.jpg").rename(folder / "0000.jpg")
    seq = load_sequence(folder)
    assert "metadata" in seq.camera_note and seq.camera.fx == pytest.approx(focal_px_from_35mm(26.0, 400, 300))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_quicktime_focal_length(tmp_path):
    keys = [b"com.apple.quicktime.make", b"com.apple.quicktime.camera.focal_length.35mm_equivalent"]
    keys_box = _box(b"keys", struct.pack(">II", 0, len(keys)) + b"".join(_box(b"mdta", k) for k in keys))
    data = lambda kind, value: _box(b"data", struct.pack(">II", kind, 0) + value)  # noqa: E731
    ilst = _box(b"ilst", _box(struct.pack(">I", 1), data(1, b"Apple"))
                + _box(struct.pack(">I", 2), data(21, struct.pack(">i", 28))))
    meta = _box(b"meta", _box(b"hdlr", b"\0" * 8 + b"mdta" + b"\0" * 13) + keys_box + ilst)
    clip = tmp_path / "clip.mov"
    clip.write_bytes(_box(b"ftyp", b"qt  \0\0\0\0qt  ") + _box(b"mdat", b"\0" * 64) + _box(b"moov", meta))
    assert video_focal_35mm(clip) == 28.0
    plain = tmp_path / "plain.avi"
    writer = cv2.VideoWriter(str(plain), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert video_focal_35mm(plain) is None
    assert "ASSUMED" in load_sequence(plain).camera_note
