"""Pose estimation: PnP inside RANSAC and robust refinement with pypose."""
from mono_metric.pose.pnp import PnPResult, refine_pose_lm, refine_pose_opencv, solve_pnp_ransac

__all__ = ["PnPResult", "solve_pnp_ransac", "refine_pose_lm", "refine_pose_opencv"]
