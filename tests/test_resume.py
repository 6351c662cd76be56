"""A run killed with SIGKILL resumes from its last snapshot and ends with the uninterrupted trajectory."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mono_metric import Trajectory
from mono_metric.cli import main

SPEC = "synthetic:street?seed=4&frames=60&width=620&height=188"


def _args(out, *extra):
    return ["run", SPEC, "--depth", "gt_degraded", "--snapshot-every", "0", "--out", str(out), "--quiet", *extra]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_trajectory(tmp_path, capsys):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert main(_args(ref)) == 0
    assert not (ref / "resume").exists()  # snapshots are removed when a run completes
    proc = subprocess.Popen([sys.executable, "-m", "mono_metric.cli", *_args(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    traj = out / "trajectory_tum.txt"
    deadline = time.time() + 180
    while time.time() < deadline and not ((out / "resume" / "progress.json").is_file()
                                          and traj.is_file() and traj.read_text().count("\n") >= 25):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "resume").is_dir() or (out / "resume.old").is_dir()
    killed_at = traj.read_text().count("\n")
    assert 25 <= killed_at < 60
    # Another config must not silently continue this run.
    assert main(["run", SPEC, "--depth", "gt", "--out", str(out), "--quiet", "--resume"]) == 1
    assert "another config" in capsys.readouterr().err
    assert main(_args(out, "--resume")) == 0
    printed = capsys.readouterr().out
    resumed_at = int(printed.split("resumed from the snapshot at frame ")[1].split()[0])
    assert 0 < resumed_at <= killed_at
    a = Trajectory.read_tum(ref / "trajectory_tum.txt")
    b = Trajectory.read_tum(out / "trajectory_tum.txt")
    assert len(b) == len(a) == 60
    np.testing.assert_allclose(b.timestamps, a.timestamps)
    np.testing.assert_allclose(b.T_world_cam, a.T_world_cam, atol=1e-6)
    assert (out / "keyframes_tum.txt").read_text() == (ref / "keyframes_tum.txt").read_text()
    assert (out / "mesh.ply").stat().st_size > 1000 and not (out / "resume").exists()
