"""Metric monocular odometry core: ``Odometry.track(image, timestamp, depth_m) -> TrackResult``.

This is the baseline frame loop: corners tracked frame to frame with pyramidal Lucas-Kanade,
lifted to 3D with the previous frame's metric depth, and the current pose solved by PnP-RANSAC
followed by Levenberg-Marquardt refinement on the inliers (OpenCV, or robust with pypose). Metric depth fixes the scale, so the
trajectory is in metres without any scale alignment. The core does no file I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mono_metric.camera import Camera
from mono_metric.config import TrackingConfig
from mono_metric.errors import InputError
from mono_metric.geometry import inv_se3
from mono_metric.pose import refine_pose_lm, refine_pose_opencv, solve_pnp_ransac
from mono_metric.types import Trajectory


@dataclass
class TrackResult:
    """Outcome of one ``track`` call.

    Attributes:
        T_world_cam: (4, 4) estimated pose.
        status: 'init', 'ok' or 'lost' (pose extrapolated with constant velocity).
        inliers: PnP inlier count (0 for 'init').
        tracked: features tracked into this frame.
    """

    T_world_cam: np.ndarray
    status: str
    inliers: int
    tracked: int


class Odometry:
    """Frame-to-frame metric visual odometry.

    Args:
        config: tracking settings.
        camera: intrinsics of every image passed to :meth:`track`.
        max_depth_m: depths beyond this are not used for 3D points.
    """

    max_depth_jump = 0.08  # relative depth spread tolerated around a corner

    def __init__(self, config: TrackingConfig, camera: Camera, max_depth_m: float = 80.0):
        self.config, self.camera, self.max_depth_m = config, camera, max_depth_m
        self._K = camera.K
        self._prev_gray: np.ndarray | None = None
        self._prev_uv = np.zeros((0, 2), np.float32)
        self._prev_xyz_world = np.zeros((0, 3))
        self._poses: list[np.ndarray] = []
        self._stamps: list[float] = []

    def track(self, image: np.ndarray, timestamp: float | None = None, depth_m: np.ndarray | None = None) -> TrackResult:
        """Estimate the pose of ``image``.

        Args:
            image: (H, W, 3) uint8 RGB of the camera's size.
            timestamp: seconds; defaults to the frame count.
            depth_m: (H, W) metric depth of this image (0 = invalid), used to lift features for the
                next frame.

        Returns:
            The :class:`TrackResult`; the pose is also appended to :meth:`trajectory`.
        """
        self.camera.check_image(image)
        if depth_m is None or depth_m.shape != image.shape[:2]:
            raise InputError("Odometry.track needs a metric depth map of the image's size")
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        timestamp = float(len(self._stamps) if timestamp is None else timestamp)
        if self._prev_gray is None:
            result = TrackResult(np.eye(4), "init", 0, 0)
        else:
            result = self._solve(gray)
        self._poses.append(result.T_world_cam)
        self._stamps.append(timestamp)
        self._prev_gray = gray
        self._detect(gray, depth_m, result.T_world_cam)
        return result

    def _solve(self, gray: np.ndarray) -> TrackResult:
        cfg = self.config
        guess = self._constant_velocity()
        if len(self._prev_uv) < cfg.min_inliers:
            return TrackResult(guess, "lost", 0, 0)
        win = (cfg.klt_window_px, cfg.klt_window_px)
        uv, st, _ = cv2.calcOpticalFlowPyrLK(self._prev_gray, gray, self._prev_uv, None, winSize=win, maxLevel=3)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self._prev_gray, uv, None, winSize=win, maxLevel=3)
        good = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back - self._prev_uv, axis=1) < 1.0)
        if good.sum() < cfg.min_inliers:
            return TrackResult(guess, "lost", 0, int(good.sum()))
        obj, img = self._prev_xyz_world[good], uv[good].astype(np.float64)
        pnp = solve_pnp_ransac(obj, img, self._K, cfg.ransac_reproj_px, cfg.min_inliers, inv_se3(guess))
        if not pnp.ok:
            return TrackResult(guess, "lost", len(pnp.inliers), int(good.sum()))
        obj, img = obj[pnp.inliers], img[pnp.inliers]
        if cfg.refine == "pypose":
            T_cam_world = refine_pose_lm(obj, img, self._K, pnp.T_cam_world, huber_px=cfg.ransac_reproj_px)
        else:
            T_cam_world = refine_pose_opencv(obj, img, self._K, pnp.T_cam_world)
        return TrackResult(inv_se3(T_cam_world), "ok", len(pnp.inliers), int(good.sum()))

    def _constant_velocity(self) -> np.ndarray:
        if len(self._poses) < 2:
            return self._poses[-1].copy()
        return self._poses[-1] @ inv_se3(self._poses[-2]) @ self._poses[-1]

    def _detect(self, gray: np.ndarray, depth_m: np.ndarray, T_world_cam: np.ndarray) -> None:
        cfg = self.config
        corners = cv2.goodFeaturesToTrack(gray, cfg.max_features, 0.005, cfg.min_distance_px, blockSize=7)
        uv = np.zeros((0, 2), np.float32) if corners is None else corners[:, 0, :]
        iu = np.clip(np.round(uv[:, 0]).astype(int), 0, gray.shape[1] - 1)
        iv = np.clip(np.round(uv[:, 1]).astype(int), 0, gray.shape[0] - 1)
        # Median filtering removes per-pixel depth noise; corners often sit on depth edges, where a
        # rounded pixel may read the background, so keep only corners with consistent depth around them.
        depth32 = cv2.medianBlur(np.nan_to_num(depth_m.astype(np.float32), nan=0.0, posinf=0.0), 5)
        z = depth32[iv, iu].astype(np.float64)
        kernel = np.ones((3, 3), np.uint8)
        ratio = cv2.dilate(depth32, kernel)[iv, iu] / np.maximum(cv2.erode(depth32, kernel)[iv, iu], 1e-6)
        keep = np.isfinite(z) & (z > 0.05) & (z < self.max_depth_m) & (ratio < 1.0 + self.max_depth_jump)
        xyz_cam = self.camera.backproject(uv[keep], z[keep])
        self._prev_uv = np.ascontiguousarray(uv[keep], dtype=np.float32)
        self._prev_xyz_world = xyz_cam @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]

    def trajectory(self) -> Trajectory:
        """All poses estimated so far."""
        return Trajectory(np.asarray(self._stamps), np.stack(self._poses))
