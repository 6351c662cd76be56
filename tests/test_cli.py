import json
import subprocess
import sys

import numpy as np
import pytest

from mono_metric import Trajectory
from mono_metric.cli import main
from mono_metric.pipeline import read_partial_trajectory


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
    for name in ("trajectory_kitti.txt", "trajectory_tum.txt", "config.yaml", "metrics.json", "timings.json",
                 "trajectory.png"):
        assert (out / name).is_file(), name
    assert len(read_partial_trajectory(out)) == 12
    assert json.loads((out / "metrics.json").read_text())["ate"]["rmse_m"] < 0.05
    assert "12 frames" in capsys.readouterr().out


def test_run_shared_kitti_and_tum(shared_data, tmp_path):
    assert main(["run", str(shared_data / "tum_fr1_desk_9f"), "--skip-missing", "--config", "configs/tum.yaml",
                 "--out", str(tmp_path / "tum"), "--quiet"]) == 0
    assert len(read_partial_trajectory(tmp_path / "tum")) == 9
    # KITTI has no depth: the GT depth source must refuse with a clear message, not crash.
    assert main(["run", str(shared_data / "kitti_odometry"), "--max-frames", "3", "--out", str(tmp_path / "k"),
                 "--quiet"]) == 1


@pytest.mark.slow
def test_demo_small(tmp_path, capsys):
    assert main(["demo", "--frames", "25", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ATE RMSE" in out and (tmp_path / "demo" / "scene_gt_mesh.ply").is_file()
