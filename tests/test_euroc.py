"""The EuRoC MAV loader on a tiny EuRoC-layout folder written here: rendered grey frames, known camera poses,
a body-to-camera extrinsic and 200 Hz ground truth that starts after the first frames."""
import json

import cv2
import numpy as np
import pytest

from mono_metric.datasets import guess_kind, load_sequence
from mono_metric.geometry import inv_se3, make_se3, quat_to_rotmat, rotmat_to_quat

T0_NS = 1403636579763555584  # a EuRoC-like start time in nanoseconds
STEP_NS = 50_000_000  # 20 Hz camera


def _T_body_cam() -> np.ndarray:
    R = quat_to_rotmat(np.array([0.1, -0.2, 0.7, 0.68]))[0]
    return make_se3(R, np.array([-0.02, -0.06, 0.01]))


def write_euroc(root, frames: int = 10, gt_starts_at: int = 2):
    """A EuRoC folder from a synthetic room; returns the true T_world_cam of every frame."""
    seq = load_sequence(f"synthetic:room?seed=3&frames={frames}&width=320&height=240")
    cam_dir = root / "mav0" / "cam0"
    (cam_dir / "data").mkdir(parents=True)
    lines = ["#timestamp [ns],filename"]
    for f in seq:
        name = f"{T0_NS + f.index * STEP_NS}.png"
        cv2.imwrite(str(cam_dir / "data" / name), cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY))
        lines.append(f"{T0_NS + f.index * STEP_NS},{name}")
    (cam_dir / "data.csv").write_text("\n".join(lines) + "\n")
    c = seq.camera
    T_bc = _T_body_cam()
    (cam_dir / "sensor.yaml").write_text(
        "sensor_type: camera\nT_BS:\n  cols: 4\n  rows: 4\n  data: [" + ", ".join(f"{v:.17g}" for v in T_bc.ravel())
        + f"]\nrate_hz: 20\nresolution: [{c.width}, {c.height}]\ncamera_model: pinhole\n"
        f"intrinsics: [{c.fx}, {c.fy}, {c.cx}, {c.cy}]\ndistortion_model: radial-tangential\n"
        "distortion_coefficients: [0.0, 0.0, 0.0, 0.0]\n")
    T_world_cam = seq.gt.T_world_cam
    # 200 Hz body poses: the true one 1 ms after each frame, decoys (identity) at the other samples.
    rows = ["#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [], q_RS_z [], "
            "v_RS_R_x [m s^-1], v_RS_R_y [m s^-1], v_RS_R_z [m s^-1], b_w_RS_S_x, b_w_RS_S_y, b_w_RS_S_z, "
            "b_a_RS_S_x, b_a_RS_S_y, b_a_RS_S_z"]
    for i in range(gt_starts_at, frames):
        for k in range(10):
            t = T0_NS + i * STEP_NS + 1_000_000 + k * 5_000_000
            T_wb = T_world_cam[i] @ inv_se3(T_bc) if k == 0 else np.eye(4)
            x, y, z, w = rotmat_to_quat(T_wb[:3, :3])[0]
            rows.append(",".join([str(t), *(f"{v:.17g}" for v in (*T_wb[:3, 3], w, x, y, z))] + ["0"] * 9))
    gt_dir = root / "mav0" / "state_groundtruth_estimate0"
    gt_dir.mkdir()
    (gt_dir / "data.csv").write_text("\n".join(rows) + "\n")
    return seq, T_world_cam


def test_euroc_layout(tmp_path):
    synth, T_world_cam = write_euroc(tmp_path / "MH_tiny")
    assert guess_kind(tmp_path / "MH_tiny") == "euroc"
    seq = load_sequence(tmp_path / "MH_tiny")
    assert len(seq) == 8 and "2 of 10 frames have no ground truth" in seq.gt_note
    np.testing.assert_allclose(seq.timestamps, (T0_NS + np.arange(2, 10) * STEP_NS) * 1e-9, rtol=0, atol=1e-6)
    # The extrinsic is applied: T_world_cam = T_world_body @ T_body_cam gives back the rendered poses.
    np.testing.assert_allclose(seq.gt.T_world_cam, T_world_cam[2:], atol=1e-9)
    assert seq.camera == synth.camera and seq.distortion is None
    f = seq[0]
    assert f.image.shape == (240, 320, 3) and (f.image[..., 0] == f.image[..., 2]).all()
    np.testing.assert_allclose(f.T_world_cam, T_world_cam[2], atol=1e-9)
    assert len(load_sequence(tmp_path / "MH_tiny" / "mav0", stride=2)) == 4


def test_euroc_runs_from_the_cli(tmp_path, capsys, monkeypatch):
    from mono_metric.cli import main

    write_euroc(tmp_path / "V1_tiny", frames=8, gt_starts_at=0)
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "V1_tiny"), "--config", "configs/synthetic_room.yaml", "--depth",
                 "mono_metric_tiny", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["frames"] == 8
    assert "euroc_V1_tiny_cam0" in capsys.readouterr().out


def test_euroc_sensor_yaml_with_an_opencv_header(tmp_path):
    """Some EuRoC-style exports start with ``%YAML:1.0`` (OpenCV FileStorage), which PyYAML refuses."""
    _, T_world_cam = write_euroc(tmp_path / "seq", frames=4, gt_starts_at=0)
    sensor = tmp_path / "seq" / "mav0" / "cam0" / "sensor.yaml"
    sensor.write_text("%YAML:1.0\n" + sensor.read_text())
    seq = load_sequence(tmp_path / "seq")
    np.testing.assert_allclose(seq.gt.T_world_cam, T_world_cam, atol=1e-9)


def test_euroc_errors(tmp_path):
    from mono_metric.errors import InputError

    write_euroc(tmp_path / "seq", frames=4, gt_starts_at=0)
    (tmp_path / "seq" / "mav0" / "cam0" / "sensor.yaml").write_text("T_BS: {data: [1, 2, 3]}\nintrinsics: [1, 1, 1, 1]\n"
                                                                   "resolution: [320, 240]\n")
    with pytest.raises(InputError, match="T_BS"):
        load_sequence(tmp_path / "seq", "euroc")
    with pytest.raises(InputError, match="not a EuRoC sequence"):
        load_sequence(tmp_path, "euroc")
