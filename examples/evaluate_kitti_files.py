"""Evaluate a trajectory in KITTI format against ground truth, as a researcher would on KITTI.

    python examples/evaluate_kitti_files.py GT.txt EST.txt
"""
import json
import sys

from mono_metric import Trajectory
from mono_metric.eval import evaluate_trajectory


def main(gt_path: str, est_path: str) -> dict:
    metrics = evaluate_trajectory(Trajectory.read_kitti(gt_path), Trajectory.read_kitti(est_path))
    print(json.dumps({k: metrics[k] for k in ("frames", "path_length_m", "kitti", "kitti_short")}, indent=2))
    return metrics


if __name__ == "__main__":
    main(*sys.argv[1:3])
