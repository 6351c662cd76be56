"""Metric monocular odometry core: ``Odometry.track(image, timestamp) -> TrackResult``.

Keyframe-based: a keyframe carries corners lifted to 3D with its *metric* depth. Every frame finds
those corners again (pyramidal Lucas-Kanade, or Kornia SIFT matching: :mod:`mono_metric.tracking.features`)
and solves its pose by PnP-RANSAC against the keyframe's 3D points, refined by Levenberg-Marquardt
(OpenCV, or robust with pypose); optionally (``pose: hybrid``) the rotation comes from the five-point
essential matrix where the depth explains the tracks badly (:mod:`mono_metric.tracking.essential`), and
(``dense_refine``) the pose is refined photometrically against the keyframe
(:mod:`mono_metric.tracking.dense`). Depth is needed only when a new keyframe is made (on low inlier
count, distance relative to the scene depth, rotation, or tracking loss), so the depth network runs on a
fraction of the frames (with the local bundle adjustment, optionally also every few frames, as more depth
priors on the keyframe's landmarks). Metric depth fixes the scale: the trajectory is in metres without
scale alignment. No file I/O here.
"""
from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np
import open3d.core as o3c

from mono_metric import odometry_state
from mono_metric.camera import Camera
from mono_metric.backend import Backend
from mono_metric.config import BackendConfig, TrackingConfig
from mono_metric.errors import InputError
from mono_metric.tracking.features import make_frontend, merge_corners, take_rows
from mono_metric.geometry import (depth_at_image_time, depth_at_pixels, inv_se3, median_filtered_depth, nearest_pixels,
                                   repose_points, rotation_angle_rad)
from mono_metric.tracking import refine_pose_lm, refine_pose_opencv, solve_pnp_ransac
from mono_metric.tracking.dense import DenseReference, refine_against_keyframe
from mono_metric.tracking.essential import hybrid_pose
from mono_metric.tracking.icp import DepthCloud, refine_pose_icp
from mono_metric.tracking.rolling import body_twist_per_s, derolled_points, rolling_pose
from mono_metric.mapping.local_ba import KeyframeWindow, keyframe_depth_scales, local_bundle_adjustment
from mono_metric.mapping.map import Map
from mono_metric.types import Keyframe, TrackResult, Trajectory

DepthInput = np.ndarray | Callable[[], np.ndarray] | None
TIMED = odometry_state.TIMED  # Odometry.timings_s keys


