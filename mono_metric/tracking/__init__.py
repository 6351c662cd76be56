"""Tracking: feature front-ends (features.py), PnP inside RANSAC with pypose refinement (pnp.py),
the essential-matrix hybrid pose (essential.py), photometric refinement against the keyframe (dense.py)
and point-to-plane ICP against keyframe depth (icp.py)."""
from mono_metric.tracking.pnp import PnPResult, refine_pose_lm, refine_pose_opencv, solve_pnp_ransac

__all__ = ["PnPResult", "solve_pnp_ransac", "refine_pose_lm", "refine_pose_opencv"]
