"""Tracking loss mid-sequence through the pipeline: the run goes on, the lost span is reported, tracking
re-anchors, and the trajectory file stays valid (one finite pose per frame)."""
from dataclasses import replace

import numpy as np
import pytest

from mono_metric import OdometryPipeline, Trajectory, load_config
from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.datasets.base import Sequence
from mono_metric.geometry import inv_se3

N, EVENT = 30, 15


class Disturbed(Sequence):
    """A room sequence with an event from frame ``EVENT`` on: 'turn90' (the camera swings 90 degrees
    between two frames and stays turned) or 'wall' (three frames of a textureless wall)."""

    def __init__(self, kind: str):
        self.base = SyntheticSequence(SyntheticConfig(scene="room", seed=2, frames=N, width=320, height=240))
        self.kind, self.name, self.camera, self.timestamps = kind, f"room_{kind}", self.base.camera, self.base.timestamps
        poses = self.base.gt.T_world_cam.copy()
        if kind == "turn90":
            yaw = np.eye(4)
            yaw[:3, :3] = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]  # about the camera's y axis
            poses[EVENT:] = poses[EVENT:] @ yaw
        self.gt = Trajectory(self.timestamps, poses)

    def _load(self, i):
        f = self.base[i]
        if self.kind == "turn90" and i >= EVENT:
            image, depth = self.base.renderer.render(self.camera, self.gt.T_world_cam[i], 1.5, noise_seed=i)
            return replace(f, image=image, depth_m=depth, T_world_cam=self.gt.T_world_cam[i])
        if self.kind == "wall" and EVENT <= i < EVENT + 3:
            ramp = np.linspace(120, 136, self.camera.width, dtype=np.float32)  # smooth, no corners
            image = np.repeat(np.broadcast_to(ramp, (self.camera.height, self.camera.width))[..., None], 3, 2)
            return replace(f, image=image.astype(np.uint8), depth_m=np.full_like(f.depth_m, 1.5))
        return f


@pytest.mark.parametrize("kind", ["turn90", "wall"])
def test_tracking_loss_is_marked_and_recovered(kind, tmp_path):
    seq = Disturbed(kind)
    cfg = load_config(None, {"depth": {"source": "gt", "max_depth_m": 10.0}, "mapping": {"enabled": False}})
    summary = OdometryPipeline(seq, cfg, tmp_path, progress=False).run()
    assert summary["frames"] == N and summary["lost_frames"] >= 1
    first_lost = summary["lost_spans"][0][0]
    assert EVENT <= first_lost <= EVENT + 1
    est = Trajectory.read_tum(tmp_path / "trajectory_tum.txt")
    assert len(est) == N and np.isfinite(est.T_world_cam).all()
    # Before the event and after re-anchoring, frame-to-frame motion is right (metric depth keeps the scale).
    after = summary["lost_spans"][-1][1] + 2
    assert after < N - 5
    gt = seq.gt.T_world_cam
    for lo, hi in ((1, EVENT - 1), (after, N - 1)):
        rel_est = inv_se3(est.T_world_cam[lo]) @ est.T_world_cam[hi]
        rel_gt = inv_se3(gt[lo]) @ gt[hi]
        assert np.linalg.norm(rel_est[:3, 3] - rel_gt[:3, 3]) < 0.03 + 0.05 * np.linalg.norm(rel_gt[:3, 3])