class Odometry:
    """Keyframe-based metric visual odometry.

    Args:
        config: tracking and keyframe settings.
        camera: intrinsics of every image passed to :meth:`track`.
        depth_model: callable ``(image, camera) -> depth_m`` used for keyframes when ``track`` gets no
            depth (e.g. ``lambda im, cam: model.predict(im, cam).depth_m``); may be None when depth is
            always passed.
        max_depth_m: depths beyond this are not used for 3D points.
        backend: loop closure and relocalisation settings (None or disabled: odometry only).
    """

    max_depth_jump = 0.08  # relative depth spread tolerated around a corner

    def __init__(self, config: TrackingConfig, camera: Camera,
                 depth_model: Callable[[np.ndarray, Camera], np.ndarray] | None = None, max_depth_m: float = 80.0,
                 backend: BackendConfig | None = None):
        self.config, self.camera, self.max_depth_m = config, camera, max_depth_m
        self.depth_model = depth_model
        self._K = camera.K
        self._prev_gray: np.ndarray | None = None
        self._uv = np.zeros((0, 2), np.float32)  # keyframe corners as seen in the previous frame
        self._xyz = np.zeros((0, 3))  # their world points
        self._desc = None  # their descriptor rows (SIFT/DISK front-ends)
        self._lm = np.zeros(0, int)  # their index among the keyframe's landmarks
        self.window = KeyframeWindow(config.ba_window, config.ba_landmarks) if config.local_ba else None
        self.frontend = make_frontend(config)
        self._kf: Keyframe | None = None
        self.map = Map()  # keyframes, frames anchored to them, pose graph
        self.backend = Backend(backend, camera, self.map, max_depth_m) if backend is not None and backend.enabled else None
        self._poses: list[np.ndarray] = []  # online estimates (as returned by track)
        self._lost = False  # the previous frame was lost
        self._kf_uv, self._kf_depth = np.zeros((0, 2), np.float32), np.zeros(0)  # the keyframe's corners
        self._kf_cloud: DepthCloud | None = None  # the newest keyframe's depth, for ICP refinement
        self.timings_s = dict.fromkeys(TIMED, 0.0)  # cumulative seconds per stage
        self._kf_parent = np.zeros(0, int)  # per keyframe corner: the previous keyframe's landmark it continues, or -1
        self._last_depth_frame = 0  # the last frame whose depth was computed
        self._dense_ref: DenseReference | None = None  # the keyframe's pixels for photometric refinement

    def track(self, image: np.ndarray, timestamp: float | None = None, depth_m: DepthInput = None,
              depth_timestamp: float | None = None) -> TrackResult:
        """Estimate the pose of ``image``.

        Args:
            image: (H, W, 3) uint8 RGB of the camera's size.
            timestamp: seconds; defaults to the frame count.
            depth_m: metric depth of this image, (H, W) with 0 = invalid: an array, a zero-argument
                callable evaluated only if this frame needs depth (a keyframe, or a frame for the BA's
                depth priors: ``ba_depth_every_n_frames``), or None to run ``depth_model`` then.
            depth_timestamp: seconds at which a given ``depth_m`` was taken, when not with the image (a
                sensor's depth stream); with ``sync_depth_time`` it is moved to the image's pose.

        Returns:
            The :class:`TrackResult`; the pose is also appended to :meth:`trajectory`.
        """
        self.camera.check_image(image)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        timestamp = float(len(self._poses) if timestamp is None else timestamp)
        if self._prev_gray is None:
            result = TrackResult(np.eye(4), "init", 0, 0)
        else:
            result = self._solve(gray, timestamp)
            # Lost, or the first frame tracked again after a loss (its tracks reach back across the gap: after a
            # jump a few wrong ones can pass PnP): placed against the map's keyframes when they match.
            if result.status in ("lost", "reinitialised") and self.backend is not None and self.backend.config.relocalise:
                self._relocalise(gray, result)
        tracked_ok = result.status in ("ok", "reinitialised")  # 'relocalised' makes a keyframe there
        keyframe_needed = not tracked_ok or self._needs_keyframe(result)
        every = self.config.ba_depth_every_n_frames  # depth between keyframes for the BA's priors
        if (not keyframe_needed and self.window is not None and every
                and len(self._poses) - self._last_depth_frame >= every):
            self._add_depth_priors(result, self._depth(image, depth_m, result, timestamp, depth_timestamp))
        if keyframe_needed:
            depth = self._depth(image, depth_m, result, timestamp, depth_timestamp)
            prev_tracks = (self._lm, self._uv) if tracked_ok else None
            carry = prev_tracks if (self.config.ba_multiview and self._desc is None) else None
            depth_filtered = self._make_keyframe(gray, depth, result.T_world_cam, len(self._poses), timestamp, carry)
            self._last_depth_frame = len(self._poses)
            if depth_filtered is not None:
                result.keyframe, result.depth_m = True, depth
                refine = tracked_ok and self._kf_cloud is not None
                tracked_ok = True
                if self.config.icp_refine:
                    self._icp_refine(result, image, depth_filtered, refine)
                if self.window is not None:
                    self._bundle_adjust(result, prev_tracks, depth_filtered)
                if self.backend is not None:
                    self._close_loops(result, gray, depth_filtered)
        self._lost = result.status == "lost" or (self._lost and result.status == "init")
        if tracked_ok:
            self._prev_gray = gray
        # else: a degenerate frame (black, textureless, no depth): keep tracking from the last good frame.
        self._poses.append(result.T_world_cam)
        self.map.add_frame(timestamp, result.T_world_cam)
        return result

    # ----------------------------------------------------------------- internals
    def _depth(self, image: np.ndarray, depth_m: DepthInput, result: TrackResult, timestamp: float,
               depth_timestamp: float | None) -> np.ndarray:
        if callable(depth_m):
            depth_m = depth_m()
        elif depth_m is None:
            if self.depth_model is None:
                raise InputError("Odometry.track got no depth and has no depth_model; pass depth_m or "
                                 "build Odometry(config, camera, depth_model=...)")
            depth_m = self.depth_model(image, self.camera)
        depth_m = np.asarray(depth_m)
        if depth_m.shape != image.shape[:2]:
            raise InputError(f"depth map shape {depth_m.shape} does not match the image {image.shape[:2]}")
        if (depth_timestamp is not None and self.config.sync_depth_time and self._poses and not self._lost
                and result.status in ("ok", "reinitialised") and timestamp > self.map.frame_stamps[-1]):
            depth_m = depth_at_image_time(depth_m, self._K, self._poses[-1], result.T_world_cam,
                                          self.map.frame_stamps[-1], timestamp, float(depth_timestamp))
        return depth_m

    def _solve(self, gray: np.ndarray, timestamp: float) -> TrackResult:
        """Pose of ``gray`` against the keyframe points; commits the tracks only on success."""
        cfg = self.config
        guess = self._constant_velocity()
        if len(self._uv) < cfg.min_inliers:
            return TrackResult(guess, "lost", 0, 0)
        t0 = time.perf_counter()
        uv, good = self.frontend.find(self._prev_gray, gray, self._uv, self._desc)
        t1 = time.perf_counter()
        self.timings_s["features"] += t1 - t0
        uv, xyz, desc = uv[good], self._xyz[good], take_rows(self._desc, good)
        tracked = int(good.sum())
        if tracked < cfg.min_inliers:
            return TrackResult(guess, "lost", 0, tracked)
        img = uv.astype(np.float64)
        pnp = solve_pnp_ransac(xyz, img, self._K, cfg.ransac_reproj_px, cfg.min_inliers, inv_se3(guess),
                               solver=cfg.pnp_solver)
        if not pnp.ok:
            return TrackResult(guess, "lost", len(pnp.inliers), tracked)
        inl = pnp.inliers
        if cfg.refine == "pypose":
            T_cam_world = refine_pose_lm(xyz[inl], img[inl], self._K, pnp.T_cam_world, huber_px=cfg.ransac_reproj_px)
        else:
            T_cam_world = refine_pose_opencv(xyz[inl], img[inl], self._K, pnp.T_cam_world)
        if cfg.rolling_shutter_ms > 0 and timestamp > self.map.frame_stamps[-1]:  # velocity follows the pose
            T_cam_world, inl = rolling_pose(xyz, img, inl, self._K, T_cam_world, self._poses[-1],
                                            timestamp - self.map.frame_stamps[-1], self.camera.height,
                                            cfg.rolling_shutter_ms / 1e3, cfg.ransac_reproj_px)
        if cfg.pose == "hybrid":  # rotation from the essential matrix where depth explains the tracks badly
            T_cam_world, _ = hybrid_pose(T_cam_world, self._kf.T_world_cam, xyz, self._kf_uv[self._lm[good]], img,
                                         self._K, len(inl), cfg.essential_threshold_px, cfg.essential_min_parallax_px,
                                         cfg.hybrid_max_pnp_ratio, cfg.min_inliers, cfg.hybrid_translation,
                                         cfg.ransac_reproj_px, cfg.hybrid_max_rotation_diff_deg)
        if cfg.dense_refine and self._dense_ref is not None:  # photometric alignment to the keyframe
            T_cam_world = refine_against_keyframe(self._dense_ref, gray, T_cam_world, self._kf.T_world_cam, cfg,
                                                  self._kf.depth_scale)
        T_world_cam = inv_se3(T_cam_world)
        self.timings_s["pose"] += time.perf_counter() - t1
        if self._implausible(T_world_cam):
            return TrackResult(guess, "lost", len(inl), tracked)
        self._uv, self._xyz, self._desc = uv[inl], xyz[inl], take_rows(desc, inl)
        self._lm = self._lm[good][inl]
        status = "reinitialised" if self._lost else "ok"
        return TrackResult(T_world_cam, status, len(inl), tracked)

    def _implausible(self, T_world_cam: np.ndarray) -> bool:
        """A jump far beyond the keyframe's scene depth (a PnP failure that passed RANSAC)."""
        kf = self._kf
        if kf is None or kf.median_depth_m <= 0:
            return False
        step = np.linalg.norm(T_world_cam[:3, 3] - self._poses[-1][:3, 3])
        return step > self.config.max_step_depth_ratio * kf.median_depth_m

    def _needs_keyframe(self, result: TrackResult) -> bool:
        cfg, kf = self.config, self._kf
        if kf is None or len(kf.xyz_world) == 0:
            return True
        if result.inliers < max(cfg.keyframe_min_inliers, cfg.keyframe_inlier_ratio * len(kf.xyz_world)):
            return True
        T_kf_cam = inv_se3(kf.T_world_cam) @ result.T_world_cam
        if np.linalg.norm(T_kf_cam[:3, 3]) > cfg.keyframe_distance_ratio * kf.median_depth_m:
            return True
        return np.degrees(rotation_angle_rad(T_kf_cam[:3, :3])) > cfg.keyframe_rotation_deg

    def _constant_velocity(self) -> np.ndarray:
        if len(self._poses) < 2:
            return self._poses[-1].copy()
        return self._poses[-1] @ inv_se3(self._poses[-2]) @ self._poses[-1]

    def _make_keyframe(self, gray: np.ndarray, depth_m: np.ndarray, T_world_cam: np.ndarray, index: int,
                       timestamp: float, carry: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
        """Lift corners of ``gray`` with ``depth_m``; returns the median-filtered depth, or None (state
        unchanged) when too few corners have depth. ``carry``: (landmark ids, (N, 2) pixels here) of the
        previous keyframe's tracked corners, kept as corners of this one (``ba_multiview``)."""
        cfg = self.config
        uv, desc = self.frontend.detect(gray)
        parent = np.full(len(uv), -1)
        if carry is not None and len(carry[0]):  # the previous keyframe's tracked corners continue here
            uv, n_carried = merge_corners(carry[1], uv, gray.shape, cfg.min_distance_px, cfg.max_features)
            parent = np.concatenate([carry[0], np.full(len(uv) - n_carried, -1)])
        depth32 = median_filtered_depth(depth_m)
        z, keep = self._usable_depth(depth32, uv)
        if keep.sum() < cfg.min_inliers:
            return None
        T = T_world_cam
        xyz_cam = self.camera.backproject(uv[keep], z[keep])
        if cfg.rolling_shutter_ms > 0 and self._poses and timestamp > self.map.frame_stamps[-1]:
            twist = body_twist_per_s(self._poses[-1], T, timestamp - self.map.frame_stamps[-1])
            xyz_cam = derolled_points(xyz_cam, uv[keep][:, 1], twist, self.camera.height,
                                      cfg.rolling_shutter_ms / 1e3)  # in the middle row's camera
        self._uv = np.ascontiguousarray(uv[keep], dtype=np.float32)
        self._xyz = xyz_cam @ T[:3, :3].T + T[:3, 3]
        self._desc = take_rows(desc, keep)
        self._lm = np.arange(int(keep.sum()))
        self._kf = Keyframe(index, timestamp, T.copy(), self._xyz.copy(), float(np.median(z[keep])))
        self.map.add_keyframe(self._kf)
        self._kf_uv = (self._uv.copy() if cfg.rolling_shutter_ms == 0 else  # where a global shutter sees them
                       self.camera.project(xyz_cam)[0].astype(np.float32))
        self._kf_depth = xyz_cam[:, 2]
        self._kf_parent = parent[keep]
        self._dense_ref = (DenseReference.build(gray, depth32, self._K, cfg.dense_levels, cfg.dense_points,
                                                max_depth_jump=self.max_depth_jump, max_depth_m=self.max_depth_m)
                           if cfg.dense_refine else None)
        return depth32

    def _usable_depth(self, depth32: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) depth (m) of median-filtered ``depth32`` at (N, 2) corners ``uv``, and where it can be used:
        in (0.05 m, max_depth_m) and consistent around the corner (not on a depth edge)."""
        z, consistent = depth_at_pixels(depth32, uv, self.max_depth_jump)
        return z, (z > 0.05) & (z < self.max_depth_m) & consistent

    def _bundle_adjust(self, result: TrackResult, prev_tracks, depth32: np.ndarray) -> None:
        """Add the new keyframe to the window and refine the window; moves this keyframe and its points."""
        obs = None
        if prev_tracks is not None:
            lm, uv = prev_tracks
            obs = (lm, uv.astype(np.float64), depth32[nearest_pixels(uv, depth32.shape)].astype(np.float64))
        self.window.add(result.T_world_cam, self._kf_uv, self._kf_depth, obs, self._kf_parent)
        problem = self.window.problem()
        if problem is None:
            return
        cfg = self.config
        t0 = time.perf_counter()
        refined, depths = local_bundle_adjustment(problem, self._K, pixel_sigma=1.0, depth_sigma_log=cfg.ba_depth_sigma,
                                                  huber=cfg.ba_huber or None, steps=cfg.ba_steps,
                                                  n_fixed=cfg.ba_fixed_keyframes)
        scales = keyframe_depth_scales(problem, self._K, refined, depths)
        self.timings_s["ba"] += time.perf_counter() - t0
        self.window.set_poses(refined)
        first = len(self.map.keyframes) - len(refined)
        # Older keyframes: frames follow them (pose and depth scale).
        for kf, T, s in zip(self.map.keyframes[first:-1], refined[:-1], scales[:-1]):
            kf.xyz_world = repose_points(kf.xyz_world, kf.T_world_cam, T, s / kf.depth_scale)
            kf.T_world_cam, kf.depth_scale = T.copy(), float(s)
        self._move_keyframe(result, refined[-1], float(scales[-1]))
        self._kf.depth_scale = self._kf.tracked_scale = float(scales[-1])

    def _add_depth_priors(self, result: TrackResult, depth_m: np.ndarray) -> None:
        """Depth of a frame that is not a keyframe: each tracked landmark's depth here, carried back to the
        keyframe through the frame's pose, becomes one more prior on the landmark's depth in the BA."""
        self._last_depth_frame = len(self._poses)
        T_cam_world = inv_se3(result.T_world_cam)
        z_pred = self._xyz @ T_cam_world[2, :3] + T_cam_world[2, 3]  # (scaled) keyframe depth seen from here
        z_net, ok = self._usable_depth(median_filtered_depth(depth_m), self._uv)
        ok &= z_pred > 0.05
        if ok.sum() >= self.config.min_inliers:
            lm = self._lm[ok]
            log_depth = np.log(self._kf.depth_scale * self._kf_depth[lm]) + np.log(z_net[ok] / z_pred[ok])
            self.window.add_depth_prior(lm, log_depth)

    def _icp_refine(self, result: TrackResult, image: np.ndarray, depth32: np.ndarray, refine: bool) -> None:
        """Align the new keyframe's depth to the previous keyframe's (point-to-plane ICP) from the PnP pose."""
        cfg = self.config
        t0 = time.perf_counter()
        previous = self._kf_cloud
        self._kf_cloud = DepthCloud.from_depth(self.camera, image, depth32, result.T_world_cam, cfg.icp_voxel_m,
                                               self.max_depth_m)
        if refine:
            T, fitness, _ = refine_pose_icp(self._kf_cloud, previous, result.T_world_cam, cfg.icp_max_corr_m)
            if fitness >= cfg.icp_min_fitness:
                self._move_keyframe(result, T)
        self.timings_s["icp"] += time.perf_counter() - t0

    def _move_keyframe(self, result: TrackResult, T_new: np.ndarray, scale: float = 1.0) -> None:
        """Give the newest keyframe (its 3D corners and, with ICP, its depth cloud) the pose ``T_new``;
        its corners' depths are multiplied by ``scale``."""
        T_old = result.T_world_cam
        self._xyz = repose_points(self._xyz, T_old, T_new, scale)
        if self._kf_cloud is not None:  # built for this keyframe by _icp_refine
            self._kf_cloud.cloud.transform(o3c.Tensor((T_new @ inv_se3(T_old)).astype(np.float32)))
        result.T_world_cam = T_new
        self._kf.T_world_cam, self._kf.xyz_world = T_new.copy(), self._xyz.copy()

    # ----------------------------------------------------------------- loop closure, relocalisation
    def _close_loops(self, result: TrackResult, gray: np.ndarray, depth32: np.ndarray) -> None:
        """Hand the new keyframe to the back-end; after a closure the tracking state follows the corrected map."""
        T_before, scale_before = result.T_world_cam, self._kf.depth_scale
        closure = self.backend.on_keyframe(len(self.map.keyframes) - 1, gray, depth32, lost=result.status == "lost")
        if closure is None:
            return
        result.loop = closure
        # A Sim(3) graph may rescale this keyframe: the frames tracked from now on see its rescaled points.
        self._kf.tracked_scale *= self._kf.depth_scale / scale_before
        self._follow_map(T_before, self._kf.depth_scale / scale_before)
        result.T_world_cam = self._kf.T_world_cam.copy()

    def _follow_map(self, T_kf_before: np.ndarray, scale: float = 1.0) -> None:
        """The back-end moved (and, with a Sim(3) graph, rescaled by ``scale``) the keyframes: the tracking state
        (the newest keyframe's points and cloud, the velocity model, the BA window) follows the newest
        keyframe's correction."""
        self._xyz = self._kf.xyz_world.copy()
        correction = self._kf.T_world_cam @ inv_se3(T_kf_before)
        self._poses = [correction @ T for T in self._poses]
        if self._kf_cloud is not None:
            similarity = self._kf.T_world_cam @ np.diag([scale, scale, scale, 1.0]) @ inv_se3(T_kf_before)
            self._kf_cloud.cloud.transform(o3c.Tensor(similarity.astype(np.float32)))
        if self.window is not None and self.window.records:
            self.window.set_poses(self.map.poses()[-len(self.window.records):])

    def finish(self) -> bool:
        """End of the stream: a last pose-graph optimisation over every verified loop (True: keyframes moved;
        :meth:`trajectory` then carries it). Tracking may continue afterwards."""
        T_before = self._kf.T_world_cam.copy() if self._kf is not None else None
        scale_before = self._kf.depth_scale if self._kf is not None else 1.0
        if self.backend is None or not self.backend.finish():
            return False
        self._follow_map(T_before, self._kf.depth_scale / scale_before)
        return True

    def _relocalise(self, gray: np.ndarray, result: TrackResult) -> None:
        """A lost frame matched against the map's keyframes: on success it gets that pose ('relocalised')."""
        found = self.backend.relocalise(gray)
        if found is not None:
            result.T_world_cam, result.inliers = found[0], found[1]
            result.status = "relocalised"

    # ----------------------------------------------------------------- resumable state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything :meth:`track` needs to continue, as plain arrays (:func:`mono_metric.odometry_state.state_dict`)."""
        return odometry_state.state_dict(self)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state_dict` (same config and camera)."""
        odometry_state.load_state_dict(self, state)

    # ----------------------------------------------------------------- results
    def trajectory(self) -> Trajectory:
        """All poses estimated so far, each frame placed relative to its reference keyframe's *current* pose.

        Without local bundle adjustment or loop closure these are the poses :meth:`track` returned. With
        them, keyframes are moved after :meth:`track` returned them; every frame follows its keyframe
        (the ORB-SLAM convention), so the trajectory carries those corrections (:meth:`Map.trajectory`).
        """
        return self.map.trajectory()

    @property
    def tracked_pixels(self) -> np.ndarray:
        """(N, 2) pixels in the last tracked frame of the keyframe corners found there (PnP inliers; on a new
        keyframe its corners). Not updated by a lost frame."""
        return self._uv.astype(np.float64)

    def keyframes(self) -> list[Keyframe]:
        """The keyframes made so far (index, timestamp, pose, 3D corners)."""
        return list(self.map.keyframes)

