"""Settings of the tracking core (:class:`~mono_metric.odometry.Odometry`)."""
from __future__ import annotations

from dataclasses import dataclass

from mono_metric.errors import InputError
from mono_metric.validation import check_choice, check_range


@dataclass
class TrackingConfig:
    """Frame-to-frame tracking and PnP pose.

    Attributes:
        max_features: corners detected per frame.
        min_distance_px: minimum spacing between corners.
        klt_window_px: Lucas-Kanade window size.
        klt_refine_window_px: when > 0, Lucas-Kanade tracks are refined at full resolution with
            this smaller window where the refinement passes its forward-backward check (mostly slowly
            moving tracks; see :class:`~mono_metric.tracking.features.KltFrontend`; 0: off).
        ransac_reproj_px: PnP RANSAC inlier threshold.
        min_inliers: fewer PnP inliers than this marks the frame lost (constant-velocity guess kept).
        pnp_solver: minimal solver inside PnP-RANSAC: 'iterative' (OpenCV's iterative solver on 5-point
            samples) or 'ap3p' (4-point samples, cheaper where many RANSAC iterations run: KITTI with the
            embedded depth, pose 18 -> 11 ms per frame, same rotation; on the synthetic hand-held sweep it keeps
            worse inliers, seed 12 ATE 3.08 -> 3.60 cm, so it is not the default).
        refine: pose refinement on the RANSAC inliers: 'opencv' (plain LM, fast) or 'pypose'
            (LM with a Huber kernel of ``ransac_reproj_px``; about 0.2 s per frame on 2 cores).
        keyframe_inlier_ratio: a new keyframe (and a depth prediction) when the PnP inliers fall
            below this fraction of the keyframe's 3D corners...
        keyframe_min_inliers: ...or below this count...
        keyframe_distance_ratio: ...or the camera moved farther than this fraction of the keyframe's
            median corner depth...
        keyframe_rotation_deg: ...or turned more than this since the keyframe.
        max_step_depth_ratio: a frame-to-frame step longer than this fraction of the keyframe's
            median depth is implausible: the frame is marked lost.
        frontend: 'klt' (corners + Lucas-Kanade, fast on a CPU), 'sift' (Kornia SIFT matched to the
            keyframe; robust to large motion, seconds per frame on a 2-core CPU) or 'disk' (Kornia's
            learned DISK features from ``feature_weights``, matched the same way).
        sift_ratio: ratio-test threshold of descriptor matching (SIFT and DISK).
        feature_weights: weights file of a learned front-end (DISK).
        matcher: how SIFT/DISK descriptors are matched: 'nn' (mutual nearest neighbours + ratio test)
            or 'lightglue' (Kornia's LightGlue from ``matcher_weights``, trained for that front-end).
        matcher_weights: LightGlue checkpoint file.
        lightglue_threshold: smallest LightGlue match confidence kept.
        device: torch device of the SIFT front-end.
        local_ba: refine each new keyframe with a local bundle adjustment (Levenberg-Marquardt) over the last
            ``ba_window`` keyframes: poses, landmark depths, network depth as a prior.
        ba_window, ba_landmarks, ba_steps: window size, landmarks per keyframe, LM iterations.
        ba_depth_sigma: network depth noise (log ratio) weighting the depth priors.
        ba_huber: Huber threshold of the BA on the weighted residuals (a reprojection pixel pair counts as
            one residual); 0: plain least squares.
        ba_multiview: a new keyframe keeps the previous keyframe's tracked corners (klt front-end), so a
            landmark is observed in every window keyframe that still tracks it: the BA then ties the scale
            of consecutive keyframe steps together instead of taking each from two depth maps.
        ba_fixed_keyframes: oldest window keyframes held fixed in the BA; 2 also holds the distance
            between them, so the window inherits the scale of the keyframes before it.
        ba_depth_every_n_frames: also compute depth on a frame that is not a keyframe when this many frames
            passed since the last depth (0: only keyframes); the tracked landmarks' depths there become
            more priors in the BA (more network calls, less depth noise per keyframe).
        icp_refine: refine each new keyframe's pose by point-to-plane ICP (Open3D) of its depth against
            the previous keyframe's, starting from the PnP pose; kept when the ICP fitness is at least
            ``icp_min_fitness``.
        icp_voxel_m, icp_max_corr_m: down-sampling voxel and largest point-pair distance of that ICP.
        icp_min_fitness: smallest fraction of the new keyframe's points paired by ICP to accept it.
        pose: 'pnp' (PnP-RANSAC + LM) or 'hybrid': the PnP pose's rotation replaced by the five-point
            essential matrix's of the keyframe-to-frame tracks (depth-free) where their rotation-compensated
            median parallax is at least ``essential_min_parallax_px``, the translation then fitted to the
            metric points with that rotation fixed (see :mod:`mono_metric.tracking.essential`).
        essential_threshold_px: RANSAC threshold of the essential matrix.
        essential_min_parallax_px: smallest parallax for the essential matrix (else PnP alone).
        hybrid_max_pnp_ratio: the essential matrix is used only where the PnP inliers are fewer than
            this fraction of its inliers (the depth disagrees with the tracks; else PnP alone).
        hybrid_max_rotation_diff_deg: an essential-matrix rotation farther than this from the PnP one is
            taken for a five-point failure (PnP alone).
        hybrid_translation: 'full' (3-D translation fitted with the rotation fixed) or 'scale' (the
            essential matrix's direction, only its length fitted).
        dense_refine: refine every frame's pose photometrically against its keyframe (image + depth,
            coarse to fine, Huber weights, affine brightness; :mod:`mono_metric.tracking.dense`), kept where
            it lowers the photometric cost and moves the pose less than ``dense_max_change_m`` and
            ``dense_max_change_deg``.
        dense_levels, dense_finest_level: pyramid levels (each halves the size) and the finest one used
            (0: full resolution).
        dense_points: keyframe pixels per level; dense_iterations: Gauss-Newton steps per level;
            dense_huber: Huber threshold on the intensity residual (0-255).
        sync_depth_time: where the loader gives the depth image's own time stamp (TUM: the Kinect's depth
            is up to ~17 ms off its colour image), move the depth to the colour image's instant with the
            current motion estimate before it is used (:func:`mono_metric.geometry.warp_depth`).
        rolling_shutter_ms: the camera's readout time from the first to the last row (0: global shutter, the
            default). Keyframe corners are moved to the middle row's instant and every pose is refined with a
            rolling-shutter projection (:mod:`mono_metric.tracking.rolling`); local BA and the photometric
            refinement still model a global shutter.
    """

    max_features: int = 800
    min_distance_px: int = 10
    klt_window_px: int = 21
    klt_refine_window_px: int = 0
    ransac_reproj_px: float = 1.5
    min_inliers: int = 25
    refine: str = "opencv"
    pnp_solver: str = "iterative"
    keyframe_inlier_ratio: float = 0.5
    keyframe_min_inliers: int = 80
    keyframe_distance_ratio: float = 0.15
    keyframe_rotation_deg: float = 10.0
    max_step_depth_ratio: float = 1.0
    frontend: str = "klt"
    sift_ratio: float = 0.85
    feature_weights: str | None = None
    matcher: str = "nn"
    matcher_weights: str | None = None
    lightglue_threshold: float = 0.1
    device: str = "cpu"
    local_ba: bool = False
    ba_window: int = 4
    ba_landmarks: int = 40
    ba_steps: int = 3
    ba_depth_sigma: float = 0.1
    ba_huber: float = 0.0
    ba_multiview: bool = False
    ba_fixed_keyframes: int = 1
    ba_depth_every_n_frames: int = 0
    icp_refine: bool = False
    icp_voxel_m: float = 0.05
    icp_max_corr_m: float = 0.15
    icp_min_fitness: float = 0.3
    pose: str = "pnp"
    essential_threshold_px: float = 1.0
    essential_min_parallax_px: float = 5.0
    hybrid_max_pnp_ratio: float = 0.6
    hybrid_max_rotation_diff_deg: float = 2.0
    hybrid_translation: str = "full"
    dense_refine: bool = False
    dense_levels: int = 3
    dense_finest_level: int = 1
    dense_points: int = 3000
    dense_iterations: int = 8
    dense_huber: float = 10.0
    dense_max_change_m: float = 0.05
    dense_max_change_deg: float = 2.0
    sync_depth_time: bool = True
    rolling_shutter_ms: float = 0.0

    def validate(self) -> None:
        check_choice("tracking.refine", self.refine, ("opencv", "pypose"))
        check_choice("tracking.pnp_solver", self.pnp_solver, ("iterative", "ap3p"))
        check_range("tracking.max_features", self.max_features, 20, 100000)
        check_range("tracking.min_distance_px", self.min_distance_px, 1, 200)
        check_range("tracking.klt_window_px", self.klt_window_px, 5, 101)
        if self.klt_refine_window_px:
            check_range("tracking.klt_refine_window_px", self.klt_refine_window_px, 3, self.klt_window_px)
        check_range("tracking.ransac_reproj_px", self.ransac_reproj_px, 0.1, 50.0)
        check_range("tracking.min_inliers", self.min_inliers, 6, 100000)
        check_range("tracking.rolling_shutter_ms", self.rolling_shutter_ms, 0.0, 1000.0)
        check_range("tracking.keyframe_inlier_ratio", self.keyframe_inlier_ratio, 0.0, 1.0)
        check_range("tracking.keyframe_min_inliers", self.keyframe_min_inliers, 0, 100000)
        check_range("tracking.keyframe_distance_ratio", self.keyframe_distance_ratio, 0.0, 10.0)
        check_range("tracking.keyframe_rotation_deg", self.keyframe_rotation_deg, 0.0, 180.0)
        check_range("tracking.max_step_depth_ratio", self.max_step_depth_ratio, 0.01, 1000.0)
        check_choice("tracking.frontend", self.frontend, ("klt", "sift", "disk"))
        check_range("tracking.sift_ratio", self.sift_ratio, 0.1, 1.0)
        check_choice("tracking.matcher", self.matcher, ("nn", "lightglue"))
        if self.matcher == "lightglue" and self.frontend == "klt":
            raise InputError("tracking.matcher 'lightglue' matches descriptors: set tracking.frontend to 'sift' or "
                              "'disk' (the 'klt' front-end tracks corners without descriptors)")
        check_range("tracking.lightglue_threshold", self.lightglue_threshold, 0.0, 1.0)
        check_range("tracking.ba_window", self.ba_window, 2, 100)
        check_range("tracking.ba_landmarks", self.ba_landmarks, 6, 100000)
        check_range("tracking.ba_steps", self.ba_steps, 1, 100)
        check_range("tracking.ba_depth_sigma", self.ba_depth_sigma, 1e-4, 10.0)
        check_range("tracking.ba_huber", self.ba_huber, 0.0, 1000.0)
        check_range("tracking.ba_fixed_keyframes", self.ba_fixed_keyframes, 1, self.ba_window - 1)
        if (self.ba_multiview or self.ba_depth_every_n_frames) and not self.local_ba:
            raise InputError("tracking.ba_multiview and tracking.ba_depth_every_n_frames feed the local bundle "
                             "adjustment: set tracking.local_ba: true, or leave them at false / 0")
        if self.ba_multiview and self.frontend != "klt":
            raise InputError("tracking.ba_multiview carries Lucas-Kanade tracks into the next keyframe: it needs "
                             "tracking.frontend 'klt'")
        check_range("tracking.ba_depth_every_n_frames", self.ba_depth_every_n_frames, 0, 1000)
        check_choice("tracking.pose", self.pose, ("pnp", "hybrid"))
        check_range("tracking.essential_threshold_px", self.essential_threshold_px, 0.05, 50.0)
        check_range("tracking.essential_min_parallax_px", self.essential_min_parallax_px, 0.0, 1000.0)
        check_range("tracking.hybrid_max_pnp_ratio", self.hybrid_max_pnp_ratio, 0.0, 10.0)
        check_range("tracking.hybrid_max_rotation_diff_deg", self.hybrid_max_rotation_diff_deg, 0.0, 180.0)
        check_range("tracking.dense_levels", self.dense_levels, 1, 8)
        check_range("tracking.dense_finest_level", self.dense_finest_level, 0, self.dense_levels - 1)
        check_range("tracking.dense_points", self.dense_points, 50, 1000000)
        check_range("tracking.dense_iterations", self.dense_iterations, 1, 100)
        check_range("tracking.dense_huber", self.dense_huber, 0.1, 255.0)
        check_range("tracking.dense_max_change_m", self.dense_max_change_m, 0.0, 1000.0)
        check_range("tracking.dense_max_change_deg", self.dense_max_change_deg, 0.0, 180.0)
        check_choice("tracking.hybrid_translation", self.hybrid_translation, ("full", "scale"))
        check_range("tracking.icp_voxel_m", self.icp_voxel_m, 1e-3, 10.0)
        check_range("tracking.icp_max_corr_m", self.icp_max_corr_m, 1e-3, 100.0)
        check_range("tracking.icp_min_fitness", self.icp_min_fitness, 0.0, 1.0)
