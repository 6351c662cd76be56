"""The shared SLAM map: keyframes, their place-recognition features, per-frame anchors and the pose graph.

Tracking writes keyframes and frames into it; the local bundle adjustment and the back-end
(:mod:`mono_metric.backend`) move keyframe poses; the trajectory and the TSDF re-fusion read it.

- ``keyframes[k]``: :class:`~mono_metric.types.Keyframe` (pose ``T_world_cam``, 3D corners = the
  keyframe's landmarks, median depth, depth scale).
- ``features[k]``: :class:`KeyframeFeatures` of keyframe ``k`` (ORB keypoints with metric depth, a global
  descriptor, computed when first matched, and a 1/2-resolution depth) or None when the back-end is off.
- the pose graph: consecutive keyframes are linked by odometry (their current relative pose; weak when
  the later one was made while tracking was lost), plus the verified ``loops``.
- ``odometry_scale[k]``: the relative scale the link k-1 -> k should have in the pose graph, measured by the
  back-end (keyframe k-1's points against keyframe k's own depth; None: not measured).
- ``scales[k]``: the scale a Sim(3) pose graph gave keyframe ``k``'s own metric geometry (1 until one
  rescales it; folded into the keyframe's ``depth_scale``, so its points and frames follow).
- frames: per frame its reference keyframe and its pose relative to it (every frame follows its keyframe).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mono_metric.geometry import inv_se3, repose_points, scale_translation
from mono_metric.types import Keyframe, Trajectory


@dataclass
class KeyframeFeatures:
    """What the back-end keeps of a keyframe to recognise and register it later.

    Attributes:
        uv: (N, 2) float32 ORB keypoint pixels.
        desc: (N, 32) uint8 ORB descriptors.
        depth_m: (N,) float64 metric depth at the keypoints (0: none).
        global_desc: (D,) float32 unit-norm global descriptor.
        depth_small: (h, w) float16 depth (m) at 1/2 resolution (keypoint depth; every 2nd pixel: ICP clouds).
        lost: the keyframe was made while tracking was lost (its odometry link is weak).
        gray: (H, W) uint8 image while the ORB features are not computed yet (the back-end computes them when
            the keyframe is first matched, then drops the image); None once they are. ``uv``, ``desc``,
            ``depth_m`` (and, for the bag of words, ``global_desc``) are empty until then.
    """

    uv: np.ndarray
    desc: np.ndarray
    depth_m: np.ndarray
    global_desc: np.ndarray
    depth_small: np.ndarray
    lost: bool = False
    gray: np.ndarray | None = None


@dataclass
class LoopEdge:
    """A verified loop: ``T_a_b`` = pose of keyframe ``b`` in keyframe ``a``'s camera frame; (6, 6) information
    in Open3D's (rotation, translation) order."""

    a: int
    b: int
    T_a_b: np.ndarray
    information: np.ndarray


