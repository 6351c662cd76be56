"""Relative-rotation error on real KITTI frames (the shared KITTI 06 excerpt), where no depth sensor
exists to measure metric translation but rotation can be checked against the ground-truth poses.

Compares, frame to frame: (a) the rotation of our metric VO (``mono-metric run`` with the given depth
model; rotation from PnP on its keyframe depth, or from the essential matrix where ``tracking.pose:
hybrid`` picks it, as configs/kitti.yaml does), and (b) a depth-free reference: the five-point
baseline of :func:`mono_metric.eval.references.five_point_odometry` (LK tracks, essential matrix,
recoverPose). ``benchmarks/real_sequences.py`` reports the same columns for every shared sequence beside
more references; this script is the quick KITTI-only view.

    python benchmarks/kitti_rotation.py [--data ../shared/data/kitti_odometry] [--depth mono_metric_tiny]
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from mono_metric import OdometryPipeline, load_config, load_sequence
from mono_metric.eval.references import five_point_odometry
from mono_metric.eval.trajectory import relative_rotation_errors_deg
from mono_metric.geometry import rotation_angle_rad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/kitti_odometry")
    ap.add_argument("--depth", default="mono_metric_tiny")
    ap.add_argument("--config", default="configs/kitti.yaml")
    args = ap.parse_args()
    seq = load_sequence(args.data)
    R_gt = seq.gt.T_world_cam[:, :3, :3]
    cfg = load_config(args.config, {"depth": {"source": args.depth}, "mapping": {"enabled": False}})
    with tempfile.TemporaryDirectory() as out:
        summary = OdometryPipeline(seq, cfg, out, progress=False).run()
        from mono_metric.outputs import read_partial_trajectory

        T_vo = read_partial_trajectory(out).T_world_cam
    T_5pt = five_point_odometry([seq[i].image for i in range(len(seq))], seq.camera).rotation_only
    rows = [(f"metric VO ({args.depth} depth, tracking.pose {cfg.tracking.pose})", relative_rotation_errors_deg(seq.gt, T_vo)),
            ("essential matrix (no depth)", relative_rotation_errors_deg(seq.gt, T_5pt))]
    gt_step = np.degrees([rotation_angle_rad(R_gt[i].T @ R_gt[i + 1]) for i in range(len(R_gt) - 1)])
    print(f"{seq.name}: {len(seq)} frames, GT rotation per frame: mean {gt_step.mean():.3f} deg, "
          f"max {gt_step.max():.3f} deg; VO keyframes {summary['keyframes']}, lost {summary['lost_frames']}")
    print("| method | mean (deg) | median (deg) | RMSE (deg) | max (deg) |")
    print("|---|---|---|---|---|")
    for name, e in rows:
        print(f"| {name} | {e.mean():.4f} | {np.median(e):.4f} | {np.sqrt(np.mean(e ** 2)):.4f} | {e.max():.4f} |")


if __name__ == "__main__":
    main()
