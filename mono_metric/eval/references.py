"""Reference odometry methods that benchmarks run beside ours, on the same frames and the same depth maps.

- :func:`static_poses`: the estimate that never moves (identity poses).
- :func:`open3d_rgbd_odometry`: Open3D's dense RGB-D odometry (photometric + geometric "hybrid" term),
  frame to frame, seeded with the previous motion, chained.
- :func:`five_point_odometry`: corners + pyramidal Lucas-Kanade + OpenCV's five-point RANSAC
  (``findEssentialMat`` + ``recoverPose``), chained; rotation only, and with the translation's scale
  taken from the tracked points' metric depth where depth is given.
- :func:`kiss_icp_odometry`: KISS-ICP (``pip install kiss-icp``, the ``bench`` extra) on the
  back-projected depth maps.

Every function returns ``T_world_cam`` (N, 4, 4) with the first camera as the world frame, and the
number of frame pairs it could not estimate (the previous motion is then repeated). Images are (H, W, 3)
uint8 RGB, depth maps (H, W) float32 metres with 0 = invalid, as :class:`~mono_metric.types.Frame` holds them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mono_metric.camera import Camera
from mono_metric.geometry import depth_at_pixels, inv_se3, make_se3, median_filtered_depth, rotation_angle_rad
from mono_metric.tracking.features import KltFrontend


DISTANCE_THRESH_BASELINES = 1e6  # recoverPose's cheirality test: points up to this many baselines away count


@dataclass
class ReferenceResult:
    """Poses of a reference method.

    Attributes:
        T_world_cam: (N, 4, 4) poses, world = first camera.
        failures: frame pairs the method could not estimate (previous motion repeated).
    """

    T_world_cam: np.ndarray
    failures: int = 0


def _check_inputs(images: list[np.ndarray] | None, depths: list[np.ndarray] | None, camera: Camera) -> int:
    seqs = [s for s in (images, depths) if s is not None]
    n = len(seqs[0])
    if n < 1 or any(len(s) != n for s in seqs):
        raise ValueError(f"need equally many (>= 1) images and depth maps, got {[len(s) for s in seqs]}")
    for s in seqs:
        camera.check_image(s[0], "reference input")
    return n


def _chain(T_prev_cur: list[np.ndarray]) -> np.ndarray:
    """(N, 4, 4) T_world_cam from N - 1 relative motions T_prev_cur (world = first camera)."""
    poses = [np.eye(4)]
    for T in T_prev_cur:
        poses.append(poses[-1] @ T)
    return np.stack(poses)


def static_poses(n: int) -> ReferenceResult:
    """The estimate that never moves: (n, 4, 4) identities."""
    if n < 1:
        raise ValueError(f"need n >= 1 frames, got {n}")
    return ReferenceResult(np.tile(np.eye(4), (n, 1, 1)))


def open3d_rgbd_odometry(images: list[np.ndarray], depths: list[np.ndarray], camera: Camera, max_depth_m: float,
                         depth_diff_max_m: float = 0.03) -> ReferenceResult:
    """Open3D ``compute_rgbd_odometry`` (``RGBDOdometryJacobianFromHybridTerm``) frame to frame, chained.

    Each pair starts from the previous pair's motion; a failed pair repeats it.

    Args:
        images: N (H, W, 3) uint8 RGB frames.
        depths: N (H, W) float32 depth maps (m, 0 = invalid).
        camera: pinhole intrinsics of both.
        max_depth_m: depth beyond this is ignored.
        depth_diff_max_m: largest depth difference of a correspondence (Open3D's default 0.03 m is for
            a Kinect at a few metres).
    """
    import open3d as o3d

    n = _check_inputs(images, depths, camera)
    odo = o3d.pipelines.odometry
    intrinsic = o3d.camera.PinholeCameraIntrinsic(camera.width, camera.height, camera.fx, camera.fy, camera.cx,
                                                  camera.cy)
    option = odo.OdometryOption(depth_diff_max=depth_diff_max_m, depth_min=0.0, depth_max=max_depth_m)
    jacobian = odo.RGBDOdometryJacobianFromHybridTerm()

    def rgbd(i: int):
        return o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray(images[i])),
            o3d.geometry.Image(np.ascontiguousarray(depths[i], dtype=np.float32)),
            depth_scale=1.0, depth_trunc=max_depth_m, convert_rgb_to_intensity=True)

    motions, motion, failures, prev = [], np.eye(4), 0, rgbd(0)
    for i in range(1, n):
        cur = rgbd(i)
        # source = current, target = previous: the result maps current-camera points to the previous camera.
        ok, T_prev_cur, _ = odo.compute_rgbd_odometry(cur, prev, intrinsic, motion, jacobian, option)
        if ok:
            motion = np.asarray(T_prev_cur)
        else:
            failures += 1
        motions.append(motion.copy())
        prev = cur
    return ReferenceResult(_chain(motions), failures)


@dataclass
class FivePointResult:
    """Poses of the five-point baseline.

    Attributes:
        rotation_only: (N, 4, 4) chained rotations, zero translation (rotation metrics only).
        with_depth: (N, 4, 4) rotations with the unit translation scaled by the tracked points' depth,
            None when no depth was given.
        failures: pairs with too few tracks or inliers (previous motion repeated).
        flips: pairs where ``recoverPose`` chose a rotation over 90 degrees (the twisted pair of the
            essential matrix) and the other decomposition was taken.
    """

    rotation_only: np.ndarray
    with_depth: np.ndarray | None
    failures: int
    flips: int


def _essential_pose(uv0: np.ndarray, uv1: np.ndarray, K: np.ndarray, ransac_px: float,
                    max_rotation_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
    """R, unit t (``x1 = R x0 + t``), inlier mask and whether the twisted-pair flip was undone; None if degenerate."""
    E, mask = cv2.findEssentialMat(uv0, uv1, K, cv2.RANSAC, 0.999, ransac_px)
    if E is None or mask is None:
        return None
    best = None
    for k in range(E.shape[0] // 3):  # the 5-point solver may return up to ten stacked solutions
        Ek = E[3 * k:3 * k + 3]
        # The default cheirality test drops points farther than 50 baselines: with a hand-held camera
        # moving 1 cm per frame that is every point beyond 0.5 m, so no pose passes. Keep them all.
        count, R, t, pose_mask, _ = cv2.recoverPose(
            Ek, uv0, uv1, K, distanceThresh=DISTANCE_THRESH_BASELINES, mask=mask.copy())
        if best is None or count > best[0]:
            best = (count, Ek, R, t, pose_mask)
    count, Ek, R, t, pose_mask = best
    if count < 8:
        return None
    flipped = np.degrees(rotation_angle_rad(R)) > max_rotation_deg
    if flipped:  # a video camera does not turn this far between frames: take the other rotation of E
        R1, R2, _ = cv2.decomposeEssentialMat(Ek)
        R = min((R1, R2), key=lambda r: float(rotation_angle_rad(r)))
    inliers = (pose_mask.reshape(-1) > 0) if not flipped else (mask.reshape(-1) > 0)
    return R, t.reshape(3), inliers, bool(flipped)


def five_point_odometry(images: list[np.ndarray], camera: Camera, depths: list[np.ndarray] | None = None,
                        max_depth_m: float = 80.0, max_features: int = 1500, min_distance_px: int = 8,
                        ransac_px: float = 1.0, max_rotation_deg: float = 90.0,
                        max_depth_jump: float = 0.08) -> FivePointResult:
    """Frame-to-frame five-point odometry: fresh corners each frame, LK tracks, essential matrix, recoverPose.

    With ``depths``, the unit translation ``t`` of each pair is scaled by the median of
    ``t . (X1 - R X0)`` over the inlier tracks whose depth is valid in both frames (``X0``, ``X1``: the
    tracked points back-projected with each frame's 5x5 median-filtered depth, as our odometry reads
    depth); the sign of that median also undoes a wrong sign of ``t``.

    Args:
        images: N (H, W, 3) uint8 RGB frames.
        camera: pinhole intrinsics.
        depths: optional N (H, W) float32 depth maps (m, 0 = invalid).
        max_depth_m: depth beyond this is not used for the scale.
        max_features, min_distance_px: Shi-Tomasi corners per frame and their spacing.
        ransac_px: RANSAC threshold of ``findEssentialMat`` in pixels.
        max_rotation_deg: a rotation larger than this between frames is taken as the twisted-pair flip.
        max_depth_jump: relative 3x3 depth spread above which a track's depth is not used (depth edges;
            our odometry's value).
    """
    n = _check_inputs(images, depths, camera)
    klt = KltFrontend(max_features=max_features, min_distance_px=min_distance_px)
    K = camera.K
    rot_motions, motions = [], []
    R_last, T_last = np.eye(3), np.eye(4)
    failures = flips = 0
    prev = cv2.cvtColor(images[0], cv2.COLOR_RGB2GRAY)
    prev_depth = median_filtered_depth(depths[0]) if depths is not None else None
    for i in range(1, n):
        cv2.setRNGSeed(i)  # RANSAC draws depend on the frame only
        gray = cv2.cvtColor(images[i], cv2.COLOR_RGB2GRAY)
        depth = median_filtered_depth(depths[i]) if depths is not None else None
        uv0, _ = klt.detect(prev)
        uv1, good = klt.find(prev, gray, uv0, None)
        uv0, uv1 = uv0[good].astype(np.float64), uv1[good].astype(np.float64)
        est = _essential_pose(uv0, uv1, K, ransac_px, max_rotation_deg) if len(uv0) >= 8 else None
        scaled = None
        if est is not None:
            R, t, inl, flipped = est
            flips += flipped
            R_last = R
            if depths is not None:
                z0, ok0 = depth_at_pixels(prev_depth, uv0[inl], max_depth_jump)
                z1, ok1 = depth_at_pixels(depth, uv1[inl], max_depth_jump)
                ok = ok0 & ok1 & (z0 > 0) & (z1 > 0) & (z0 < max_depth_m) & (z1 < max_depth_m)
                if ok.sum() >= 5:
                    X0 = camera.backproject(uv0[inl][ok], z0[ok])
                    X1 = camera.backproject(uv1[inl][ok], z1[ok])
                    s = float(np.median((X1 - X0 @ R.T) @ t))
                    scaled = inv_se3(make_se3(R, s * t))
        if est is None or (depths is not None and scaled is None):
            failures += 1
        if scaled is not None:
            T_last = scaled
        elif est is not None:  # rotation known, scale not: keep the previous translation
            T_last = make_se3(R_last.T, T_last[:3, 3])
        rot_motions.append(make_se3(R_last.T, np.zeros(3)))
        motions.append(T_last)
        prev, prev_depth = gray, depth
    return FivePointResult(_chain(rot_motions), _chain(motions) if depths is not None else None, failures, flips)


def backproject_cloud(depth_m: np.ndarray, camera: Camera, max_depth_m: float, pixel_stride: int = 2) -> np.ndarray:
    """(M, 3) float64 camera-frame points of every ``pixel_stride``-th pixel with 0 < depth < ``max_depth_m``."""
    d = np.asarray(depth_m)[::pixel_stride, ::pixel_stride].astype(np.float64)
    pts = camera.backproject_depth(np.asarray(depth_m, np.float64))[::pixel_stride, ::pixel_stride]
    return pts[(d > 0) & (d < max_depth_m)]


def kiss_icp_odometry(depths: list[np.ndarray], camera: Camera, max_depth_m: float,
                      pixel_stride: int = 2) -> ReferenceResult:
    """KISS-ICP on the back-projected depth maps (camera frame = sensor frame; no deskewing).

    KISS-ICP's metric settings are made for a 100 m lidar (voxel 1 m, initial threshold 2 m, minimum
    motion 0.1 m); they are scaled by ``max_depth_m / 100``, nothing tuned.

    Raises:
        ImportError: kiss-icp is not installed (``pip install 'mono_metric[bench]'``).
    """
    try:
        from kiss_icp.config import KISSConfig
        from kiss_icp.kiss_icp import KissICP
    except ImportError as err:
        raise ImportError("KISS-ICP is not installed; pip install 'mono_metric[bench]' (or kiss-icp)") from err
    _check_inputs(None, depths, camera)
    scale = max_depth_m / 100.0
    cfg = KISSConfig()
    cfg.data.max_range, cfg.data.min_range, cfg.data.deskew = max_depth_m, 0.0, False
    cfg.mapping.voxel_size = 1.0 * scale
    cfg.adaptive_threshold.initial_threshold = 2.0 * scale
    cfg.adaptive_threshold.min_motion_th = 0.1 * scale
    cfg.registration.max_num_threads = 1
    icp, poses, failures = KissICP(cfg), [], 0
    for depth in depths:
        pts = backproject_cloud(depth, camera, max_depth_m, pixel_stride)
        if len(pts) < 100:  # nothing to register: repeat the previous motion
            failures += 1
            icp.last_pose = icp.last_pose @ icp.last_delta
        else:
            icp.register_frame(pts, np.zeros(len(pts)))
        poses.append(np.array(icp.last_pose, dtype=np.float64))
    T = np.stack(poses)
    return ReferenceResult(inv_se3(T[0]) @ T, failures)
