"""``OdometryPipeline``: owns the frame loop, timing, evaluation and the results folder.

Outputs in ``out_dir``: ``trajectory_kitti.txt`` and ``trajectory_tum.txt`` (appended frame by frame,
so an interrupted run keeps what it had), ``config.yaml``, ``timings.json``, and when ground truth
exists ``metrics.json``, ``trajectory.png`` and ``gt_tum.txt``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mono_metric.config import Config
from mono_metric.datasets.base import Sequence
from mono_metric.depth_sources import make_depth_source
from mono_metric.errors import InputError
from mono_metric.eval.plot import plot_top_view
from mono_metric.eval.trajectory import evaluate_trajectory
from mono_metric.odometry import Odometry
from mono_metric.types import Trajectory, format_kitti, format_tum


class OdometryPipeline:
    """Runs :class:`Odometry` over a :class:`Sequence` and writes results.

    Args:
        sequence: any loaded sequence.
        config: validated settings (saved as ``config.yaml`` next to the results).
        out_dir: results folder (created).
        progress: show a progress bar.
    """

    def __init__(self, sequence: Sequence, config: Config, out_dir: str | Path, progress: bool = True):
        self.sequence, self.config, self.progress = sequence, config.validate(), progress
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / ".write_test").touch()
            (self.out_dir / ".write_test").unlink()
        except OSError as err:
            raise InputError(f"output folder {self.out_dir} is not writable ({err.strerror}); choose another --out") from err

    def run(self) -> dict:
        """Process every frame; returns a summary dict (metrics when ground truth exists, fps, paths)."""
        seq, cfg = self.sequence, self.config
        depth_source = make_depth_source(cfg.depth)
        odo = Odometry(cfg.tracking, seq.camera, cfg.depth.max_depth_m)
        cfg.save(self.out_dir / "config.yaml")
        timings = {"load": 0.0, "depth": 0.0, "tracking": 0.0}
        statuses: list[str] = []
        kitti_f = open(self.out_dir / "trajectory_kitti.txt", "w")
        tum_f = open(self.out_dir / "trajectory_tum.txt", "w")
        try:
            bar = tqdm(range(len(seq)), desc=seq.name, unit="frame", disable=not self.progress)
            for i in bar:
                t0 = time.perf_counter()
                frame = seq[i]
                t1 = time.perf_counter()
                depth = depth_source(frame)
                t2 = time.perf_counter()
                result = odo.track(frame.image, frame.timestamp, depth)
                t3 = time.perf_counter()
                timings["load"] += t1 - t0
                timings["depth"] += t2 - t1
                timings["tracking"] += t3 - t2
                statuses.append(result.status)
                _append_pose(kitti_f, tum_f, frame.timestamp, result.T_world_cam)
                bar.set_postfix(status=result.status, inliers=result.inliers)
        finally:
            kitti_f.close()
            tum_f.close()
        n = len(statuses)
        timings_out = {k: v / max(n, 1) * 1000.0 for k, v in timings.items()}
        timings_out = {f"{k}_ms_per_frame": v for k, v in timings_out.items()}
        timings_out["tracking_fps"] = n / max(timings["tracking"], 1e-9)
        (self.out_dir / "timings.json").write_text(json.dumps(timings_out, indent=2))
        est = odo.trajectory()
        summary = {"sequence": seq.name, "frames": n, "lost_frames": statuses.count("lost"),
                   "timings": timings_out, "out_dir": str(self.out_dir)}
        if seq.gt is not None and n > 2:
            gt = seq.gt[:n]
            metrics = evaluate_trajectory(gt, est)
            (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
            gt.write_tum(self.out_dir / "gt_tum.txt")
            plot_top_view(self.out_dir / "trajectory.png", est, gt, np.array(metrics["ate"]["T_gt_est"]),
                          title=seq.name)
            summary["metrics"] = metrics
        return summary


def _append_pose(kitti_f, tum_f, timestamp: float, T: np.ndarray) -> None:
    kitti_f.write(format_kitti(T[None]))
    tum_f.write(format_tum(np.array([timestamp]), T[None]))
    kitti_f.flush()
    tum_f.flush()


def read_partial_trajectory(out_dir: str | Path) -> Trajectory:
    """The TUM trajectory written so far in ``out_dir`` (also after an interrupted run)."""
    return Trajectory.read_tum(Path(out_dir) / "trajectory_tum.txt")
