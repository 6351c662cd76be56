"""Pose-graph optimisation over keyframes (Open3D ``PoseGraph`` + ``global_optimization``).

Nodes are keyframe poses ``T_world_kf``; odometry edges link consecutive keyframes (certain), loop
edges are uncertain: Open3D's line process down-weights and prunes a loop that disagrees with the rest
of the graph (a wrong loop), so one bad loop cannot bend the map. The first keyframe is held fixed.
"""
from __future__ import annotations

import numpy as np
import open3d as o3d

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
