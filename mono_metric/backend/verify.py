"""Geometric verification of a loop / relocalisation candidate with metric depth.

ORB features of the two images are matched (Hamming, ratio test); the candidate keyframe's keypoints
are lifted to 3D with its metric depth and PnP-RANSAC finds the query camera's pose. A loop is accepted
with enough inliers, a high enough inlier ratio and (when the query has depth) agreement between the
query's own depth and the depth the registration predicts. The relative SE(3) is then refined by
point-to-plane ICP of the two keyframes' depth (Open3D), with Open3D's information matrix for the
pose graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import open3d as o3d
import open3d.core as o3c

from mono_metric.camera import Camera
from mono_metric.geometry import depth_at_pixels, interpolate_se3, inv_se3
from mono_metric.tracking.icp import information_matrix, point_to_plane_icp, voxel_down_sample
from mono_metric.tracking.pnp import solve_pnp_ransac

DEPTH_STRIDE = 2  # KeyframeFeatures.depth_small is the depth at 1/2 resolution (keypoint depth)
CLOUD_STRIDE = 2  # the ICP clouds use every 2nd pixel of it (1/4 resolution)
ICP_SOURCE_STRIDE = 2  # loop ICP iterates on every 2nd point of the source cloud
INFO_SOURCE_STRIDE = 4  # information matrices sum every 4th source point (times 4)


@dataclass
class Registration:
    """Outcome of :func:`register`.

    Attributes:
        ok: all tests passed.
        T_query_cand: (4, 4) candidate camera in the query camera frame (PnP, ICP-refined when ok).
        matches, inliers: descriptor matches with candidate depth, PnP inliers.
        depth_error: median relative query-depth disagreement at the inliers (nan without query depth).
        reason: why it failed ('' when ok).
    """

    ok: bool
    T_query_cand: np.ndarray
    matches: int
    inliers: int
    depth_error: float
    reason: str


def orb_features(gray: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) float32 keypoints and (N, 32) uint8 ORB descriptors of (H, W) uint8 ``gray``."""
    orb = cv2.ORB_create(nfeatures=n, fastThreshold=10)
    kps, desc = orb.detectAndCompute(gray, None)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in kps], np.float32), desc


def match_orb(desc_a: np.ndarray, desc_b: np.ndarray, ratio: float = 0.8) -> np.ndarray:
    """(M, 2) index pairs (into a, into b) passing the ratio test.

    OpenCV's ``batchDistance`` (what ``BFMatcher.knnMatch`` runs, the same pairs) returns the two nearest
    neighbours as arrays, without a ``DMatch`` object per neighbour.
    """
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros((0, 2), int)
    dist, nn = cv2.batchDistance(desc_a, desc_b, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2, update=0,
                                 crosscheck=False)
    good = np.flatnonzero((nn[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1]))
    return np.stack([good, nn[good, 0]], 1).astype(int)


def ransac_iterations(inlier_ratio: float, confidence: float = 0.999, sample: int = 5, most: int = 300) -> int:
    """RANSAC iterations that find a model with ``inlier_ratio`` inliers with ``confidence`` (OpenCV's
    PnP-RANSAC draws ``sample`` = 5 points), at most ``most``.

    A registration needs ``max(min_inliers, min_inlier_ratio * matches)`` inliers, so with few matches the
    needed ratio is high and a few iterations decide: 48 matches need 40 inliers (83 %), found within 14
    iterations if they exist, where a wrong candidate used to run all 300 (10-18 ms each on the block drive).
    """
    w = float(np.clip(inlier_ratio, 1e-6, 1.0))
    if w >= 1.0:
        return 1
    n = np.log(1.0 - confidence) / np.log(max(1.0 - w ** sample, 1e-12))
    return int(min(most, max(1, np.ceil(n))))


