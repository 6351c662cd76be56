"""The SLAM back-end: loop closure and relocalisation over the shared :class:`~mono_metric.mapping.map.Map`.

On every new keyframe (:meth:`Backend.on_keyframe`): its image and 1/2-resolution depth are stored in the map
(ORB features with metric depth and the global descriptor are computed from them when the keyframe is first
matched); older keyframes (not the ``exclude_recent`` newest)
passing the metric-pose prior are ranked by the descriptor, the best few verified
(:func:`~mono_metric.backend.verify.register`: PnP-RANSAC with metric depth, inlier and depth tests,
ICP on both depths) and a verified loop is added to the pose graph, which is optimised when the loop
disagrees with the current poses (the odometry links get an Open3D-style information matrix from the two
keyframes' depth clouds at the first optimisation) (:mod:`~mono_metric.backend.posegraph`: Open3D SE(3) or pypose Sim(3)). A lost
frame is placed by the same matching against all keyframes (:meth:`Backend.relocalise`).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import cv2
import numpy as np

from mono_metric.backend.place import BinaryVocabulary, proximity_mask, thumbnail_descriptor
from mono_metric.backend.posegraph import optimise_pose_graph, optimise_pose_graph_sim3
from mono_metric.backend.verify import (DEPTH_STRIDE, depth_cloud, features_depth, information, orb_features,
                                        refine_icp, register, relative_depth_scale, two_way,
                                        add_normals)
from mono_metric.camera import Camera
from mono_metric.geometry import inv_se3, rotation_angle_rad
from mono_metric.tracking.icp import nearest_index
from mono_metric.mapping.map import KeyframeFeatures, LoopEdge, Map
from mono_metric.types import LoopClosure

WEAK_LINK = 1e-6
CONSISTENT_VOXELS, CONSISTENT_DEG = 3.0, 1.0  # a loop this close to the current poses is only added to the graph  # information factor of the odometry link into a keyframe made while lost


class Backend:
    """Loop closure and relocalisation.

    Args:
        config: :class:`~mono_metric.config.BackendConfig`.
        camera: intrinsics of the tracked images.
        map: the map the odometry writes (shared, modified in place).
        max_depth_m: depths beyond this are not used.
    """

    def __init__(self, config, camera: Camera, map: Map, max_depth_m: float = 80.0):
        self.config, self.camera, self.map, self.max_depth_m = config, camera, map, max_depth_m
        self.vocabulary: BinaryVocabulary | None = None
        self._clouds: dict[int, object] = {}  # keyframe id -> camera-frame ICP cloud (built on demand, kept)
        self._trees: dict[int, object] = {}  # keyframe id -> nearest-neighbour index of its cloud (kept)
        self._voxel_m = None
        self._pending = None  # (keyframe, correction) of the last verified loop, awaiting confirmation
        self.stats = {"candidates": 0, "verified": 0, "rejected": 0, "inconsistent": 0, "implausible": 0,
                      "closures": 0, "pruned": 0,
                      "relocalised": 0, "relocalise_failed": 0, "cpu_s": 0.0}
        self.rejections: dict[str, int] = {}

    @contextmanager
    def _costed(self):
        """Count the CPU (process) time of the block in ``stats['cpu_s']``; OpenCV runs single-threaded in it.

        The back-end's OpenCV calls are small (ORB on one image, 1000 x 1000 Hamming matches, PnP on ~100
        points): OpenCV's thread pool costs more CPU than it saves on them (measured on block seed 4: 0.68 ->
        0.58 s of back-end CPU with one thread). The caller's thread count is restored afterwards.
        """
        t0, threads = time.process_time(), cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            yield
        finally:
            cv2.setNumThreads(threads)
            self.stats["cpu_s"] += time.process_time() - t0

    # ----------------------------------------------------------------- features
    def features(self, gray: np.ndarray, depth32: np.ndarray | None, lost: bool = False) -> KeyframeFeatures:
        """A keyframe's 1/2-resolution depth (and thumbnail descriptor) now; its ORB features (and bag of words)
        later, from the kept image, when it is first matched (:meth:`_describe`)."""
        h, w = gray.shape[0] // DEPTH_STRIDE, gray.shape[1] // DEPTH_STRIDE
        small = (cv2.resize(depth32, (w, h), interpolation=cv2.INTER_NEAREST) if depth32 is not None
                 else np.zeros((h, w)))
        small = np.where(small < self.max_depth_m, small, 0).astype(np.float16)
        glob = thumbnail_descriptor(gray) if self.config.descriptor == "thumbnail" else np.zeros(0, np.float32)
        return KeyframeFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros(0), glob, small,
                                lost, np.array(gray, np.uint8))

    def _describe(self, f: KeyframeFeatures, document: bool = True) -> KeyframeFeatures:
        """Compute ``f``'s ORB keypoints (depth from its 1/2-resolution depth) and bag of words, once.

        Only keyframes that are matched (a loop candidate, a keyframe with candidates, a relocalisation) pay for
        ORB: on a street drive most keyframes never are. ``document``: count it in the vocabulary's document
        frequencies (a keyframe, not a relocalisation query)."""
        if f.gray is None:
            return f
        uv, desc = orb_features(f.gray, self.config.orb_features)
        f.uv, f.desc, f.depth_m = uv, desc, features_depth(f.depth_small.astype(np.float32), uv, self.max_depth_m,
                                                           DEPTH_STRIDE)
        if self.config.descriptor == "bow":
            if self.vocabulary is None and len(desc) >= 16:
                self.vocabulary = BinaryVocabulary(desc)
            f.global_desc = self.vocabulary.histogram(desc) if self.vocabulary is not None else np.zeros(0, np.float32)
            if document and len(f.global_desc):
                self.vocabulary.add_document(f.global_desc)
        f.gray = None
        return f

    def _cloud(self, k: int, normals: bool = False):
        """Keyframe ``k``'s camera-frame cloud (built once; normals added when an ICP target needs them)."""
        if k not in self._clouds:
            self._clouds[k] = depth_cloud(self.camera, self.map.features[k].depth_small, self._voxel(k))
        if normals:
            add_normals(self._clouds[k], self._voxel(k))
        return self._clouds[k]

    def _index(self, k: int):
        """Nearest-neighbour index of keyframe ``k``'s cloud (built once)."""
        if k not in self._trees:
            self._trees[k] = nearest_index(self._cloud(k))
        return self._trees[k]

    def _voxel(self, k: int) -> float:
        if self._voxel_m is None:  # fixed at the first keyframe: one scale for every information matrix
            self._voxel_m = self.config.icp_voxel_ratio * max(self.map.keyframes[k].median_depth_m, 0.5)
        return self._voxel_m

    # ----------------------------------------------------------------- loop closure
    def on_keyframe(self, k: int, gray: np.ndarray, depth32: np.ndarray, lost: bool = False) -> LoopClosure | None:
        """Register keyframe ``k`` (the newest in the map) and close a loop through it if one verifies."""
        with self._costed():
            return self._on_keyframe(k, gray, depth32, lost)

    def _on_keyframe(self, k: int, gray, depth32, lost: bool) -> LoopClosure | None:
        cfg, m = self.config, self.map
        feat = self.features(gray, depth32, lost)
        m.features[k] = feat
        if cfg.descriptor == "bow" and self.vocabulary is None:  # the vocabulary is built from the first keyframe
            self._describe(feat)
        self._voxel(k)
        if k >= 1 and cfg.pose_graph == "pypose_sim3" and not lost:  # the odometry link's relative scale
            ratio = relative_depth_scale(self.camera, m.keyframes[k - 1].xyz_world, m.keyframes[k].T_world_cam,
                                         depth32, self.max_depth_m)
            m.odometry_scale[k] = None if ratio is None else ratio / m.scales[k - 1]
        if not cfg.loop_closure or k < cfg.exclude_recent:
            return None
        verified = []  # (candidate, PnP inliers, T_c_k, T_k_c from the current poses)
        for c in self._candidates(k):
            self.stats["candidates"] += 1
            reg = register(self.camera, self._describe(feat), self._describe(m.features[c]), cfg.reproj_px, cfg.min_inliers, cfg.min_inlier_ratio,
                           cfg.max_depth_error)
            if not reg.ok:
                self.stats["rejected"] += 1
                self.rejections[reg.reason] = self.rejections.get(reg.reason, 0) + 1
                continue
            self.stats["verified"] += 1
            verified.append((c, reg.inliers, inv_se3(reg.T_query_cand),
                             inv_se3(m.keyframes[k].T_world_cam) @ m.keyframes[c].T_world_cam))
        previous, self._pending = self._pending, None
        if not verified:
            return None
        c, inliers, T_c_k, T_k_c_guess = max(verified, key=lambda v: v[1])  # the most PnP inliers
        edge = self._loop_edge(k, c, T_c_k)
        correction = T_k_c_guess @ edge.T_a_b  # the loop's correction of k's pose; identity when the poses agree
        self._pending = (k, correction)
        if (np.linalg.norm(correction[:3, 3]) < CONSISTENT_VOXELS * self._voxel(k)
                and np.degrees(rotation_angle_rad(correction[:3, :3])) < CONSISTENT_DEG):
            m.loops.append(edge)
            return None  # consistent already: the edge is kept for later optimisations
        # The correction must be a plausible drift, and the previous keyframe verified the same correction.
        path = np.linalg.norm(np.diff(m.poses()[c:k + 1, :3, 3], axis=0), axis=1).sum()
        if np.linalg.norm(correction[:3, 3]) > cfg.max_correction_ratio * path + 2.0 * self._voxel(k):
            self.stats["implausible"] += 1
            return None
        # Temporal consistency: the previous keyframe verified a loop with the same correction.
        if previous is None or previous[0] != k - 1 or not _same_correction(previous[1], correction, self._voxel(k)):
            self.stats["inconsistent"] += 1
            return None
        m.loops.append(edge)
        t0 = time.perf_counter()
        before = m.poses()
        if not self._optimise():
            return None
        self.stats["closures"] += 1
        return LoopClosure(k, c, inliers, float(np.linalg.norm(m.keyframes[k].T_world_cam[:3, 3] - before[k, :3, 3])),
                           time.perf_counter() - t0)

    def _loop_edge(self, k: int, c: int, T_c_k: np.ndarray) -> LoopEdge:
        """The loop edge candidate ``c`` -> keyframe ``k`` from the PnP pose ``T_c_k`` (made two-way, refined by
        ICP and weighted by its baseline as configured), with its information matrix."""
        cfg = self.config
        if cfg.loop_two_way:
            T_c_k = inv_se3(two_way(self.camera, self.map.features[k], self.map.features[c], inv_se3(T_c_k),
                                    cfg.reproj_px, cfg.min_inliers, cfg.min_inlier_ratio, cfg.max_depth_error))
        if cfg.loop_icp:
            T_c_k, info, _ = refine_icp(self._cloud(k), self._cloud(c, normals=True), T_c_k, self._voxel(k),
                                        cfg.icp_min_fitness, self._index(c))
        else:
            info = information(self._cloud(k), self._cloud(c), T_c_k, self._voxel(k), self._index(c))
        if cfg.loop_baseline_weight:
            info = info * self._baseline_weight(k, T_c_k)
        return LoopEdge(c, k, T_c_k, info)

    def _baseline_weight(self, k: int, T_c_k: np.ndarray) -> float:
        """Information factor of a loop edge with ``T_c_k``'s baseline: (median odometry link length /
        baseline)^2, at most 1. A PnP pose on metric depth errs in proportion to its baseline, so a loop edge
        spanning n links' length is as uncertain as n^2 links, not n."""
        pos = self.map.poses()[:k + 1, :3, 3]
        link = float(np.median(np.linalg.norm(np.diff(pos, axis=0), axis=1))) if k >= 1 else 0.0
        baseline = float(np.linalg.norm(T_c_k[:3, 3]))
        return 1.0 if baseline <= link or link <= 0.0 else (link / baseline) ** 2

    def _optimise(self) -> bool:
        """Optimise the pose graph and move the keyframes; False (map unchanged) when the newest loop is pruned."""
        m = self.map
        for k in range(1, len(m.keyframes)):  # odometry links' information, computed once when first needed
            if m.odometry_info[k] is None and m.features[k] is not None and m.features[k - 1] is not None:
                T_prev_k = inv_se3(m.keyframes[k - 1].T_world_cam) @ m.keyframes[k].T_world_cam
                info = information(self._cloud(k), self._cloud(k - 1), T_prev_k, self._voxel(k), self._index(k - 1))
                m.odometry_info[k] = info * (WEAK_LINK if m.features[k].lost else 1.0) + np.eye(6) * 1e-6
        cfg, scales = self.config, None
        if cfg.pose_graph == "pypose_sim3":
            poses, scales, kept = optimise_pose_graph_sim3(m.poses(), np.array(m.scales), m.odometry_info, m.loops,
                                                           3.0 * self._voxel(0), cfg.scale_sigma, cfg.line_process,
                                                           odometry_scale=m.odometry_scale,
                                                           relative_scale_sigma=cfg.relative_scale_sigma)
        else:
            poses, kept = optimise_pose_graph(m.poses(), m.odometry_info, m.loops, 3.0 * self._voxel(0),
                                              cfg.line_process)
        self.stats["pruned"] += len(kept) - sum(kept)
        m.loops = [e for e, ok in zip(m.loops, kept) if ok]
        if kept and not kept[-1]:
            return False
        m.move_keyframes(poses, scales=scales)
        return True

    def finish(self) -> bool:
        """A last optimisation with every loop edge verified since the last one (True: the map moved)."""
        with self._costed():
            chain = self.config.pose_graph == "pypose_sim3" and any(r is not None for r in self.map.odometry_scale)
            return (bool(self.map.loops) or chain) and self._optimise()

    def _candidates(self, k: int) -> list[int]:
        """Up to ``candidates`` older keyframes with features, passing the pose prior, best descriptor first."""
        cfg, m = self.config, self.map
        older = [j for j in range(k - cfg.exclude_recent + 1) if m.features[j] is not None]
        if not older:
            return []
        pos = m.poses()[:, :3, 3]
        path = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pos, axis=0), axis=1))])
        near = proximity_mask(pos, path, k, cfg.proximity_ratio, cfg.proximity_min_m)
        older = [j for j in older if near[j]]
        if not older:
            return []
        return [older[i] for i in self._rank(m.features[k], [m.features[j] for j in older], cfg.candidates,
                                             cfg.min_score_ratio)]

    def _rank(self, query: KeyframeFeatures, database: list[KeyframeFeatures], n: int,
              min_score_ratio: float = 0.0) -> list[int]:
        """Indices into ``database`` of its ``n`` best matches to ``query`` by global descriptor (the bag of words
        needs their ORB features: computed here when missing), those scoring below ``min_score_ratio`` times the
        best left out."""
        if self.config.descriptor == "bow":
            query = self._describe(query)
            database = [self._describe(f) for f in database]
        ok = [i for i, f in enumerate(database) if len(f.global_desc) and len(f.global_desc) == len(query.global_desc)]
        if not ok:
            return []
        scores = self._scores(query.global_desc, np.stack([database[i].global_desc for i in ok]))
        best = np.argsort(-scores, kind="stable")[:n]
        return [ok[i] for i in best if scores[i] >= min_score_ratio * scores[best[0]]]

    def _scores(self, query: np.ndarray, database: np.ndarray) -> np.ndarray:
        if self.config.descriptor == "thumbnail":
            return database @ query
        return self.vocabulary.scores(query, database)

    # ----------------------------------------------------------------- relocalisation
    def relocalise(self, gray: np.ndarray) -> tuple[np.ndarray, int] | None:
        """(T_world_cam, inliers) of a lost image matched against the map's keyframes, or None."""
        with self._costed():
            cfg, m = self.config, self.map
            ids = [j for j, f in enumerate(m.features) if f is not None]
            if not ids:
                return None
            query = self._describe(self.features(gray, None), document=False)
            if len(query.uv) < cfg.min_inliers:
                self.stats["relocalise_failed"] += 1
                return None
            best = None
            for i in self._rank(query, [m.features[j] for j in ids], cfg.candidates):
                reg = register(self.camera, query, self._describe(m.features[ids[i]]), cfg.reproj_px, cfg.min_inliers,
                               cfg.min_inlier_ratio, cfg.max_depth_error)
                if reg.ok and (best is None or reg.inliers > best[1]):
                    best = (m.keyframes[ids[i]].T_world_cam @ inv_se3(reg.T_query_cand), reg.inliers)
            self.stats["relocalised" if best else "relocalise_failed"] += 1
            return best


def _same_correction(A: np.ndarray, B: np.ndarray, voxel_m: float) -> bool:
    """Two loop corrections agree: within 3 voxels plus half their size, and 2 degrees."""
    D = inv_se3(A) @ B
    size = max(np.linalg.norm(A[:3, 3]), np.linalg.norm(B[:3, 3]))
    return (np.linalg.norm(D[:3, 3]) < 3.0 * voxel_m + 0.5 * size
            and np.degrees(rotation_angle_rad(D[:3, :3])) < 2.0)


__all__ = ["Backend"]