@dataclass
class Map:
    keyframes: list[Keyframe] = field(default_factory=list)
    features: list[KeyframeFeatures | None] = field(default_factory=list)
    odometry_info: list[np.ndarray | None] = field(default_factory=list)  # [k]: link k-1 -> k (None: not yet)
    loops: list[LoopEdge] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)  # [k]: pose-graph (Sim(3)) scale of keyframe k
    odometry_scale: list[float | None] = field(default_factory=list)  # [k]: measured scale of link k-1 -> k
    frame_stamps: list[float] = field(default_factory=list)
    frame_ref: list[int] = field(default_factory=list)  # per frame: reference keyframe (-1: none)...
    frame_T_kf_cam: list[np.ndarray] = field(default_factory=list)  # ...and its pose relative to it (absolute at -1)

    # ----------------------------------------------------------------- writing
    def add_keyframe(self, keyframe: Keyframe, features: KeyframeFeatures | None = None,
                     odometry_info: np.ndarray | None = None) -> int:
        """Append a keyframe; returns its id."""
        self.keyframes.append(keyframe)
        self.features.append(features)
        self.odometry_info.append(odometry_info)
        self.scales.append(1.0)
        self.odometry_scale.append(None)
        return len(self.keyframes) - 1

    def add_frame(self, timestamp: float, T_world_cam: np.ndarray) -> None:
        """Record a frame, anchored to the newest keyframe."""
        ref = len(self.keyframes) - 1
        self.frame_stamps.append(float(timestamp))
        self.frame_ref.append(ref)
        self.frame_T_kf_cam.append(inv_se3(self.keyframes[ref].T_world_cam) @ T_world_cam if ref >= 0
                                   else np.array(T_world_cam, dtype=np.float64))

    def move_keyframes(self, T_world_kf: np.ndarray, first: int = 0, scales: np.ndarray | None = None) -> None:
        """Give keyframes ``first..first+len-1`` the (K, 4, 4) poses; their 3D corners follow.

        ``scales``: optional (K,) new pose-graph scales; a keyframe's corners and ``depth_scale`` (hence its
        frames' offsets) are multiplied by the ratio of the new to its current scale.
        """
        scales = np.ones(len(T_world_kf)) if scales is None else np.asarray(scales, np.float64)
        if scales.shape != (len(T_world_kf),):
            raise ValueError(f"need {len(T_world_kf)} scales, got shape {scales.shape}")
        for k, (kf, T, s) in enumerate(zip(self.keyframes[first:], T_world_kf, scales), start=first):
            ratio = s / self.scales[k] if s != 1.0 or self.scales[k] != 1.0 else 1.0
            kf.xyz_world = repose_points(kf.xyz_world, kf.T_world_cam, T, ratio)
            kf.T_world_cam = np.array(T, dtype=np.float64)
            if ratio != 1.0:
                kf.depth_scale *= ratio
                self.scales[k] = float(s)

    # ----------------------------------------------------------------- reading
    def poses(self) -> np.ndarray:
        """(K, 4, 4) keyframe poses."""
        return np.array([k.T_world_cam for k in self.keyframes]).reshape(-1, 4, 4)

    def trajectory(self) -> Trajectory:
        """Every frame placed relative to its reference keyframe's *current* pose (and depth scale)."""
        kfs = self.keyframes
        poses = [T if k < 0 else kfs[k].T_world_cam @ scale_translation(T, kfs[k].depth_scale / kfs[k].tracked_scale)
                 for k, T in zip(self.frame_ref, self.frame_T_kf_cam)]
        return Trajectory(np.asarray(self.frame_stamps), np.stack(poses))

    # ----------------------------------------------------------------- snapshots
    def state_dict(self) -> dict[str, np.ndarray]:
        """The map as plain arrays (``np.savez``, no pickling), keys prefixed ``map_``."""
        kfs, feats = self.keyframes, self.features
        has = np.array([f is not None for f in feats], bool)
        fs = [f for f in feats if f is not None]
        small = [f.depth_small for f in fs]
        width = max([len(f.global_desc) for f in fs], default=1)  # empty (not computed yet) rows are padded
        pending = [f.gray for f in fs if f.gray is not None]
        return {
            "map_kf_index": np.array([k.index for k in kfs], np.int64),
            "map_kf_timestamp": np.array([k.timestamp for k in kfs], np.float64),
            "map_kf_T": self.poses(),
            "map_kf_median_depth": np.array([k.median_depth_m for k in kfs], np.float64),
            "map_kf_scales": np.array([(k.depth_scale, k.tracked_scale) for k in kfs], np.float64).reshape(-1, 2),
            "map_kf_sizes": np.array([len(k.xyz_world) for k in kfs], np.int64),
            "map_kf_xyz": np.concatenate([k.xyz_world for k in kfs]) if kfs else np.zeros((0, 3)),
            "map_odometry_info": np.array([np.full((6, 6), np.nan) if I is None else I
                                           for I in self.odometry_info]).reshape(-1, 6, 6),
            "map_has_features": has,
            "map_feat_sizes": np.array([len(f.uv) for f in fs], np.int64),
            "map_feat_uv": _cat([f.uv for f in fs], (0, 2), np.float32),
            "map_feat_desc": _cat([f.desc for f in fs], (0, 32), np.uint8),
            "map_feat_depth": _cat([f.depth_m for f in fs], (0,), np.float64),
            "map_feat_global": _cat([np.pad(f.global_desc, (0, width - len(f.global_desc)))[None] for f in fs],
                                    (0, 1), np.float32),
            "map_feat_global_len": np.array([len(f.global_desc) for f in fs], np.int64),
            "map_feat_pending": np.array([f.gray is not None for f in fs], bool),
            "map_feat_gray": np.stack(pending) if pending else np.zeros((0, 1, 1), np.uint8),
            "map_feat_small": np.stack(small) if small else np.zeros((0, 1, 1), np.float16),
            "map_feat_lost": np.array([f.lost for f in fs], bool),
            "map_kf_graph_scale": np.array(self.scales, np.float64),
            "map_odometry_scale": np.array([np.nan if r is None else r for r in self.odometry_scale], np.float64),
            "map_loops": np.array([(e.a, e.b) for e in self.loops], np.int64).reshape(-1, 2),
            "map_loop_T": np.array([e.T_a_b for e in self.loops]).reshape(-1, 4, 4),
            "map_loop_info": np.array([e.information for e in self.loops]).reshape(-1, 6, 6),
            "map_frame_stamps": np.array(self.frame_stamps, np.float64),
            "map_frame_ref": np.array(self.frame_ref, np.int64),
            "map_frame_T_kf_cam": np.array(self.frame_T_kf_cam).reshape(-1, 4, 4),
        }

    @classmethod
    def from_state_dict(cls, s: dict[str, np.ndarray]) -> "Map":
        """Inverse of :meth:`state_dict`."""
        sizes = np.asarray(s["map_kf_sizes"])
        xyz = np.split(np.asarray(s["map_kf_xyz"]), np.cumsum(sizes)[:-1]) if len(sizes) else []
        kfs = [Keyframe(int(i), float(t), np.array(T), np.array(p), float(d), float(a), float(b))
               for i, t, T, p, d, (a, b) in zip(s["map_kf_index"], s["map_kf_timestamp"], s["map_kf_T"], xyz,
                                                s["map_kf_median_depth"], s["map_kf_scales"])]
        fsz = np.asarray(s["map_feat_sizes"])
        cut = np.cumsum(fsz)[:-1]
        parts = [np.split(np.asarray(s[k]), cut) if len(fsz) else [] for k in ("map_feat_uv", "map_feat_desc",
                                                                             "map_feat_depth")]
        n = len(fsz)
        glen = s["map_feat_global_len"] if "map_feat_global_len" in s else [len(g) for g in s["map_feat_global"]]
        pending = np.asarray(s["map_feat_pending"], bool) if "map_feat_pending" in s else np.zeros(n, bool)
        grays = iter(np.asarray(s["map_feat_gray"]) if "map_feat_gray" in s else [])
        fs = iter([KeyframeFeatures(uv, d, z, np.array(g[:gl]), np.array(sm), bool(lost),
                                    np.array(next(grays)) if pend else None)
                   for uv, d, z, g, gl, sm, lost, pend in zip(*parts, s["map_feat_global"], glen, s["map_feat_small"],
                                                             s["map_feat_lost"], pending)])
        feats = [next(fs) if h else None for h in s["map_has_features"]]
        loops = [LoopEdge(int(a), int(b), np.array(T), np.array(I))
                 for (a, b), T, I in zip(s["map_loops"], s["map_loop_T"], s["map_loop_info"])]
        graph_scale = s["map_kf_graph_scale"] if "map_kf_graph_scale" in s else np.ones(len(kfs))  # older snapshots
        odo_scale = s["map_odometry_scale"] if "map_odometry_scale" in s else np.full(len(kfs), np.nan)
        return cls(kfs, feats, [None if np.isnan(I).any() else np.array(I) for I in s["map_odometry_info"]], loops,
                   [float(g) for g in graph_scale], [None if np.isnan(r) else float(r) for r in odo_scale],
                   [float(t) for t in s["map_frame_stamps"]], [int(k) for k in s["map_frame_ref"]],
                   [np.array(T) for T in s["map_frame_T_kf_cam"]])


def _cat(arrays: list[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(empty_shape, dtype)
