"""Typed configuration: dataclass sections loaded from YAML, validated, saved next to results.

Unknown keys, wrong types and out-of-range values are :class:`InputError`s naming the key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mono_metric.errors import InputError, read_yaml_mapping
from mono_metric.validation import build_section, check_choice, check_pair, check_range


@dataclass
class DepthConfig:
    """Where per-frame metric depth comes from.

    Attributes:
        source: 'gt' (ground-truth depth of the sequence), 'gt_degraded' (GT with Metric3D-like
            error: a smooth low-frequency scale field, multiplicative noise and holes), or a Metric3D
            model name (e.g. 'metric3d_vit_small') run on every frame.
        degrade_abs_rel: target mean relative error of 'gt_degraded'.
        degrade_seed: noise draw of 'gt_degraded' (each seed gives other scale fields, noise and holes).
        max_depth_m: depth beyond this is ignored.
        weights: checkpoint file of the model (None: the cached official file).
        device: where the model runs ('cpu', 'cuda', 'cuda:1', ...).
        input_hw: network input [H, W] (None: the model's official size).
        min_confidence: network depth whose confidence is below this is dropped (0) before tracking
            and fusion; None keeps all (the embedded model's confidence is not trained).
    """

    source: str = "gt"
    degrade_abs_rel: float = 0.06
    degrade_seed: int = 0
    max_depth_m: float = 80.0
    weights: str | None = None
    device: str = "cpu"
    input_hw: list | None = None
    min_confidence: float | None = None

    def validate(self) -> None:
        from mono_metric.depth.metric3d.model import MODEL_SPECS

        check_choice("depth.source", self.source, ("gt", "gt_degraded", *MODEL_SPECS))
        check_range("depth.degrade_abs_rel", self.degrade_abs_rel, 0.0, 0.5)
        check_range("depth.degrade_seed", self.degrade_seed, 0, 2**31 - 1)
        check_range("depth.max_depth_m", self.max_depth_m, 0.1, 1000.0)
        if self.min_confidence is not None:
            check_range("depth.min_confidence", self.min_confidence, -1e6, 1e6)
        if self.input_hw is not None:
            check_pair("depth.input_hw", self.input_hw, 1, 100000, integer=True, ordered=False)


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


@dataclass
class BackendConfig:
    """The SLAM back-end (:mod:`mono_metric.backend`): loop closure and relocalisation over the Map.

    Attributes:
        loop_closure: detect loops on each new keyframe, verify them and optimise the pose graph.
        relocalise: place a lost frame by matching it against the map's keyframes.
        descriptor: global place descriptor: 'bow' (bag of ORB binary words, vocabulary built online
            from the first keyframes) or 'thumbnail' (pooled 32x24 zero-mean grey image).
        orb_features: ORB keypoints per keyframe for verification.
        exclude_recent: keyframes this recent are never loop candidates.
        candidates: best-scoring keyframes verified per new keyframe.
        proximity_ratio: metric-pose prior: a candidate must lie within ``proximity_min_m`` plus this
            fraction of the path driven between the two keyframes (the drift bound) of the new one.
        proximity_min_m: see ``proximity_ratio``.
        max_correction_ratio: a loop may move the new keyframe by at most this fraction of the path between
            the two keyframes (plus two ICP voxels): the odometry's drift bound (~1 % measured, 3 % allowed).
        min_inliers: PnP-RANSAC inliers needed to accept a loop or a relocalisation.
        min_inlier_ratio: ... and this fraction of the descriptor matches.
        reproj_px: PnP-RANSAC inlier threshold.
        max_depth_error: consistency test: median relative difference between the new keyframe's own depth
            and the depth the registration predicts at the inliers.
        icp_voxel_ratio: ICP refinement voxel as a fraction of the keyframe's median depth.
        icp_min_fitness: ICP result kept when at least this fraction of points pair (else the PnP pose).
        loop_icp: refine a verified loop's PnP pose by ICP of the two keyframes' depth (False: the PnP pose is
            the loop measurement; the information matrix is computed at it either way).
        line_process: loop-edge prune threshold: Open3D's line-process weight (``open3d``) or the Cauchy
            kernel's weight (``pypose_sim3``) below which a loop is switched off (a wrong loop).
        pose_graph: pose-graph library and model: 'open3d' (SE(3), Open3D global optimisation with a line
            process) or 'pypose_sim3' (Sim(3): a scale per keyframe, pypose Levenberg-Marquardt, Cauchy kernel
            on the loops).
        scale_sigma: ``pypose_sim3``: standard deviation of an edge's log relative scale (how much two
            keyframes' metric depth may disagree in scale).
        relative_scale_sigma: ``pypose_sim3``: standard deviation (log) of the relative scale of consecutive
            keyframes measured on each new keyframe (the previous keyframe's points against its depth).
    """

    loop_closure: bool = False
    relocalise: bool = False
    descriptor: str = "bow"
    orb_features: int = 1000
    exclude_recent: int = 15
    candidates: int = 3
    proximity_ratio: float = 0.1
    proximity_min_m: float = 3.0
    max_correction_ratio: float = 0.03
    min_inliers: int = 40
    min_inlier_ratio: float = 0.25
    reproj_px: float = 3.0
    max_depth_error: float = 0.15
    icp_voxel_ratio: float = 0.02
    icp_min_fitness: float = 0.3
    loop_icp: bool = False
    line_process: float = 0.25
    pose_graph: str = "open3d"
    scale_sigma: float = 0.05
    relative_scale_sigma: float = 0.02

    @property
    def enabled(self) -> bool:
        return self.loop_closure or self.relocalise

    def validate(self) -> None:
        check_choice("backend.descriptor", self.descriptor, ("bow", "thumbnail"))
        check_choice("backend.pose_graph", self.pose_graph, ("open3d", "pypose_sim3"))
        check_range("backend.scale_sigma", self.scale_sigma, 1e-4, 1.0)
        check_range("backend.relative_scale_sigma", self.relative_scale_sigma, 1e-4, 1.0)
        check_range("backend.orb_features", self.orb_features, 50, 100000)
        check_range("backend.exclude_recent", self.exclude_recent, 1, 100000)
        check_range("backend.candidates", self.candidates, 1, 100)
        check_range("backend.proximity_ratio", self.proximity_ratio, 0.0, 10.0)
        check_range("backend.proximity_min_m", self.proximity_min_m, 0.0, 1e6)
        check_range("backend.max_correction_ratio", self.max_correction_ratio, 0.0, 10.0)
        check_range("backend.min_inliers", self.min_inliers, 6, 100000)
        check_range("backend.min_inlier_ratio", self.min_inlier_ratio, 0.0, 1.0)
        check_range("backend.reproj_px", self.reproj_px, 0.1, 50.0)
        check_range("backend.max_depth_error", self.max_depth_error, 0.0, 10.0)
        check_range("backend.icp_voxel_ratio", self.icp_voxel_ratio, 1e-4, 1.0)
        check_range("backend.icp_min_fitness", self.icp_min_fitness, 0.0, 1.0)
        check_range("backend.line_process", self.line_process, 0.0, 1.0)


@dataclass
class MappingConfig:
    """TSDF fusion of keyframe depth, and the quick-look point cloud.

    Attributes:
        enabled: build ``mesh.ply`` and ``cloud.ply``.
        voxel_size_m: TSDF voxel edge (e.g. 0.1 street, 0.02-0.05 room).
        trunc_voxels: TSDF truncation in voxels.
        max_depth_m: depth beyond this is not fused (e.g. 40 street, 5 room).
        weight_threshold: mesh extraction keeps voxels whose accumulated weight (one per fused frame)
            is above this; Open3D compares strictly, so 0.5 keeps surfaces seen once and 1.5 needs two.
        cloud_voxel_m: down-sampling voxel of ``cloud.ply``.
        device: 'cpu' or 'cuda[:N]' (needs an Open3D build with CUDA).
        depth_previews: keyframe depth previews written to ``depth/``.
    """

    enabled: bool = True
    voxel_size_m: float = 0.1
    trunc_voxels: float = 4.0
    max_depth_m: float = 40.0
    weight_threshold: float = 0.5
    cloud_voxel_m: float = 0.1
    device: str = "cpu"
    depth_previews: int = 4

    def validate(self) -> None:
        check_range("mapping.voxel_size_m", self.voxel_size_m, 0.001, 10.0)
        check_range("mapping.trunc_voxels", self.trunc_voxels, 1.0, 64.0)
        check_range("mapping.max_depth_m", self.max_depth_m, 0.1, 1000.0)
        check_range("mapping.weight_threshold", self.weight_threshold, 0.0, 1e6)
        check_range("mapping.cloud_voxel_m", self.cloud_voxel_m, 0.001, 10.0)
        check_range("mapping.depth_previews", self.depth_previews, 0, 100000)
        if self.device.partition(":")[0] not in ("cpu", "cuda"):
            raise InputError(f"config mapping.device={self.device!r} must be 'cpu' or 'cuda[:N]'")


@dataclass
class CameraConfig:
    """Intrinsics corrections applied to the frames before depth and tracking.

    Attributes:
        undistort: remap frames to the pinhole model with the loader's (or ``distortion``'s)
            coefficients, once per frame with precomputed maps.
        distortion: OpenCV coefficients [k1, k2, p1, p2(, k3)] replacing the loader's; None keeps them.
        self_calibrate: estimate the focal length (fx = fy, principal point kept) from the first
            ``calib_frames`` frames and use it for the depth network and the odometry.
        calib_frames: frames used by the self-calibration (the camera must move through 3D structure).
        calib_hfov_range_deg: [min, max] horizontal field of view searched.
    """

    undistort: bool = True
    distortion: list | None = None
    self_calibrate: bool = False
    calib_frames: int = 120
    calib_hfov_range_deg: list = field(default_factory=lambda: [25.0, 130.0])

    def validate(self) -> None:
        from mono_metric.camera import check_distortion

        check_distortion(self.distortion, "config camera.distortion")
        check_range("camera.calib_frames", self.calib_frames, 2, 100000)
        check_pair("camera.calib_hfov_range_deg", self.calib_hfov_range_deg, 5.0, 175.0)


@dataclass
class Config:
    """All settings of a run."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def config_from_dict(data: dict | None) -> Config:
    """Validated :class:`Config` from a plain dict (missing keys keep defaults)."""
    return build_section(Config, data or {}).validate()


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load ``configs/*.yaml``-style files; ``None`` gives the defaults. ``overrides`` are merged per section."""
    data = read_yaml_mapping(path, "config file", "sections") if path is not None else {}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)
