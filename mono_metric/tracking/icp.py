"""Dense pose refinement of a keyframe against the previous keyframe's depth (Open3D tensor ICP).

Only keyframes carry depth, so ICP aligns the new keyframe's back-projected depth to the previous
keyframe's, starting from the PnP pose; it refines that pose with all the depth instead of the
corners alone. Point-to-plane ICP (Open3D's coloured ICP diverged on the synthetic rooms in tests, so it
is not offered).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import open3d.core as o3c

from mono_metric.camera import Camera

METHODS = ("point_to_plane",)


@dataclass
class DepthCloud:
    """A keyframe's depth as a down-sampled Open3D point cloud with normals, in the world frame."""

    cloud: o3d.t.geometry.PointCloud

    @classmethod
    def from_depth(cls, camera: Camera, image: np.ndarray, depth_m: np.ndarray, T_world_cam: np.ndarray,
                   voxel_m: float, max_depth_m: float, stride: int = 2) -> "DepthCloud":
        """Back-project (H, W) metric depth (0 = invalid) with its (H, W, 3) uint8 colours."""
        d = depth_m[::stride, ::stride]
        v, u = np.nonzero(np.isfinite(d) & (d > 0) & (d < max_depth_m))
        xyz = camera.backproject(np.stack([u * stride, v * stride], 1).astype(np.float64), d[v, u].astype(np.float64))
        pc = o3d.t.geometry.PointCloud(o3c.Tensor((xyz @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]).astype(np.float32)))
        pc.point.colors = o3c.Tensor(image[::stride, ::stride][v, u].astype(np.float32) / 255.0)
        if len(xyz) == 0:
            return cls(pc)
        pc = pc.voxel_down_sample(voxel_m)
        if len(pc.point.positions) >= 3:
            pc.estimate_normals(max_nn=20, radius=3.0 * voxel_m)
        return cls(pc)

    def __len__(self) -> int:
        return int(self.cloud.point.positions.shape[0])


def refine_pose_icp(source: DepthCloud, target: DepthCloud, T_world_src_init: np.ndarray, max_corr_m: float,
                    method: str = "point_to_plane", iterations: int = 30) -> tuple[np.ndarray, float, float]:
    """Refine the pose of ``source`` (built at ``T_world_src_init``) so that it lies on ``target``.

    Args:
        source: the new keyframe's cloud, built with its initial pose ``T_world_src_init``.
        target: the previous keyframe's cloud (world frame).
        T_world_src_init: (4, 4) initial pose of the new keyframe.
        max_corr_m: largest point-pair distance.
        method: 'point_to_plane'.
        iterations: ICP iterations.

    Returns:
        (refined (4, 4) pose, fitness = fraction of source points with a pair, inlier RMSE in metres).
    """
    if method not in METHODS:
        raise ValueError(f"ICP method must be one of {METHODS}, got {method!r}")
    if len(source) < 30 or len(target) < 30:
        return T_world_src_init.copy(), 0.0, float("inf")
    reg = o3d.t.pipelines.registration
    result = reg.icp(source.cloud, target.cloud, max_corr_m, o3c.Tensor(np.eye(4)), reg.TransformationEstimationPointToPlane(),
                     reg.ICPConvergenceCriteria(max_iteration=iterations))
    correction = result.transformation.numpy()  # world -> world, applied to the source cloud
    return correction @ T_world_src_init, float(result.fitness), float(result.inlier_rmse)
