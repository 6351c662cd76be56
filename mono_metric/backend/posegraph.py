"""Pose-graph optimisation over keyframes, two libraries (``backend.pose_graph``).

- ``open3d``: SE(3) nodes ``T_world_kf``, Open3D ``PoseGraph`` + ``global_optimization``; odometry edges
  link consecutive keyframes (certain), loop edges are uncertain: Open3D's line process down-weights and
  prunes a loop that disagrees with the rest of the graph (a wrong loop).
- ``pypose_sim3``: Sim(3) nodes (rigid pose and a per-keyframe scale), pypose Levenberg-Marquardt with a
  Cauchy kernel on the loop edges; a loop left with a small Cauchy weight is pruned and the graph solved
  again without it. The scale lets a closure rescale segments of the path (a keyframe's metric depth is
  off by a few %), which an SE(3) graph can only bend.

Either way one bad loop cannot bend the map, and the first keyframe is held fixed.
"""
from __future__ import annotations

import numpy as np
import open3d as o3d
import pypose as pp
import torch

from mono_metric.geometry import inv_se3


def optimise_pose_graph(T_world_kf: np.ndarray, odometry_info: list[np.ndarray], loops: list,
                        max_correspondence_m: float, prune_threshold: float = 0.25,
                        iterations: int = 100) -> tuple[np.ndarray, list[bool]]:
    """Optimise keyframe poses with their odometry chain and loop edges.

    Args:
        T_world_kf: (K, 4, 4) current keyframe poses; consecutive relative poses are the odometry edges.
        odometry_info: K (6, 6) information matrices, [k] for the edge k-1 -> k ([0] unused; None: identity).
        loops: :class:`~mono_metric.mapping.map.LoopEdge` list (``T_a_b`` = keyframe b in a's frame).
        max_correspondence_m: the ICP correspondence distance the information matrices were built with.
        prune_threshold: Open3D line-process threshold below which a loop edge is switched off.
        iterations: Levenberg-Marquardt iterations.

    Returns:
        (K, 4, 4) optimised poses and, per loop, whether it was kept.
    """
    T_world_kf = np.asarray(T_world_kf, np.float64)
    reg = o3d.pipelines.registration
    graph = reg.PoseGraph()
    for T in T_world_kf:
        graph.nodes.append(reg.PoseGraphNode(T))
    for k in range(1, len(T_world_kf)):
        # Open3D: edge(source, target) transforms source points into the target frame.
        graph.edges.append(reg.PoseGraphEdge(k, k - 1, inv_se3(T_world_kf[k - 1]) @ T_world_kf[k],
                                             np.eye(6) if odometry_info[k] is None else odometry_info[k],
                                             uncertain=False))
    for e in loops:
        graph.edges.append(reg.PoseGraphEdge(e.b, e.a, e.T_a_b, e.information, uncertain=True))
    option = reg.GlobalOptimizationOption(max_correspondence_distance=max_correspondence_m,
                                          edge_prune_threshold=prune_threshold, preference_loop_closure=1.0,
                                          reference_node=0)
    criteria = reg.GlobalOptimizationConvergenceCriteria()
    criteria.max_iteration = iterations
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        reg.global_optimization(graph, reg.GlobalOptimizationLevenbergMarquardt(), criteria, option)
    kept_pairs = {(e.source_node_id, e.target_node_id) for e in graph.edges if e.uncertain}
    return np.array([n.pose for n in graph.nodes]), [(e.b, e.a) in kept_pairs for e in loops]


# ----------------------------------------------------------------- Sim(3), pypose
O3D_TO_TANGENT = np.r_[3, 4, 5, 0, 1, 2]  # Open3D information order (rotation, translation) -> pypose (translation, rotation)


def sim3_information(info_o3d: np.ndarray, pairs: float, sigma_m: float, scale_sigma: float | None) -> np.ndarray:
    """(7, 7) information in pypose's sim(3) tangent order (translation, rotation, log-scale).

    Args:
        info_o3d: (6, 6) Open3D information (rotation, translation order; a sum over ``pairs`` point pairs
            with unit noise).
        pairs: the typical pair count of the graph's edges: ``info_o3d / pairs`` is one pair's information,
            so a typical edge gets a translation sigma of ``sigma_m`` (a weak edge stays weak).
        sigma_m: translation standard deviation of a typical edge (m).
        scale_sigma: standard deviation of the edge's log relative scale (None: the edge says nothing about it).
    """
    info = np.asarray(info_o3d, np.float64)
    if info.shape != (6, 6):
        raise ValueError(f"expected a (6, 6) information matrix, got {info.shape}")
    out = np.zeros((7, 7))
    out[:6, :6] = info[np.ix_(O3D_TO_TANGENT, O3D_TO_TANGENT)] / (pairs * sigma_m ** 2)
    out[6, 6] = 0.0 if scale_sigma is None else 1.0 / scale_sigma ** 2
    return out


