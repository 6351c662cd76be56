"""Evaluation: trajectory (ATE/RPE/KITTI) and depth metrics, and plots."""
from mono_metric.eval.depth import depth_metrics
from mono_metric.eval.trajectory import (ate, evaluate_trajectory, kitti_segment_errors,
                                         kitti_short_segment_errors, rpe, umeyama)

__all__ = ["ate", "rpe", "umeyama", "kitti_segment_errors", "kitti_short_segment_errors",
           "evaluate_trajectory", "depth_metrics"]
