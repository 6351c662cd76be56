import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mono_metric import Trajectory
from mono_metric.cli import main
from mono_metric.outputs import read_partial_trajectory


def test_eval_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    T = np.stack([np.eye(4)] * 30)
    T[:, 2, 3] = np.arange(30) * 0.5
    gt = Trajectory(np.arange(30) * 0.1, T)
    est_T = T.copy()
    est_T[:, :3, 3] += rng.normal(0, 0.01, (30, 3))
    gt.write_tum(tmp_path / "gt.txt")
    Trajectory(gt.timestamps + 0.001, est_T).write_tum(tmp_path / "est.txt")
    assert main(["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(tmp_path / "est.txt"),
                 "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "ATE RMSE" in out and "KITTI-short" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["frames"] == 30 and metrics["ate"]["rmse_m"] < 0.03
    assert (tmp_path / "ev" / "trajectory.png").stat().st_size > 1000
    gt.write_kitti(tmp_path / "gt.kitti")
    Trajectory(gt.timestamps, est_T).write_kitti(tmp_path / "est.kitti")
    assert main(["eval", "--gt", str(tmp_path / "gt.kitti"), "--est", str(tmp_path / "est.kitti"),
                 "--format", "kitti", "--out", str(tmp_path / "ev2")]) == 0


def test_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mono_metric.cli", "eval", "--gt", str(tmp_path / "missing.txt"),
                           "--est", str(tmp_path / "x.txt")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "missing.txt does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_synthetic(tmp_path, capsys):
    out = tmp_path / "run"
    spec = "synthetic:room?seed=2&frames=12&width=320&height=240"
    assert main(["run", spec, "--out", str(out), "--quiet", "--depth", "gt"]) == 0
    for name in ("trajectory_kitti.txt", "trajectory_tum.txt", "keyframes_tum.txt", "config.yaml", "metrics.json",
                 "timings.json", "trajectory.png", "mesh.ply", "cloud.ply"):
        assert (out / name).is_file(), name
    assert len(read_partial_trajectory(out)) == 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ate"]["rmse_m"] < 0.05 and metrics["map"]["accuracy_median_m"] < 0.1
    timings = json.loads((out / "timings.json").read_text())
    assert 0 < timings["depth_calls_per_frame"] <= 1 and timings["fusion_ms_per_frame"] > 0
    assert any((out / "depth").glob("kf_*.png"))
    text = capsys.readouterr().out
    assert "12 frames" in text and "mesh accuracy vs GT" in text


def test_run_with_embedded_model_and_intrinsics(tmp_path, capsys):
    from mono_metric import load_sequence

    seq = load_sequence("synthetic:room?seed=5&frames=8&width=320&height=240")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for f in seq:
        cv2.imwrite(str(folder / f"{f.index:04d}.png"), f.image[:, :, ::-1])
    c = seq.camera
    out = tmp_path / "run"
    assert main(["run", str(folder), "--intrinsics", f"{c.fx},{c.fy},{c.cx},{c.cy}", "--depth", "mono_metric_tiny",
                 "--config", "configs/synthetic_room.yaml", "--out", str(out), "--quiet"]) == 0
    assert len(read_partial_trajectory(out)) == 8 and (out / "mesh.ply").is_file()
    assert not (out / "metrics.json").exists() and not (out / "T_world_first_cam.txt").exists()
    assert (out / "trajectory.png").is_file() and (out / "report.html").is_file()  # also without ground truth
    assert "No ground truth" in (out / "report.html").read_text()
    assert main(["run", str(folder), "--intrinsics", "1,2,3", "--out", str(out), "--quiet"]) == 1
    assert main(["run", str(folder), "--fov", "60", "--sequence", "00", "--out", str(out), "--quiet"]) == 1
    assert "does not apply" in capsys.readouterr().err


def test_run_shared_kitti_and_tum(shared_data, tmp_path, capsys, monkeypatch):
    assert main(["run", str(shared_data / "tum_fr1_desk_9f"), "--skip-missing", "--config", "configs/tum.yaml",
                 "--out", str(tmp_path / "tum"), "--quiet"]) == 0
    assert len(read_partial_trajectory(tmp_path / "tum")) == 9
    # KITTI has no depth: without --config (and no official weights cached) the embedded model runs offline,
    # with the synthetic-only warning printed and kept in the metrics.
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "empty_cache"))
    capsys.readouterr()
    assert main(["run", str(shared_data / "kitti_odometry"), "--max-frames", "3", "--out", str(tmp_path / "k"),
                 "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "depth: mono_metric_tiny" in cap.out and cap.out.count("synthetic renders only") == 1
    assert cap.err.count("synthetic renders only") == 1
    assert "synthetic renders only" in json.loads((tmp_path / "k" / "metrics.json").read_text())["warnings"][0]
    # Asked for ground-truth depth where there is none: a clear refusal, not a crash.
    assert main(["run", str(shared_data / "kitti_odometry"), "--max-frames", "3", "--depth", "gt",
                 "--out", str(tmp_path / "k1"), "--quiet"]) == 1
    assert "--depth metric3d_vit_small" in capsys.readouterr().err
    # The embedded model is available offline: real KITTI frames run end to end.
    assert main(["run", str(shared_data / "kitti_odometry"), "--max-frames", "12", "--depth", "mono_metric_tiny",
                 "--config", "configs/kitti.yaml", "--out", str(tmp_path / "k2"), "--quiet"]) == 0
    assert len(read_partial_trajectory(tmp_path / "k2")) == 12 and (tmp_path / "k2" / "mesh.ply").is_file()
    assert json.loads((tmp_path / "k2" / "metrics.json").read_text())["frames"] == 12


def test_demo_targets_line(capsys):
    from mono_metric.cli import _print_demo_targets

    _print_demo_targets({"metrics": {"ate": {"scale_error": 0.015}, "kitti": {"t_err_pct": 2.5}},
                         "map": {"accuracy_median_m": 0.31}})
    out = capsys.readouterr().out
    assert "scale error 1.50% (target <= 2%: met)" in out and "KITTI t_err 2.50% (target <= 2%: missed)" in out
    assert "mesh accuracy (median) 31.00 cm (target <= 20 cm: missed)" in out
    _print_demo_targets({"metrics": {"ate": {"scale_error": 0.01}, "kitti": {"t_err_pct": None}}})
    out = capsys.readouterr().out
    assert "t_err" not in out and "mesh" not in out and "met" in out


@pytest.mark.slow
def test_demo_small(tmp_path, capsys):
    assert main(["demo", "--frames", "25", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ATE RMSE" in out and "mono_metric_tiny" in out and "mesh accuracy" in out
    assert "demo targets of the embedded model: scale error" in out  # 25 frames: too short for KITTI t_err
    assert (tmp_path / "demo" / "scene_gt_mesh.ply").is_file() and (tmp_path / "demo" / "mesh.ply").is_file()
    from mono_metric.viz import read_recording

    tables = read_recording(tmp_path / "demo" / "recording.rrd")  # the demo's rerun recording
    assert tables["/world/camera"].column("frame").to_pylist() == list(range(25)) and "/world/mesh" in tables
    assert "rerun recording" in out and "rerun recording.rrd" in (tmp_path / "demo" / "report.html").read_text()


def test_killed_run_leaves_a_readable_partial_trajectory(tmp_path):
    import signal
    import time

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mono_metric.cli", "run",
                             "synthetic:room?seed=3&frames=400&width=320&height=240", "--depth", "gt",
                             "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    traj = out / "trajectory_tum.txt"
    deadline = time.time() + 120
    while time.time() < deadline and (not traj.exists() or traj.read_text().count("\n") < 8):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_partial_trajectory(out)
    assert 8 <= len(partial) < 400 and np.isfinite(partial.T_world_cam).all()
    assert (out / "config.yaml").is_file()


def test_depth_override_drops_another_models_input_size():
    from mono_metric.cli import _load_config

    phone = "configs/phone.yaml"  # metric3d_vit_small at 308x532
    assert _load_config(phone, None).depth.input_hw == [308, 532]
    assert _load_config(phone, "metric3d_vit_small").depth.input_hw == [308, 532]
    cfg = _load_config(phone, "mono_metric_tiny", {"depth": {"device": "cpu"}})
    assert cfg.depth.source == "mono_metric_tiny" and cfg.depth.input_hw is None