class _Sim3Graph(torch.nn.Module):
    """Residuals of a Sim(3) pose graph; node 0 is fixed.

    Three groups: odometry edges and loop edges (whitened ``Log(Z_ij^-1 S_i^-1 S_j)``, 7 each) and one
    scale prior per free node (``log s_k / scale_sigma``: every keyframe's depth is metric up to a few %).
    """

    def __init__(self, S_world_kf, i, j, Z_i_j, sqrt_info, n_odometry: int, scale_sigma: float):
        super().__init__()
        self.register_buffer("S0", S_world_kf[:1].clone())
        self.nodes = pp.Parameter(S_world_kf[1:].clone())
        self.register_buffer("Z_inv", Z_i_j.Inv())
        self.register_buffer("L", sqrt_info)
        self.i, self.j, self.n_odometry, self.scale_sigma = i, j, n_odometry, scale_sigma

    def forward(self, _input):
        S = torch.cat([self.S0, self.nodes], 0)
        r = (self.Z_inv @ S[self.i].Inv() @ S[self.j]).Log().tensor()
        r = torch.einsum("eab,eb->ea", self.L, r)
        prior = torch.log(self.nodes.tensor()[:, 7:8]) / self.scale_sigma
        if len(r) == self.n_odometry:
            return r, prior
        return r[:self.n_odometry], prior, r[self.n_odometry:]


def _sqrt_psd(info: np.ndarray) -> np.ndarray:
    """(n, n) ``L`` with ``L.T @ L = info`` for a symmetric positive semi-definite ``info``."""
    w, V = np.linalg.eigh(0.5 * (info + info.T))
    return (V * np.sqrt(np.clip(w, 0.0, None))).T


def _sim3(T: np.ndarray, s: np.ndarray) -> "pp.LieTensor":
    """pypose Sim3 of (N, 4, 4) rigid poses with (N,) scales."""
    T = torch.as_tensor(np.asarray(T, np.float64))
    SO3 = pp.mat2SO3(T[:, :3, :3], check=False)
    data = torch.cat([T[:, :3, 3], SO3.tensor(), torch.as_tensor(np.asarray(s, np.float64))[:, None]], 1)
    return pp.Sim3(data)


def _solve_sim3(S_init, i, j, Z, L, n_odometry: int, scale_sigma: float, cauchy_deltas: tuple[float, ...],
                iterations: int):
    """(optimised nodes, (L,) whitened chi2 of the loop edges).

    Graduated: one Levenberg-Marquardt run per Cauchy delta, each from the previous result, so a right loop
    with a large initial residual (the drift it corrects) is closed while the kernel is still near-quadratic,
    and a wrong one loses its weight once the deltas shrink.
    """
    S, has_loops = S_init, len(i) > n_odometry
    for delta in cauchy_deltas if has_loops else cauchy_deltas[-1:]:
        graph = _Sim3Graph(S, i, j, Z, L, n_odometry, scale_sigma)
        optimizer = pp.optim.LM(graph, kernel=[None, None, pp.optim.kernel.Cauchy(delta)] if has_loops else None,
                                strategy=pp.optim.strategy.TrustRegion(radius=1e3))
        stop = pp.optim.scheduler.StopOnPlateau(optimizer, steps=iterations, patience=2, decreasing=1e-3)
        stop.optimize(input=None)
        S = torch.cat([graph.S0, graph.nodes], 0).detach()
    if not has_loops:
        return S, torch.zeros(0, dtype=torch.float64)
    with torch.no_grad():
        *_, r_loop = graph(None)
        return S, (r_loop ** 2).sum(-1)


