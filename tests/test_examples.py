import runpy
from pathlib import Path

import numpy as np

from mono_metric import Trajectory

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_stream_frames_example(capsys, monkeypatch):
    monkeypatch.chdir(EXAMPLES.parent)
    ns = runpy.run_path(str(EXAMPLES / "stream_frames.py"))
    ns["main"](frames=6)
    out = capsys.readouterr().out
    assert out.count("inliers=") == 6 and "ATE vs ground truth" in out


def test_evaluate_kitti_example(tmp_path, capsys):
    T = np.stack([np.eye(4)] * 40)
    T[:, 2, 3] = np.arange(40) * 1.0
    Trajectory(np.arange(40.0), T).write_kitti(tmp_path / "gt.txt")
    T2 = T.copy()
    T2[:, 2, 3] *= 1.01
    Trajectory(np.arange(40.0), T2).write_kitti(tmp_path / "est.txt")
    ns = runpy.run_path(str(EXAMPLES / "evaluate_kitti_files.py"))
    metrics = ns["main"](str(tmp_path / "gt.txt"), str(tmp_path / "est.txt"))
    assert metrics["kitti_short"]["t_err_pct"] > 0.9