def register(camera: Camera, query, cand, reproj_px: float, min_inliers: int, min_inlier_ratio: float,
             max_depth_error: float, T_guess: np.ndarray | None = None) -> Registration:
    """Pose of the candidate keyframe's camera in the query image's camera frame.

    Args:
        camera: intrinsics of both images.
        query, cand: :class:`~mono_metric.mapping.map.KeyframeFeatures` (the query's ``depth_m`` may be
            all 0: no depth test then, as for relocalisation).
        reproj_px, min_inliers, min_inlier_ratio, max_depth_error: the acceptance tests.
        T_guess: optional (4, 4) ``T_query_cand`` to start PnP from.
    """
    pairs = match_orb(query.desc, cand.desc)
    pairs = pairs[cand.depth_m[pairs[:, 1]] > 0] if len(pairs) else pairs
    fail = Registration(False, np.eye(4) if T_guess is None else T_guess, len(pairs), 0, float("nan"), "")
    if len(pairs) < min_inliers:
        fail.reason = "matches"
        return fail
    xyz_cand = camera.backproject(cand.uv[pairs[:, 1]].astype(np.float64), cand.depth_m[pairs[:, 1]])
    uv_q = query.uv[pairs[:, 0]].astype(np.float64)
    pnp = solve_pnp_ransac(xyz_cand, uv_q, camera.K, reproj_px, min_inliers, T_guess,
                           iterations=ransac_iterations(max(min_inliers / len(pairs), min_inlier_ratio)))
    fail.inliers = len(pnp.inliers)
    if not pnp.ok:
        fail.reason = "pnp"
        return fail
    if len(pnp.inliers) < min_inlier_ratio * len(pairs):
        fail.reason = "inlier_ratio"
        return fail
    T = pnp.T_cam_world
    zq = query.depth_m[pairs[pnp.inliers, 0]]
    err = float("nan")
    if (zq > 0).sum() >= min_inliers // 2:
        z_pred = xyz_cand[pnp.inliers] @ T[2, :3] + T[2, 3]
        err = float(np.median(np.abs(z_pred[zq > 0] - zq[zq > 0]) / zq[zq > 0]))
        if not err <= max_depth_error:
            return Registration(False, T, len(pairs), len(pnp.inliers), err, "depth")
    return Registration(True, T, len(pairs), len(pnp.inliers), err, "")


def two_way(camera: Camera, query, cand, T_query_cand: np.ndarray, reproj_px: float, min_inliers: int,
            min_inlier_ratio: float, max_depth_error: float) -> np.ndarray:
    """A verified registration made symmetric: the SE(3) midpoint of ``T_query_cand`` (the query's pixels
    against the candidate's depth) and the reverse registration (the candidate's pixels against the query's
    depth).

    Each direction carries one image's depth error; a network errs independently on the two images, so the
    midpoint averages them (room loops, 0.5-1 m baselines: 0.8-21 cm one way, median 12.8 cm; half-way 1.0-21 cm,
    median 7.3 cm).

    Args:
        camera: intrinsics of both images.
        query, cand: :class:`~mono_metric.mapping.map.KeyframeFeatures`, both with depth.
        T_query_cand: (4, 4) the forward registration's pose of the candidate camera in the query's frame.
        reproj_px, min_inliers, min_inlier_ratio, max_depth_error: :func:`register`'s tests, for the reverse.

    Returns:
        (4, 4) ``T_query_cand``; the input when the reverse registration fails.
    """
    rev = register(camera, cand, query, reproj_px, min_inliers, min_inlier_ratio, max_depth_error)
    if not rev.ok:
        return np.asarray(T_query_cand, np.float64)
    return T_query_cand @ interpolate_se3(inv_se3(T_query_cand) @ inv_se3(rev.T_query_cand), 0.5)


def depth_cloud(camera: Camera, depth_small: np.ndarray, voxel_m: float) -> o3d.t.geometry.PointCloud:
    """Camera-frame point cloud of a keyframe's 1/2-resolution depth map (every ``CLOUD_STRIDE``-th pixel: 1/4
    resolution), down-sampled to ``voxel_m`` (no normals: :func:`add_normals` for an ICP target)."""
    small_cam = camera.scaled(1.0 / (DEPTH_STRIDE * CLOUD_STRIDE))
    d = np.asarray(depth_small, np.float32)[::CLOUD_STRIDE, ::CLOUD_STRIDE]
    v, u = np.nonzero(d > 0)
    xyz = small_cam.backproject(np.stack([u, v], 1).astype(np.float64), d[v, u].astype(np.float64))
    pc = o3d.t.geometry.PointCloud(o3c.Tensor(xyz.astype(np.float32)))
    return voxel_down_sample(pc, voxel_m) if len(xyz) >= 30 else pc


def add_normals(cloud: o3d.t.geometry.PointCloud, voxel_m: float) -> None:
    """Estimate the normals of ``cloud`` in place (once; point-to-plane ICP needs them on its target)."""
    if "normals" not in cloud.point and len(cloud.point.positions) >= 3:
        cloud.estimate_normals(max_nn=20, radius=3.0 * voxel_m)


