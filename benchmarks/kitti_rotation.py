"""Relative-rotation error on real KITTI frames (the shared KITTI 06 excerpt), where no depth sensor
exists to measure metric translation but rotation can be checked against the ground-truth poses.

Compares, frame to frame: (a) the rotation of our metric VO (``mono-metric run`` with the given depth
model; rotation from PnP on its keyframe depth, or from the essential matrix where ``tracking.pose:
hybrid`` picks it, as configs/kitti.yaml does), and (b) a depth-free reference: the rotation of
the essential matrix of the same Lucas-Kanade tracks (OpenCV five-point RANSAC).

    python benchmarks/kitti_rotation.py [--data ../shared/data/kitti_odometry] [--depth mono_metric_tiny]
"""
from __future__ import annotations

import argparse
import tempfile

import cv2
import numpy as np

from mono_metric import OdometryPipeline, load_config, load_sequence
from mono_metric.tracking.features import KltFrontend
from mono_metric.geometry import rotation_angle_rad


def relative_rotation_errors_deg(R_gt: np.ndarray, R_est: np.ndarray) -> np.ndarray:
    """Angle of (R_gt_i^T R_gt_i+1)^T (R_est_i^T R_est_i+1) for consecutive frames, degrees."""
    errs = []
    for i in range(len(R_gt) - 1):
        d_gt, d_est = R_gt[i].T @ R_gt[i + 1], R_est[i].T @ R_est[i + 1]
        errs.append(np.degrees(rotation_angle_rad(d_gt.T @ d_est)))
    return np.array(errs)


def essential_rotations(seq) -> np.ndarray:
    """Camera-to-world rotations chained from frame-to-frame essential matrices."""
    klt = KltFrontend(max_features=1500, min_distance_px=8)
    K = seq.camera.K
    R_world = [np.eye(3)]
    prev = cv2.cvtColor(seq[0].image, cv2.COLOR_RGB2GRAY)
    for i in range(1, len(seq)):
        gray = cv2.cvtColor(seq[i].image, cv2.COLOR_RGB2GRAY)
        uv0, _ = klt.detect(prev)
        uv1, good = klt.find(prev, gray, uv0, None)
        E, mask = cv2.findEssentialMat(uv0[good], uv1[good], K, cv2.RANSAC, 0.999, 1.0)
        _, R_cur_prev, _, _ = cv2.recoverPose(E[:3], uv0[good], uv1[good], K, mask=mask)
        R_world.append(R_world[-1] @ R_cur_prev.T)
        prev = gray
    return np.stack(R_world)


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
        from mono_metric.pipeline import read_partial_trajectory

        R_vo = read_partial_trajectory(out).T_world_cam[:, :3, :3]
    rows = [(f"metric VO ({args.depth} depth, tracking.pose {cfg.tracking.pose})", relative_rotation_errors_deg(R_gt, R_vo)),
            ("essential matrix (no depth)", relative_rotation_errors_deg(R_gt, essential_rotations(seq)))]
    gt_step = np.degrees([rotation_angle_rad(R_gt[i].T @ R_gt[i + 1]) for i in range(len(R_gt) - 1)])
    print(f"{seq.name}: {len(seq)} frames, GT rotation per frame: mean {gt_step.mean():.3f} deg, "
          f"max {gt_step.max():.3f} deg; VO keyframes {summary['keyframes']}, lost {summary['lost_frames']}")
    print("| method | mean (deg) | median (deg) | RMSE (deg) | max (deg) |")
    print("|---|---|---|---|---|")
    for name, e in rows:
        print(f"| {name} | {e.mean():.4f} | {np.median(e):.4f} | {np.sqrt(np.mean(e ** 2)):.4f} | {e.max():.4f} |")


if __name__ == "__main__":
    main()