def optimise_pose_graph_sim3(T_world_kf: np.ndarray, scales: np.ndarray, odometry_info: list[np.ndarray],
                             loops: list, max_correspondence_m: float, scale_sigma: float = 0.05,
                             prune_threshold: float = 0.25, iterations: int = 15,
                             odometry_scale: list | None = None, relative_scale_sigma: float = 0.02
                             ) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Optimise keyframe poses and scales (a Sim(3) pose graph, pypose Levenberg-Marquardt).

    Node ``k`` is ``S_world_kf = (R, t, s)``: the keyframe's own metric geometry is scaled by ``s``.
    Odometry edges are the current relative Sim(3) of consecutive keyframes, their scale replaced by the
    measured one where ``odometry_scale`` has it (sigma ``relative_scale_sigma``); a loop edge ``T_a_b`` is a
    relative pose measured on the two keyframes' own metric depth (relative scale 1). Every edge's
    information is Open3D's (rotation, translation) block, normalised so the median odometry edge has a
    translation sigma of one ICP voxel (``max_correspondence_m / 3``), plus ``1 / scale_sigma**2`` on the
    log relative scale of a loop edge and of an odometry edge without a measured scale (two independent
    depth scale errors, ``sqrt(2) * scale_sigma``), and every
    keyframe's scale has the prior ``log s ~ N(0, scale_sigma)`` (its depth is metric). Loop edges go through a Cauchy kernel (deltas 100, 10, then 3 sigma: graduated); a loop whose Cauchy weight
    ends below ``prune_threshold`` is pruned and the graph solved again without it. Node 0 is fixed.

    Args:
        T_world_kf: (K, 4, 4) current rigid keyframe poses.
        scales: (K,) current keyframe scales (1 for a keyframe never rescaled).
        odometry_info: K (6, 6) Open3D information matrices, [k] for the edge k-1 -> k ([0] unused).
        loops: :class:`~mono_metric.mapping.map.LoopEdge` list.
        max_correspondence_m: the ICP correspondence distance the information matrices were built with.
        scale_sigma: standard deviation of a keyframe's depth scale error (log).
        prune_threshold: Cauchy weight below which a loop is pruned.
        iterations: Levenberg-Marquardt iterations per kernel delta at most.
        odometry_scale: K measured relative scales ``s_k / s_(k-1)`` of the odometry links ([k] for k-1 -> k,
            None: not measured; :func:`~mono_metric.backend.verify.relative_depth_scale`), or None.
        relative_scale_sigma: standard deviation of such a measurement (log).

    Returns:
        (K, 4, 4) optimised rigid poses, (K,) scales and, per loop, whether it was kept.
    """
    T_world_kf = np.asarray(T_world_kf, np.float64)
    K, scales = len(T_world_kf), np.asarray(scales, np.float64)
    if T_world_kf.shape != (K, 4, 4) or scales.shape != (K,) or len(odometry_info) != K:
        raise ValueError(f"need (K, 4, 4) poses, (K,) scales and K informations, got {T_world_kf.shape}, "
                         f"{scales.shape}, {len(odometry_info)}")
    voxel_m = max_correspondence_m / 3.0
    odo = [np.eye(6) if I is None else np.asarray(I, np.float64) for I in odometry_info[1:]]
    pairs = float(np.median([np.trace(I[3:, 3:]) / 3.0 for I in odo])) if odo else 1.0
    pairs = max(pairs, 1e-12)
    S = _sim3(T_world_kf, scales)
    measured = [None] * K if odometry_scale is None else list(odometry_scale)
    with torch.no_grad():
        Z_odo = (S[:-1].Inv() @ S[1:]).tensor().clone()
        for k in range(1, K):
            if measured[k] is not None:
                Z_odo[k - 1, 7] = float(measured[k])
    if not loops and all(r is None for r in measured[1:]):
        return T_world_kf.copy(), scales.copy(), []
    cauchy_deltas = (100.0, 10.0, 3.0)
    kept = [True] * len(loops)
    while True:
        use = [e for e, k in zip(loops, kept) if k]
        i = torch.tensor(list(range(K - 1)) + [e.a for e in use], dtype=torch.long)
        j = torch.tensor(list(range(1, K)) + [e.b for e in use], dtype=torch.long)
        Z = pp.Sim3(torch.cat([Z_odo] + ([_sim3(np.stack([e.T_a_b for e in use]),
                                                          np.ones(len(use))).tensor()] if use else []), 0))
        info = [sim3_information(I, pairs, voxel_m, np.sqrt(2.0) * scale_sigma if r is None else relative_scale_sigma)
                for I, r in zip(odo, measured[1:])] + [
            sim3_information(e.information, pairs, voxel_m, np.sqrt(2.0) * scale_sigma) for e in use]
        L = torch.as_tensor(np.stack([_sqrt_psd(I) for I in info]))
        S_opt, chi2 = _solve_sim3(S, i, j, Z, L, K - 1, scale_sigma, cauchy_deltas, iterations)
        weight = 1.0 / (1.0 + chi2.numpy() / cauchy_deltas[-1] ** 2)
        outliers = [n for n, w in enumerate(weight) if w < prune_threshold]
        if not outliers:
            break
        worst = outliers[int(np.argmin(weight[outliers]))]  # drop one at a time, then solve again
        kept[[n for n, k in enumerate(kept) if k][worst]] = False
    M = S_opt.matrix().numpy()
    s = S_opt.tensor()[:, 7].numpy().copy()
    M[:, :3, :3] /= s[:, None, None]
    return M, s, kept