def refine_icp(source: o3d.t.geometry.PointCloud, target: o3d.t.geometry.PointCloud, T_target_source: np.ndarray,
               voxel_m: float, min_fitness: float, index=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Point-to-plane ICP of two camera-frame clouds from ``T_target_source``.

    Returns:
        (refined (4, 4) ``T_target_source`` (the input when ICP fails its fitness or moves it more than 5
        voxels), (6, 6) Open3D information matrix, fitness).
    """
    n = len(source.point.positions)
    if n < 30 or len(target.point.positions) < 30 or "normals" not in target.point:
        return T_target_source, np.eye(6), 0.0
    # Every ICP_SOURCE_STRIDE-th source point (the voxel grid is in lexicographic order: an even spread) for the
    # iterations; the information from the whole cloud, estimated by :func:`information` (INFO_SOURCE_STRIDE).
    sparse = source.select_by_index(o3c.Tensor(np.arange(0, n, ICP_SOURCE_STRIDE, dtype=np.int64)))
    T, fitness, _ = point_to_plane_icp(sparse, target, T_target_source, 3.0 * voxel_m, iterations=10, index=index)
    moved = np.linalg.norm((inv_se3(T_target_source) @ T)[:3, 3])
    if fitness < min_fitness or moved > 5.0 * voxel_m:
        T = T_target_source
    return T, information(source, target, T, voxel_m, index), float(fitness)


def information(source: o3d.t.geometry.PointCloud, target: o3d.t.geometry.PointCloud, T_target_source: np.ndarray,
                voxel_m: float, index=None) -> np.ndarray:
    """(6, 6) Open3D information matrix of two clouds at ``T_target_source`` (pairs within 3 voxels; zero when
    no point pairs, e.g. across a jump while tracking was lost), estimated from every ``INFO_SOURCE_STRIDE``-th
    source point. ``index``: the target's :func:`~mono_metric.tracking.icp.nearest_index`, when already built."""
    if len(source.point.positions) < 30 or len(target.point.positions) < 30:
        return np.eye(6)
    return information_matrix(source, target, T_target_source, 3.0 * voxel_m, INFO_SOURCE_STRIDE, index)


def features_depth(depth32: np.ndarray, uv: np.ndarray, max_depth_m: float, stride: int = 1) -> np.ndarray:
    """(N,) usable depth (m) at keypoints ``uv`` of a median-filtered depth map (0: none or on an edge).

    ``stride``: ``depth32`` is sampled every ``stride`` pixels of the image (the keyframe's 1/2-resolution
    depth: ``DEPTH_STRIDE``); the keypoints are in full-resolution pixels.
    """
    if len(uv) == 0:
        return np.zeros(0)
    z, consistent = depth_at_pixels(np.asarray(depth32, np.float32), np.asarray(uv, np.float64) / stride, 0.08)
    return np.where(consistent & (z > 0.05) & (z < max_depth_m), z, 0.0)


def relative_depth_scale(camera: Camera, xyz_world: np.ndarray, T_world_cam: np.ndarray, depth32: np.ndarray,
                         max_depth_m: float, min_points: int = 20) -> float | None:
    """How much larger a keyframe's 3D points are than a later image's own depth sees them (median ratio).

    Args:
        camera: intrinsics of the image.
        xyz_world: (N, 3) the earlier keyframe's points (m, world).
        T_world_cam: (4, 4) pose of the image.
        depth32: (H, W) float32 median-filtered depth of the image (m, 0 = none).
        max_depth_m: depths beyond this are not used.
        min_points: fewer visible points with depth: None.

    Returns:
        median of (depth the points predict) / (the image's depth) at the points that project with
        consistent depth: 1.02 when the earlier keyframe's geometry is 2 % larger; None without enough points.
    """
    xyz_world = np.asarray(xyz_world, np.float64).reshape(-1, 3)
    if len(xyz_world) < min_points:
        return None
    T = inv_se3(T_world_cam)
    xyz = xyz_world @ T[:3, :3].T + T[:3, 3]
    xyz = xyz[(xyz[:, 2] > 0.05) & (xyz[:, 2] < max_depth_m)]
    if len(xyz) < min_points:
        return None
    uv, z_pred = camera.project(xyz)
    h, w = depth32.shape
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    if inside.sum() < min_points:
        return None
    z, consistent = depth_at_pixels(depth32, uv[inside], 0.08)
    ok = consistent & (z > 0.05) & (z < max_depth_m)
    if ok.sum() < min_points:
        return None
    return float(np.exp(np.median(np.log(z_pred[inside][ok] / z[ok]))))
