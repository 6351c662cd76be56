"""Settings of depth, back-end, mapping and camera corrections."""
from __future__ import annotations

from dataclasses import dataclass, field

from mono_metric.errors import InputError
from mono_metric.validation import check_choice, check_pair, check_range


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
        min_score_ratio: a loop candidate is verified only when its descriptor score is at least this fraction
            of the best candidate's (ORB-SLAM keeps 0.75 of the best; 0: every one of the best ``candidates``).
        proximity_ratio: metric-pose prior: a candidate must lie within ``proximity_min_m`` plus this
            fraction of the path driven between the two keyframes (the drift bound) of the new one. A loop may
            correct at most ``max_correction_ratio`` of that path, so a candidate farther away than that plus
            the revisit's baseline would be stopped as implausible after verification anyway.
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
        loop_two_way: the loop measurement is the SE(3) midpoint of the registration in both directions (the
            new keyframe's pixels against the candidate's depth, and the candidate's pixels against the new
            keyframe's depth), averaging the two keyframes' independent depth errors.
        loop_baseline_weight: scale a loop edge's information by (median odometry link length / its baseline)^2
            (at most 1): a PnP pose on metric depth errs in proportion to its baseline.
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
    min_score_ratio: float = 0.75
    proximity_ratio: float = 0.05
    proximity_min_m: float = 3.0
    max_correction_ratio: float = 0.03
    min_inliers: int = 40
    min_inlier_ratio: float = 0.25
    reproj_px: float = 3.0
    max_depth_error: float = 0.15
    icp_voxel_ratio: float = 0.02
    icp_min_fitness: float = 0.3
    loop_icp: bool = False
    loop_two_way: bool = True
    loop_baseline_weight: bool = True
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
        check_range("backend.min_score_ratio", self.min_score_ratio, 0.0, 1.0)
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
